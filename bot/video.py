"""Downloading finished videos: streamed to a temporary file, with a size cap, https only."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import aiohttp
from yarl import URL

CHUNK_BYTES = 256 * 1024


class VideoUnavailable(Exception):
    """The video could not be fetched (refused URL, HTTP error, transport failure)."""


@dataclass(frozen=True, slots=True)
class FetchedVideo:
    """A downloaded video on disk, or ``path=None`` when it exceeded the cap (send a link)."""

    url: str
    filename: str
    path: Path | None
    size: int | None


def video_filename(url: str, index: int) -> str:
    name = PurePosixPath(URL(url).path).name
    if not name.lower().endswith((".mp4", ".webm", ".mov")):
        name = f"video-{index + 1}.mp4"
    return name


class VideoFetcher:
    """Streams videos from the API's CDN without ever holding one in memory."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        allowed_http_origins: Collection[str] = (),
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        self._session = session
        # Plain http only from origins the operator chose (the API's own base URL: a local
        # simulator or proxy); anything else must be https.
        self._http_origins = frozenset(str(URL(origin).origin()) for origin in allowed_http_origins)
        self._timeout = timeout or aiohttp.ClientTimeout(total=300, connect=10, sock_read=60)

    def is_allowed(self, url: str) -> bool:
        parsed = URL(url)
        if parsed.scheme == "https" and parsed.host:
            return True
        return parsed.scheme == "http" and str(parsed.origin()) in self._http_origins

    @contextlib.asynccontextmanager
    async def fetch(self, url: str, *, index: int, max_bytes: int) -> AsyncIterator[FetchedVideo]:
        """Download ``url`` into a temporary file that lives for the ``async with`` block.

        A video larger than ``max_bytes`` is not kept: the result has ``path=None`` and the
        caller posts the link instead.
        """
        if not self.is_allowed(url):
            raise VideoUnavailable(f"refusing to download from {URL(url).origin()}")
        filename = video_filename(url, index)
        with tempfile.TemporaryDirectory(prefix="imagine-video-") as folder:
            path = Path(folder) / filename
            size = await self._download(url, path, max_bytes)
            yield FetchedVideo(
                url=url, filename=filename, path=path if size is not None else None, size=size
            )

    async def _download(self, url: str, path: Path, max_bytes: int) -> int | None:
        try:
            async with self._session.get(url, timeout=self._timeout) as response:
                if response.status != 200:
                    raise VideoUnavailable(f"HTTP {response.status} from the video host")
                if response.content_length is not None and response.content_length > max_bytes:
                    return None
                written = 0
                with path.open("wb") as out:
                    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                        written += len(chunk)
                        if written > max_bytes:
                            return None
                        out.write(chunk)
                return written
        except (aiohttp.ClientError, TimeoutError) as error:
            raise VideoUnavailable(f"download failed: {error!r}") from error
