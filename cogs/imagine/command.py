"""/imagine, Apps → Animate, and the result buttons: parse the request, call the domain, answer.

Everything after the request (progress, the video, failures) reaches Discord through
``cogs.imagine.notifier.DiscordNotifier``, which the domain calls.
"""

from __future__ import annotations

import contextlib
import logging

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.api_contract import DEFAULT_MODE, DEFAULT_RATIO, IMAGE_TYPES, MAX_IMAGES, MODES, RATIOS
from bot.config import Settings
from bot.errors import InvalidInput
from bot.i18n import Messages
from bot.metrics import Metrics
from bot.service import ImagineService, Requester
from bot.validation import (
    ImageInput,
    image_type_of,
    nearest_ratio,
    validate_imagine,
)
from cogs.core.checks import is_requester_or_moderator
from cogs.core.errors import ErrorReporter
from cogs.core.locale import language_for
from cogs.core.translator import text
from cogs.imagine.acknowledgements import AcknowledgementsFirst
from cogs.imagine.modals import RequestForm, offered_modes
from cogs.imagine.views import IMAGINE_COG

log = logging.getLogger(__name__)

# Every mode and ratio the API accepts (``bot.api_contract``), each with its catalog label: a
# value added to the contract without a label fails here, at import.
_RATIO_NAMES = {
    "16:9": text("16:9 landscape", "cmd.choice.ratio_landscape"),
    "9:16": text("9:16 portrait", "cmd.choice.ratio_portrait"),
    "1:1": text("1:1 square", "cmd.choice.ratio_square"),
    "2:3": text("2:3 tall", "cmd.choice.ratio_tall"),
    "3:2": text("3:2 wide", "cmd.choice.ratio_wide"),
}
_MODE_NAMES = {
    "fun": text("fun", "cmd.choice.mode_fun"),
    "normal": text("normal", "cmd.choice.mode_normal"),
    "spicy": text("spicy", "cmd.choice.mode_spicy"),
}
RATIO_CHOICES = [app_commands.Choice(name=_RATIO_NAMES[ratio], value=ratio) for ratio in RATIOS]
MODE_CHOICES = [app_commands.Choice(name=_MODE_NAMES[mode], value=mode) for mode in MODES]


def _is_nsfw(channel: object) -> bool:
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


def _image_inputs(attachments: list[discord.Attachment | None]) -> list[ImageInput]:
    return [
        ImageInput(
            filename=attachment.filename,
            content_type=attachment.content_type,
            size=attachment.size,
            url=attachment.url,
        )
        for attachment in attachments
        if attachment is not None
    ]


_IMAGE_CONTENT_TYPES = frozenset(IMAGE_TYPES)


def _images_in(message: discord.Message) -> tuple[list[ImageInput], tuple[int, int] | None]:
    """The images of a message that can start a video (attachments first, then embeds), and
    the first one's size in pixels when Discord says it."""
    found: list[ImageInput] = []
    size: tuple[int, int] | None = None
    for attachment in message.attachments:
        if (attachment.content_type or "").split(";")[0] in _IMAGE_CONTENT_TYPES:
            found.append(_image_inputs([attachment])[0])
            if size is None and attachment.width and attachment.height:
                size = (attachment.width, attachment.height)
    for embed in message.embeds:
        for picture in (embed.image, embed.thumbnail):
            url = picture.url
            kind = image_type_of(url) if url else None
            if url is None or kind is None:
                continue
            found.append(_image_at(url))
            if size is None and picture.width and picture.height:
                size = (picture.width, picture.height)
            break  # an embed's thumbnail is a smaller copy of the same picture, at best
    return found[:MAX_IMAGES], size


def _image_at(url: str) -> ImageInput:
    """An image known only by its URL (size unknown): the API fetches it, and refuses (the job
    is refunded) what it can't use."""
    filename = yarl.URL(url).name
    return ImageInput(filename=filename, content_type=image_type_of(url), size=0, url=url)


def _requester(interaction: discord.Interaction, progress_message_id: int | None) -> Requester:
    assert interaction.guild_id is not None
    assert interaction.channel_id is not None
    return Requester(
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        member_id=interaction.user.id,
        locale=language_for(interaction),
        progress_message_id=progress_message_id,
        interaction_token=interaction.token,
        interaction_expires_at=interaction.expires_at,
        upload_limit_bytes=interaction.filesize_limit,
    )


class ImagineCog(commands.Cog, name=IMAGINE_COG):
    """/imagine, Apps → Animate, and the Reroll, Remix, Delete and Cancel buttons."""

    def __init__(
        self,
        imagine: ImagineService,
        *,
        settings: Settings,
        messages: Messages,
        reporter: ErrorReporter,
        metrics: Metrics,
        tree: app_commands.CommandTree[discord.Client],
    ) -> None:
        self._tree = tree
        self.imagine = imagine
        self.metrics = metrics
        self.settings = settings
        self.messages = messages
        self.reporter = reporter
        self._acknowledgements = AcknowledgementsFirst()
        # A message command cannot be a method of a cog; it is added to the tree with it.
        self.animate_menu = app_commands.ContextMenu(
            name=text("Animate", "cmd.animate.name"),
            callback=self.animate,
            allowed_contexts=app_commands.AppCommandContext(guild=True),
        )

    # --- the command ------------------------------------------------------------------------

    @app_commands.command(
        name=text("imagine", "cmd.imagine.name"),
        description=text("Make a short video from a text prompt", "cmd.imagine.description"),
    )
    @app_commands.rename(
        prompt=text("prompt", "cmd.imagine.prompt_name"),
        ratio=text("ratio", "cmd.imagine.ratio_name"),
        mode=text("mode", "cmd.imagine.mode_name"),
        image=text("image", "cmd.imagine.image_name"),
        image2=text("image2", "cmd.imagine.image2_name"),
        image3=text("image3", "cmd.imagine.image3_name"),
    )
    @app_commands.describe(
        prompt=text("What the video should show", "cmd.imagine.prompt_description"),
        ratio=text("Aspect ratio (default 16:9)", "cmd.imagine.ratio_description"),
        mode=text(
            "Style (default normal; spicy only in age-restricted channels)",
            "cmd.imagine.mode_description",
        ),
        image=text("Optional starting image (PNG, JPEG or WebP)", "cmd.imagine.image_description"),
        image2=text("Optional second image", "cmd.imagine.image2_description"),
        image3=text("Optional third image", "cmd.imagine.image3_description"),
    )
    @app_commands.choices(ratio=RATIO_CHOICES, mode=MODE_CHOICES)
    @app_commands.guild_only()
    async def imagine_command(  # noqa: PLR0917 - discord.py maps options to positional parameters
        self,
        interaction: discord.Interaction,
        prompt: str,
        ratio: str = DEFAULT_RATIO,
        mode: str = DEFAULT_MODE,
        image: discord.Attachment | None = None,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
    ) -> None:
        await self._request(
            interaction, prompt, mode, ratio, _image_inputs([image, image2, image3])
        )

    async def cog_load(self) -> None:
        self._tree.add_command(self.animate_menu)

    async def cog_unload(self) -> None:
        self._tree.remove_command(self.animate_menu.name, type=discord.AppCommandType.message)

    # --- Apps → Animate ---------------------------------------------------------------------

    async def animate(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Open the request form for a message's images; a message without one costs nothing."""
        images, size = _images_in(message)
        if not images:
            raise InvalidInput("imagine.animate.no_image")
        await self._open_form(
            interaction,
            title_key="imagine.form.animate_title",
            custom_id=f"imagine:animate:{message.id}",
            images=images,
            ratio=nearest_ratio(*size) if size else DEFAULT_RATIO,
        )

    async def _open_form(
        self,
        interaction: discord.Interaction,
        *,
        title_key: str,
        custom_id: str,
        images: list[ImageInput],
        ratio: str,
        prompt: str = "",
        mode: str = DEFAULT_MODE,
        remix_of: str | None = None,
    ) -> None:
        """Answer with the request form; what it sends becomes a job like /imagine's."""
        modes = offered_modes(
            channel_is_nsfw=_is_nsfw(interaction.channel), with_images=bool(images)
        )

        async def requested(
            submitted: discord.Interaction, prompt: str, mode: str, ratio: str
        ) -> None:
            await self.reporter.guard(
                submitted,
                self._request(submitted, prompt, mode, ratio, images, remix_of=remix_of),
            )

        await interaction.response.send_modal(
            RequestForm(
                self.messages,
                language_for(interaction),
                title_key=title_key,
                custom_id=custom_id,
                on_request=requested,
                prompt=prompt,
                mode=mode if mode in modes else DEFAULT_MODE,
                ratio=ratio,
                modes=modes,
                ratios=RATIOS,
                max_prompt_length=self.settings.max_prompt_length,
            )
        )

    async def _request(
        self,
        interaction: discord.Interaction,
        prompt: str,
        mode: str,
        ratio: str,
        images: list[ImageInput],
        *,
        remix_of: str | None = None,
    ) -> None:
        """/imagine, Animate and Remix: validate, acknowledge, then ask for the video."""
        # Checks that need no I/O answer privately at once: nothing public flashes first.
        request = validate_imagine(
            prompt,
            mode=mode,
            ratio=ratio,
            images=images,
            channel_is_nsfw=_is_nsfw(interaction.channel),
            max_prompt_length=self.settings.max_prompt_length,
            max_image_bytes=self.settings.max_image_bytes,
        )
        progress_message_id = await self._acknowledge(interaction)
        await self.imagine.request(
            _requester(interaction, progress_message_id), request, reroll_of=remix_of
        )

    async def _acknowledge(self, interaction: discord.Interaction) -> int | None:
        """Defer first: everything else may take longer than Discord's three seconds.

        Returns the id of the public "thinking…" message that will show the job's progress.
        """
        async with self._acknowledgements.acknowledging():
            response = await interaction.response.defer(thinking=True)
        waited = discord.utils.utcnow() - interaction.created_at
        self.metrics.ack_latency.observe(max(0.0, waited.total_seconds()))
        await self._acknowledgements.wait_turn()
        return response.message_id if response is not None else None

    # --- buttons ----------------------------------------------------------------------------

    async def on_result_button(
        self, interaction: discord.Interaction, action: str, job_id: str
    ) -> None:
        steps = {
            "reroll": self._reroll,
            "remix": self._remix,
            "delete": self._delete,
            "cancel": self._cancel,
        }
        await self.reporter.guard(interaction, steps[action](interaction, job_id))

    async def _reroll(self, interaction: discord.Interaction, job_id: str) -> None:
        progress_message_id = await self._acknowledge(interaction)
        await self.imagine.reroll(_requester(interaction, progress_message_id), job_id)

    async def _remix(self, interaction: discord.Interaction, job_id: str) -> None:
        """The form, filled in with the video's request; the edit is a new job for the sender."""
        assert interaction.guild_id is not None
        original = await self.imagine.request_of(job_id, interaction.guild_id)
        await self._open_form(
            interaction,
            title_key="imagine.form.remix_title",
            custom_id=f"imagine:remix-form:{job_id}",
            images=[_image_at(url) for url in original.images],
            ratio=original.ratio,
            prompt=original.prompt,
            mode=original.mode,
            remix_of=job_id,
        )

    async def _cancel(self, interaction: discord.Interaction, job_id: str) -> None:
        requester = await self.imagine.requester_of(job_id)
        if requester is not None and not is_requester_or_moderator(
            interaction, self.settings, requester
        ):
            await interaction.response.send_message(
                self.messages.text(language_for(interaction), "imagine.cancel.not_allowed"),
                ephemeral=True,
            )
            return
        # The job's own message turns into the notice (refund included): nothing else to say.
        await interaction.response.defer()
        assert interaction.guild_id is not None
        await self.imagine.cancel(job_id, interaction.guild_id)

    async def _delete(self, interaction: discord.Interaction, job_id: str) -> None:
        language = language_for(interaction)
        requester = await self.imagine.requester_of(job_id)
        if requester is None or not is_requester_or_moderator(
            interaction, self.settings, requester
        ):
            await interaction.response.send_message(
                self.messages.text(language, "imagine.delete.not_allowed"), ephemeral=True
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        if interaction.message is not None:
            with contextlib.suppress(discord.NotFound):  # someone else deleted it first
                await interaction.message.delete()
        await interaction.followup.send(
            self.messages.text(language, "imagine.delete.done"), ephemeral=True
        )
