"""What the GrokImagine API accepts, defined once.

The API client (``bot.grok``), the input checks (``bot.validation``) and the simulator
(``bot.simulator``) read these names, and so should the Discord command's choices and defaults:
nobody keeps a copy of their own. The domain only; nothing here knows about Discord.

The reference (``POST /v1/generate {mode, prompt, images?, ratio}``) names the fields but not
their values. The values below follow public material on Grok Imagine video and are treated as
likely, not guaranteed: the simulator enforces them, so a change here changes the stand-in too.
Names starting with ``API_`` are the API's own limits; the others are this bot's narrower ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# -- modes ------------------------------------------------------------------------------------

MODES: tuple[str, ...] = ("fun", "normal", "spicy")  # in the order the command offers them
DEFAULT_MODE = "normal"
SPICY_MODE = "spicy"  # adult content: age-restricted channels only (the bot's rule)
MODES_WITHOUT_IMAGES: frozenset[str] = frozenset({SPICY_MODE})  # the API refuses images here

# -- aspect ratios ----------------------------------------------------------------------------

RATIOS: tuple[str, ...] = ("16:9", "9:16", "1:1", "2:3", "3:2")  # in the command's order
DEFAULT_RATIO = "16:9"

# -- prompt and input images ------------------------------------------------------------------

# "A few thousand characters": the simulator refuses longer prompts. The bot's own, lower limit
# is the MAX_PROMPT_LENGTH setting.
API_MAX_PROMPT_CHARS = 4000
API_MAX_IMAGES = 7  # input image URLs per request the API accepts (the simulator enforces it)
MAX_IMAGES = 3  # input images per /imagine: the command offers image, image2 and image3

# Content type → the file endings that may carry it; an attachment's type and name must agree.
IMAGE_TYPES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "image/png": (".png",),
        "image/jpeg": (".jpg", ".jpeg"),
        "image/webp": (".webp",),
    }
)

# -- rate budget ------------------------------------------------------------------------------

# Share of the API key's per-minute rate budget that status checks (background traffic) leave
# free for submissions, which a member is waiting on. The client rounds it down but keeps at
# least one slot (never the whole plan, or status checks could only pass by ageing); the poller
# plans its status checks within the remaining share.
RATE_HEADROOM = 0.1


def accepts_images(mode: str) -> bool:
    """Whether the API takes input images together with ``mode``."""
    return mode not in MODES_WITHOUT_IMAGES
