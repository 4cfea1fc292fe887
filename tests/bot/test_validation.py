import pytest

from bot.errors import InvalidInput
from bot.validation import ImageInput, validate_imagine

LIMITS = {"max_prompt_length": 100, "max_image_bytes": 1000}


def image(name="cat.png", content_type="image/png", size=10):
    return ImageInput(
        filename=name, content_type=content_type, size=size, url=f"https://cdn/{name}"
    )


def check(prompt="a cat", *, mode="normal", ratio="16:9", images=(), nsfw=False):
    return validate_imagine(
        prompt, mode=mode, ratio=ratio, images=list(images), channel_is_nsfw=nsfw, **LIMITS
    )


def refused(**kwargs) -> InvalidInput:
    with pytest.raises(InvalidInput) as raised:
        check(**kwargs)
    return raised.value


def test_a_good_request_becomes_an_api_request():
    request = check("  a cat surfing  ", mode="fun", ratio="9:16", images=[image()])
    assert request.prompt == "a cat surfing"
    assert request.mode == "fun"
    assert request.ratio == "9:16"
    assert request.images == ("https://cdn/cat.png",)


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_empty_prompt(prompt):
    assert refused(prompt=prompt).key == "imagine.error.empty_prompt"


def test_huge_prompt():
    error = refused(prompt="x" * 101)
    assert error.key == "imagine.error.prompt_too_long"
    assert error.params == {"length": 101, "max_length": 100}


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("cat.gif", "image/gif"),
        ("cat.png", "image/jpeg"),
        ("cat.exe", "image/png"),
        ("cat.png", None),
        ("video.mp4", "video/mp4"),
    ],
)
def test_wrong_image_types(name, content_type):
    error = refused(images=[image(name, content_type)])
    assert error.key == "imagine.error.image_type"
    assert error.params == {"filename": name}


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("a.PNG", "image/png"),
        ("a.jpg", "image/jpeg"),
        ("a.jpeg", "image/jpeg; charset=x"),
        ("a.webp", "image/webp"),
    ],
)
def test_accepted_image_types(name, content_type):
    assert check(images=[image(name, content_type)]).images


def test_image_too_large():
    error = refused(images=[image(size=1001)])
    assert error.key == "imagine.error.image_too_large"


def test_spicy_needs_an_age_restricted_channel_and_no_images():
    assert refused(mode="spicy").key == "imagine.error.spicy_channel"
    assert refused(mode="spicy", nsfw=True, images=[image()]).key == "imagine.error.spicy_images"
    assert check(mode="spicy", nsfw=True).mode == "spicy"


def test_unknown_mode_and_ratio():
    assert refused(mode="wild").key == "imagine.error.unknown_mode"
    assert refused(ratio="4:3").key == "imagine.error.unknown_ratio"
