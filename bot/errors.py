"""Errors that end in a message to a member: each names a catalog key and its placeholders.

The Discord layer renders every one of them through a single path (the command tree's error
handler), in the member's language.
"""

from __future__ import annotations

from typing import Any


class UserFacingError(Exception):
    """A refusal or failure the member should read; ``key`` is a message-catalog key."""

    def __init__(self, key: str, /, **params: Any) -> None:
        self.key = key
        self.params = params
        super().__init__(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r}, {self.params!r})"


class InvalidInput(UserFacingError):
    """The member's input was refused before anything was spent."""


class MissingPermission(UserFacingError):
    """The member may not do this here."""
