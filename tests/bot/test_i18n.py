import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import pytest

from bot.budget import BudgetChangeReason, LedgerKind, Period
from bot.budget_alerts import AlertSettingsReason
from bot.grok import MODES
from bot.grok import PENDING_STATUSES as API_PENDING_STATUSES
from bot.i18n import (
    Messages,
    format_number,
    format_size,
    language_of,
    pick_language,
    placeholders,
)
from bot.jobs import ACTIVE_STATES


@pytest.fixture(scope="module")
def messages() -> Messages:
    return Messages.load()


def test_every_key_exists_in_every_language(messages):
    english = messages.keys("en")
    for language in messages.languages:
        keys = messages.keys(language)
        assert english - keys == set(), f"missing in {language}"
        assert keys - english == set(), f"only in {language}"


def test_every_message_has_the_same_placeholders_in_every_language(messages):
    for key in messages.keys("en"):
        expected = placeholders(messages.template("en", key))
        for language in messages.languages:
            assert placeholders(messages.template(language, key)) == expected, (language, key)


def _words(template: str) -> str:
    return re.sub(r"\{[^}]*\}|[^A-Za-z ]", "", template).strip()


def test_german_is_not_a_copy_of_english(messages):
    same = [
        key
        for key in messages.keys("en")
        if messages.template("en", key) == messages.template("de", key)
        and not key.startswith("cmd.")
        and len(_words(messages.template("en", key))) > 8
    ]
    assert same == []


def test_documented_api_failures_are_explained_in_german(messages):
    for key in ("unsupported", "inappropriate", "build", "network"):
        german = messages.text("de", f"imagine.failed.{key}")
        english = messages.text("en", f"imagine.failed.{key}")
        assert german != english
        assert "GrokImagine" in german


@pytest.mark.parametrize(
    ("locale", "language"),
    [("de", "de"), ("de-AT", "de"), ("en-US", "en"), ("en-GB", "en"), ("fr", None), (None, None)],
)
def test_language_of_locale(locale, language):
    assert language_of(locale) == language


def test_member_locale_first_then_server_then_english():
    assert pick_language("de", "en-US") == "de"
    assert pick_language("fr", "de") == "de"
    assert pick_language("fr", "es-ES") == "en"
    assert pick_language(None, None) == "en"


def test_numbers_follow_the_language():
    assert format_number("en", 1234567) == "1,234,567"
    assert format_number("de", 1234567) == "1.234.567"
    assert format_number("de", 2.5, decimals=1) == "2,5"


def test_parameters_are_formatted_for_the_language(messages):
    assert "1.000 Credits" in messages.text("de", "units.credits_videos", credits=1000, videos=25)
    assert "1,000 credits" in messages.text("en", "units.credits_videos", credits=1000, videos=25)


def test_unknown_key_is_an_error(messages):
    with pytest.raises(KeyError):
        messages.text("en", "no.such.key")


def test_byte_counts_read_as_file_sizes(messages):
    assert format_size("en", 10 * 1024 * 1024) == "10 MB"
    assert format_size("de", 1536 * 1024) == "1,5 MB"
    assert format_size("en", 2048) == "2 KB"
    assert format_size("de", 512) == "512 B"
    german = messages.text(
        "de", "imagine.error.image_too_large", filename="katze.png", max_bytes=8 * 1024 * 1024
    )
    assert german == "„katze.png“ ist größer als 8 MB."


# --- every key the code uses is in the catalog, and every catalog key is used --------------

SOURCE_FOLDERS = ("bot", "cogs")
CATALOG_SECTIONS = "|".join(("imagine", "budget", "credits", "error", "cmd", "units"))
CATALOG_KEY = re.compile(rf"(?:{CATALOG_SECTIONS})(?:\.[a-z0-9_]+)+")
KEY_PREFIX = re.compile(rf"(?:{CATALOG_SECTIONS})\.")

# Each key the code builds with an f-string, and the finite set of values that completes it.
COMPUTED_KEYS: dict[str, tuple[str, ...]] = {
    "budget.history.kind_": tuple(kind.value for kind in LedgerKind),
    "budget.view.period_": tuple(period.value for period in Period),
    "budget.set.per_": tuple(period.value for period in Period),
    "credits.state_": tuple(state.value for state in ACTIVE_STATES),
    "budget.error.": get_args(BudgetChangeReason),
    "budget.alerts.error.": get_args(AlertSettingsReason),
    "cmd.choice.mode_": MODES,
    # Our own two steps before the API answers, then every status the API reports while working.
    "imagine.status.": ("submitting", "submitted", *sorted(API_PENDING_STATUSES)),
}


@dataclass(frozen=True)
class KeyUse:
    """A catalog key written in the source; ``params`` are the keywords passed along with it."""

    key: str
    where: str
    params: frozenset[str] | None  # None when unknown: not an argument, or ``**params``


@dataclass
class SourceKeys:
    literal: list[KeyUse] = field(default_factory=list)
    prefixes: dict[str, str] = field(default_factory=dict)  # f-string prefix → where


def _source_files() -> list[Path]:
    root = Path(__file__).resolve().parents[2]
    return sorted(
        path
        for folder in SOURCE_FOLDERS
        for path in (root / folder).rglob("*.py")
        if "migrations" not in path.parts
    )


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _keywords(call: ast.Call) -> frozenset[str] | None:
    names = [keyword.arg for keyword in call.keywords]
    if None in names:
        return None
    return frozenset(name for name in names if name is not None)


def _scan(path: Path, found: SourceKeys) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    seen: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            seen.update(id(part) for part in node.values)
            first = node.values[0] if node.values else None
            if first is not None and _is_text(first) and KEY_PREFIX.match(first.value):
                found.prefixes[first.value] = f"{path.name}:{node.lineno}"
        elif isinstance(node, ast.Call):
            for argument in node.args:
                if _is_text(argument) and CATALOG_KEY.fullmatch(argument.value):
                    seen.add(id(argument))
                    where = f"{path.name}:{argument.lineno}"
                    found.literal.append(KeyUse(argument.value, where, _keywords(node)))
    for node in ast.walk(tree):
        if id(node) not in seen and _is_text(node) and CATALOG_KEY.fullmatch(node.value):
            found.literal.append(KeyUse(node.value, f"{path.name}:{node.lineno}", None))


@pytest.fixture(scope="module")
def source_keys() -> SourceKeys:
    found = SourceKeys()
    for path in _source_files():
        _scan(path, found)
    return found


def test_the_source_scan_finds_keys(source_keys):
    # Guards the scan itself: had it found nothing, the tests below would prove nothing.
    keys = {use.key for use in source_keys.literal}
    assert {"imagine.done.title", "cmd.imagine.name", "error.unexpected"} <= keys
    assert "imagine.failed.inappropriate" in keys  # a key that is only a dictionary value
    assert "imagine.status." in source_keys.prefixes


def test_every_key_written_in_code_exists(messages, source_keys):
    missing = [
        f"{use.key} ({use.where})" for use in source_keys.literal if not messages.has(use.key)
    ]
    assert missing == []


def test_every_key_built_in_code_has_its_finite_set_listed(source_keys):
    assert set(source_keys.prefixes) == set(COMPUTED_KEYS), source_keys.prefixes


@pytest.mark.parametrize("prefix", sorted(COMPUTED_KEYS))
def test_every_value_a_built_key_can_take_exists(messages, prefix):
    missing = [f"{prefix}{value}" for value in COMPUTED_KEYS[prefix]]
    assert [key for key in missing if not messages.has(key)] == []


def test_code_passes_exactly_the_placeholders_a_message_needs(messages, source_keys):
    wrong = [
        f"{use.key} ({use.where}): passes {sorted(use.params)}, needs {sorted(needed)}"
        for use in source_keys.literal
        if use.params is not None
        and messages.has(use.key)
        and use.params != (needed := placeholders(messages.template("en", use.key)))
    ]
    assert wrong == []


def test_every_catalog_key_is_used(messages, source_keys):
    used = {use.key for use in source_keys.literal} | {
        f"{prefix}{value}" for prefix, values in COMPUTED_KEYS.items() for value in values
    }
    assert sorted(messages.keys("en") - used) == []


def test_video_counts_agree_with_their_number(messages):
    assert messages.videos("en", 1) == "1 video"
    assert messages.videos("en", 0) == "0 videos"
    assert messages.videos("de", 1) == "1 Video"
    assert messages.videos("de", 1200) == "1.200 Videos"
    assert (
        messages.text("de", "units.credits_videos", credits=40, videos=messages.videos("de", 1))
        == "40 Credits (1 Video)"
    )
