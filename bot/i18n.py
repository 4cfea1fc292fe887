"""Message catalogs (one TOML file per language under ``bot/locales``) and locale formatting.

Every text a member or admin can read comes from here, chosen by the interaction's locale, then
the server's, then English. Placeholders are ``str.format`` fields; integers and floats passed
as parameters are formatted for the language, and integers named ``*_bytes`` as file sizes.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any

DEFAULT_LANGUAGE = "en"
SUPPORTED_LANGUAGES = ("en", "de")

# Thousands and decimal separators per language.
_SEPARATORS = {"en": (",", "."), "de": (".", ",")}
# Parameters with this suffix hold a byte count and read as a file size ("10 MB").
_SIZE_SUFFIX = "_bytes"
_SIZE_UNITS = (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024))


def language_of(locale: str | None) -> str | None:
    """``"de"``/``"de-AT"`` → ``"de"``; ``"en-US"`` → ``"en"``; unsupported → None."""
    if not locale:
        return None
    language = str(locale).split("-")[0].split("_")[0].lower()
    return language if language in SUPPORTED_LANGUAGES else None


def pick_language(*locales: str | None) -> str:
    """The first supported language among the given locales (member's first), else English."""
    for locale in locales:
        language = language_of(locale)
        if language is not None:
            return language
    return DEFAULT_LANGUAGE


def format_number(language: str, value: float, decimals: int = 0) -> str:
    thousands, decimal = _SEPARATORS.get(language, _SEPARATORS[DEFAULT_LANGUAGE])
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\0").replace(".", decimal).replace("\0", thousands)


def format_size(language: str, size_bytes: int) -> str:
    """``10485760`` → ``"10 MB"``; ``1572864`` → ``"1.5 MB"`` (``"1,5 MB"`` in German)."""
    for unit, factor in _SIZE_UNITS:
        if size_bytes >= factor:
            value = round(size_bytes / factor, 1)
            return f"{format_number(language, value, 0 if value.is_integer() else 1)} {unit}"
    return f"{format_number(language, size_bytes)} B"


def _flatten(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, str(value)


def placeholders(template: str) -> frozenset[str]:
    return frozenset(
        field.split(".")[0].split("[")[0]
        for _, field, _, _ in string.Formatter().parse(template)
        if field
    )


class Messages:
    """All catalogs, loaded once at start-up."""

    def __init__(self, catalogs: Mapping[str, Mapping[str, str]]) -> None:
        if DEFAULT_LANGUAGE not in catalogs:
            raise ValueError("the English catalog is required")
        self._catalogs = {language: dict(entries) for language, entries in catalogs.items()}

    @classmethod
    def load(cls) -> Messages:
        folder = resources.files("bot") / "locales"
        catalogs = {}
        for language in SUPPORTED_LANGUAGES:
            with (folder / f"{language}.toml").open("rb") as file:
                catalogs[language] = dict(_flatten(tomllib.load(file)))
        return cls(catalogs)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self._catalogs)

    def keys(self, language: str) -> frozenset[str]:
        return frozenset(self._catalogs.get(language, {}))

    def template(self, language: str, key: str) -> str:
        catalog = self._catalogs.get(language) or self._catalogs[DEFAULT_LANGUAGE]
        template = catalog.get(key)
        if template is None:
            template = self._catalogs[DEFAULT_LANGUAGE].get(key)
        if template is None:
            raise KeyError(f"no message {key!r}")
        return template

    def has(self, key: str) -> bool:
        return key in self._catalogs[DEFAULT_LANGUAGE]

    def text(self, language: str, key: str, /, **params: Any) -> str:
        """The message ``key`` in ``language`` with its placeholders filled in."""
        formatted = {
            name: self._format_value(language, name, value) for name, value in params.items()
        }
        return self.template(language, key).format(**formatted)

    @staticmethod
    def _format_value(language: str, name: str, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and name.endswith(_SIZE_SUFFIX):
            return format_size(language, value)
        if isinstance(value, int):
            return format_number(language, value)
        if isinstance(value, float):
            return format_number(language, value, decimals=1)
        return value

    def videos(self, language: str, count: int) -> str:
        """ "1 video", "3 videos" (and German forms): the one count that needs a plural."""
        key = "units.video_one" if count == 1 else "units.video_other"
        return self.text(language, key, count=count)
