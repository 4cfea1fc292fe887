"""Command names, descriptions and choices in every catalog language, sent with the sync."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.i18n import DEFAULT_LANGUAGE, Messages, language_of


def text(message: str, key: str) -> app_commands.locale_str:
    """An English string that the translator looks up by ``key`` for other languages."""
    return app_commands.locale_str(message, key=key)


class CatalogTranslator(app_commands.Translator):
    """Answers discord.py's translation requests from the message catalogs."""

    def __init__(self, messages: Messages) -> None:
        self._messages = messages

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        key = string.extras.get("key")
        language = language_of(locale.value)
        if key is None or language is None or language == DEFAULT_LANGUAGE:
            return None
        if key not in self._messages.keys(language):
            return None
        return self._messages.template(language, key)
