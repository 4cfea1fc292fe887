"""Checks on an /imagine request that run before any credit is reserved or any API is called."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import PurePosixPath

from yarl import URL

from bot.api_contract import (
    DEFAULT_RATIO,
    IMAGE_TYPES,
    MAX_IMAGES,
    MODES,
    RATIOS,
    SPICY_MODE,
    accepts_images,
)
from bot.errors import InvalidInput
from bot.grok import GenerateRequest


@dataclass(frozen=True, slots=True)
class ImageInput:
    """What we know about an attached image without downloading it."""

    filename: str
    content_type: str | None
    size: int
    url: str


def _check_image(image: ImageInput, max_image_bytes: int) -> None:
    content_type = (image.content_type or "").split(";")[0].strip().lower()
    suffix = PurePosixPath(image.filename.lower()).suffix
    if suffix not in IMAGE_TYPES.get(content_type, ()):
        raise InvalidInput("imagine.error.image_type", filename=image.filename)
    if image.size > max_image_bytes:
        raise InvalidInput(
            "imagine.error.image_too_large", filename=image.filename, max_bytes=max_image_bytes
        )


def validate_imagine(
    prompt: str,
    *,
    mode: str,
    ratio: str,
    images: list[ImageInput],
    channel_is_nsfw: bool,
    max_prompt_length: int,
    max_image_bytes: int,
) -> GenerateRequest:
    """Turn raw command input into an API request, or refuse with a readable reason."""
    text = prompt.strip()
    if not text:
        raise InvalidInput("imagine.error.empty_prompt")
    if len(text) > max_prompt_length:
        raise InvalidInput(
            "imagine.error.prompt_too_long", length=len(text), max_length=max_prompt_length
        )
    if mode not in MODES:
        raise InvalidInput("imagine.error.unknown_mode", mode=mode)
    if ratio not in RATIOS:
        raise InvalidInput("imagine.error.unknown_ratio", ratio=ratio)
    if len(images) > MAX_IMAGES:
        raise InvalidInput("imagine.error.too_many_images", max_images=MAX_IMAGES)
    for image in images:
        _check_image(image, max_image_bytes)
    if mode == SPICY_MODE and not channel_is_nsfw:
        raise InvalidInput("imagine.error.spicy_channel")
    if images and not accepts_images(mode):
        raise InvalidInput("imagine.error.spicy_images")
    return GenerateRequest(
        prompt=text, mode=mode, ratio=ratio, images=tuple(image.url for image in images)
    )


def nearest_ratio(width: int | None, height: int | None) -> str:
    """The supported aspect ratio closest to an image's own (by the ratio's logarithm, so that
    2:1 is as far from 1:1 as 1:2); the default one when the size is unknown."""
    if not width or not height or width <= 0 or height <= 0:
        return DEFAULT_RATIO
    own = math.log(width / height)

    def distance(ratio: str) -> float:
        across, down = (int(part) for part in ratio.split(":"))
        return abs(math.log(across / down) - own)

    return min(RATIOS, key=distance)


def image_type_of(url: str) -> str | None:
    """The content type an image URL's file name promises (for images known only by URL)."""
    suffix = PurePosixPath(URL(url).path.lower()).suffix
    return next((kind for kind, suffixes in IMAGE_TYPES.items() if suffix in suffixes), None)
