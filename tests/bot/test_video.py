"""Video downloads against the simulator's CDN over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.simulator import Simulator, SimulatorConfig, sample_video
from bot.video import VideoFetcher, VideoUnavailable, video_filename
from tests.support.clock import FakeClock


@pytest.fixture
async def finished_task(clock: FakeClock) -> AsyncIterator[tuple[Simulator, str]]:
    simulator = Simulator(SimulatorConfig(min_seconds=1, max_seconds=2), clock=clock)
    await simulator.start()
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{simulator.url}/v1/generate",
            json={"prompt": "a cat", "mode": "fun", "ratio": "1:1"},
            headers={"Authorization": "Bearer key"},
        )
        task_id = (await response.json())["data"]["task_id"]
    simulator.complete_task(task_id)
    yield simulator, f"{simulator.url}/videos/{task_id}/1.mp4"
    await simulator.close()


async def test_downloads_a_video_into_a_temporary_file(finished_task) -> None:
    simulator, url = finished_task
    async with aiohttp.ClientSession() as http:
        fetcher = VideoFetcher(http, allowed_http_origins=[simulator.url])
        async with fetcher.fetch(url, index=0, max_bytes=10_000_000) as video:
            assert video.path is not None
            assert video.path.read_bytes() == sample_video()
            assert video.size == len(sample_video())
            kept = video.path
        assert not kept.exists()


async def test_a_video_over_the_cap_is_not_kept(finished_task) -> None:
    simulator, url = finished_task
    simulator.config.video_bytes = 5 * 1024 * 1024
    async with aiohttp.ClientSession() as http:
        fetcher = VideoFetcher(http, allowed_http_origins=[simulator.url])
        async with fetcher.fetch(url, index=0, max_bytes=1024 * 1024) as video:
            assert video.path is None
            assert video.url == url


async def test_plain_http_is_refused_from_any_other_origin(finished_task) -> None:
    _, url = finished_task
    async with aiohttp.ClientSession() as http:
        fetcher = VideoFetcher(http)
        assert not fetcher.is_allowed(url)
        assert fetcher.is_allowed("https://cdn.example.com/v.mp4")
        assert not fetcher.is_allowed("file:///etc/passwd")
        with pytest.raises(VideoUnavailable):
            async with fetcher.fetch(url, index=0, max_bytes=10_000_000):
                pass


async def test_a_missing_video_is_unavailable(finished_task) -> None:
    simulator, url = finished_task
    async with aiohttp.ClientSession() as http:
        fetcher = VideoFetcher(http, allowed_http_origins=[simulator.url])
        with pytest.raises(VideoUnavailable):
            async with fetcher.fetch(url.replace("/1.mp4", "/9.mp4"), index=0, max_bytes=10**7):
                pass


def test_filenames_come_from_the_url_or_a_safe_default() -> None:
    assert video_filename("https://cdn/x/clip.mp4?sig=1", 0) == "clip.mp4"
    assert video_filename("https://cdn/x/download", 1) == "video-2.mp4"
