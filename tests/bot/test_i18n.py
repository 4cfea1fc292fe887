import re

import pytest

from bot.i18n import Messages, format_number, language_of, pick_language, placeholders


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


def test_durations(messages):
    assert messages.duration("en", 45) == "45 s"
    assert messages.duration("en", 125) == "2 min 5 s"
    assert messages.duration("de", 125) == "2 Min. 5 Sek."
    assert messages.duration("de", 7260) == "2 Std. 1 Min."


def test_unknown_key_is_an_error(messages):
    with pytest.raises(KeyError):
        messages.text("en", "no.such.key")
