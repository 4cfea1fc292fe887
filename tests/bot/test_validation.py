import pytest

from bot import api_contract
from bot.api_contract import API_MAX_IMAGES, IMAGE_TYPES, MAX_IMAGES, MODES, RATIOS, SPICY_MODE
from bot.errors import InvalidInput
from bot.validation import ImageInput, image_type_of, nearest_ratio, validate_imagine

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


def test_at_most_the_bots_own_image_limit():
    assert check(images=[image(f"{n}.png") for n in range(MAX_IMAGES)]).images
    error = refused(images=[image(f"{n}.png") for n in range(MAX_IMAGES + 1)])
    assert error.key == "imagine.error.too_many_images"
    assert error.params == {"max_images": MAX_IMAGES}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ratio", RATIOS)
def test_every_mode_and_ratio_of_the_contract_is_accepted(mode, ratio):
    request = check(mode=mode, ratio=ratio, nsfw=True)
    assert (request.mode, request.ratio) == (mode, ratio)


def test_the_contract_is_consistent():
    assert api_contract.MODES == ("fun", "normal", "spicy")
    assert api_contract.RATIOS == ("16:9", "9:16", "1:1", "2:3", "3:2")
    assert api_contract.DEFAULT_MODE in MODES
    assert api_contract.DEFAULT_RATIO in RATIOS
    assert SPICY_MODE in MODES
    assert not api_contract.accepts_images(SPICY_MODE)
    assert all(api_contract.accepts_images(mode) for mode in MODES if mode != SPICY_MODE)
    assert MAX_IMAGES == 3  # the command offers image, image2 and image3
    assert MAX_IMAGES <= API_MAX_IMAGES
    assert set(IMAGE_TYPES) == {"image/png", "image/jpeg", "image/webp"}
    assert IMAGE_TYPES["image/jpeg"] == (".jpg", ".jpeg")
    with pytest.raises(TypeError):
        IMAGE_TYPES["image/gif"] = (".gif",)  # type: ignore[index]


@pytest.mark.parametrize(
    ("width", "height", "ratio"),
    [
        (1920, 1080, "16:9"),
        (1080, 1920, "9:16"),
        (1000, 1000, "1:1"),
        (1024, 1536, "2:3"),
        (1500, 1000, "3:2"),
        (4000, 1000, "16:9"),  # wider than anything offered: the widest
        (1000, 4000, "9:16"),
        (1100, 1000, "1:1"),
        (None, None, "16:9"),  # size unknown: the default
        (0, 100, "16:9"),
    ],
)
def test_the_nearest_supported_ratio_is_chosen(width, height, ratio):
    assert nearest_ratio(width, height) == ratio


def test_an_image_known_only_by_url_gets_the_type_its_name_promises():
    assert image_type_of("https://cdn.example/a/cat.PNG?ex=1") == "image/png"
    assert image_type_of("https://cdn.example/a/cat.jpeg") == "image/jpeg"
    assert image_type_of("https://cdn.example/a/cat.gif") is None
    assert image_type_of("https://cdn.example/a/cat") is None
