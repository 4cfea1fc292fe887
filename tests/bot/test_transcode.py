"""Shrinking videos over the upload limit, with the real bundled ffmpeg and a scripted stand-in."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot import transcode
from bot.transcode import (
    EncodeSettings,
    ShrinkOutcome,
    VideoInfo,
    VideoShrinker,
    bundled_ffmpeg,
    encode_command,
    parse_probe,
    plan_encode,
)

CLIP_SECONDS = 3


def make_clip(path: Path, *, audio: bool = True) -> Path:
    """A few seconds of a small moving test picture (and a tone), losslessly: a big file."""
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=30:duration={CLIP_SECONDS}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={CLIP_SECONDS}"]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p"]
    if audio:
        codecs += ["-c:a", "aac", "-b:a", "128k"]
    subprocess.run(
        [
            bundled_ffmpeg(),
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            *inputs,
            *codecs,
            "-shortest",
            str(path),
        ],
        check=True,
    )
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4")


@pytest.fixture(scope="module")
def silent_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "silent.mp4", audio=False)


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], Any]]:
    """Every process the shrinker starts: its arguments and the process."""
    seen: list[tuple[list[str], Any]] = []
    real_exec = asyncio.create_subprocess_exec

    async def recording_exec(*argv: str, **options: Any) -> Any:
        process = await real_exec(*argv, **options)
        seen.append((list(argv), process))
        return process

    monkeypatch.setattr(transcode.asyncio, "create_subprocess_exec", recording_exec)
    return seen


def encodes(spawned: list[tuple[list[str], Any]]) -> list[list[str]]:
    return [argv for argv, _ in spawned if "-c:v" in argv]


def fake_ffmpeg(folder: Path, encode: str) -> Callable[[], str]:
    """A stand-in for ffmpeg that calls every input a 3 s 320x240 clip; ``encode`` is shell run
    for an encode, with ``$output`` the file to write."""
    script = folder / "fake-ffmpeg"
    script.write_text(
        "#!/bin/sh\n"
        "for output; do :; done\n"
        'case " $* " in\n'
        f'  *" -c:v "*) {encode} ;;\n'
        "  *) echo '  Duration: 00:00:03.00, start: 0.000000, bitrate: 9000 kb/s' >&2\n"
        "     echo '  Stream #0:0(und): Video: h264, yuv420p, 320x240, 9000 kb/s, 30 fps' >&2\n"
        "     exit 1 ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    return lambda: str(script)


# Path operations in plain functions: the async tests would otherwise be told they block.
def size_of(path: Path) -> int:
    return path.stat().st_size


def files_in(folder: Path) -> list[Path]:
    return list(folder.iterdir()) if folder.exists() else []


def decodes_cleanly(path: Path) -> bool:
    result = subprocess.run(
        [
            bundled_ffmpeg(),
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(path),
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and not result.stderr.strip()


def probe(path: Path) -> VideoInfo | None:
    result = subprocess.run(
        [bundled_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return parse_probe(result.stderr)


# --- with the real ffmpeg -----------------------------------------------------------------------


async def test_a_big_clip_is_shrunk_to_fit_and_still_plays(clip: Path, tmp_path: Path) -> None:
    limit = size_of(clip) // 3
    shrinker = VideoShrinker()

    result = await shrinker.shrink(clip, max_bytes=limit, workdir=tmp_path / "out")

    assert result.outcome is ShrinkOutcome.FITTED, result.detail
    assert result.path is not None
    assert result.path.parent == tmp_path / "out"
    assert result.size == size_of(result.path) <= limit
    assert result.attempts in (1, 2)
    assert result.settings is not None
    assert result.settings.audio_kbps == 96
    assert (result.settings.width, result.settings.height) == (320, 240)
    assert result.elapsed > 0
    shrunk = probe(result.path)
    assert shrunk is not None
    assert shrunk.has_audio
    assert (shrunk.width, shrunk.height) == (320, 240)
    assert shrunk.duration == pytest.approx(CLIP_SECONDS, abs=0.1)
    assert decodes_cleanly(result.path)


async def test_a_clip_without_sound_gets_no_audio_track(silent_clip: Path, tmp_path: Path) -> None:
    shrinker = VideoShrinker()

    result = await shrinker.shrink(
        silent_clip, max_bytes=size_of(silent_clip) // 3, workdir=tmp_path
    )

    assert result.fitted, result.detail
    assert result.settings is not None
    assert result.settings.audio_kbps == 0
    assert result.path is not None
    shrunk = probe(result.path)
    assert shrunk is not None
    assert not shrunk.has_audio


async def test_a_limit_too_small_for_watchable_video_runs_no_encode(
    clip: Path, tmp_path: Path, spawned: list[tuple[list[str], Any]]
) -> None:
    shrinker = VideoShrinker(min_video_kbps=250)

    # 20 kB over 3 s: about 50 kbit/s for everything.
    result = await shrinker.shrink(clip, max_bytes=20_000, workdir=tmp_path)

    assert result.outcome is ShrinkOutcome.TOO_LOW_QUALITY
    assert "250 kbit/s" in result.detail
    assert result.attempts == 0
    assert result.path is None
    assert result.source is not None
    assert result.source.duration == pytest.approx(CLIP_SECONDS, abs=0.1)
    assert len(spawned) == 1  # the probe
    assert encodes(spawned) == []
    assert files_in(tmp_path) == []


async def test_a_shrink_over_its_time_limit_leaves_no_process_and_no_file(
    clip: Path, tmp_path: Path, spawned: list[tuple[list[str], Any]]
) -> None:
    shrinker = VideoShrinker(time_limit=0.001)

    result = await shrinker.shrink(clip, max_bytes=size_of(clip) // 3, workdir=tmp_path)

    assert result.outcome is ShrinkOutcome.TIMED_OUT
    assert result.path is None
    assert all(process.returncode is not None for _, process in spawned)
    assert files_in(tmp_path) == []
    assert shrinker.running == 0


async def test_a_corrupt_file_fails_with_what_ffmpeg_said(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video at all " * 500)
    workdir = tmp_path / "out"

    result = await VideoShrinker().shrink(corrupt, max_bytes=1000, workdir=workdir)

    assert result.outcome is ShrinkOutcome.FAILED
    assert "Invalid data" in result.detail
    assert "\n" not in result.detail
    assert result.path is None
    assert files_in(workdir) == []


@pytest.mark.parametrize(("max_concurrent", "expected_peak"), [(1, 1), (2, 2)])
async def test_no_more_shrinks_run_at_once_than_allowed(
    silent_clip: Path, tmp_path: Path, max_concurrent: int, expected_peak: int
) -> None:
    shrinker = VideoShrinker(max_concurrent=max_concurrent)
    limit = size_of(silent_clip) // 3

    results = await asyncio.gather(
        shrinker.shrink(silent_clip, max_bytes=limit, workdir=tmp_path),
        shrinker.shrink(silent_clip, max_bytes=limit, workdir=tmp_path),
    )

    assert all(result.fitted for result in results)
    assert shrinker.peak_running == expected_peak
    assert shrinker.running == 0
    # Two shrinks of one file in one folder: each has a file of its own.
    assert len({result.path for result in results}) == 2
    if max_concurrent == 1:
        first, second = sorted(results, key=lambda result: result.waited)
        assert second.waited >= first.elapsed * 0.9


# --- with a scripted stand-in -------------------------------------------------------------------


async def test_an_encode_past_the_deadline_is_killed_and_its_file_deleted(
    tmp_path: Path, spawned: list[tuple[list[str], Any]]
) -> None:
    workdir = tmp_path / "out"
    hanging = fake_ffmpeg(tmp_path, encode=': > "$output"; exec sleep 60')
    shrinker = VideoShrinker(ffmpeg_path=hanging, time_limit=0.5)

    result = await shrinker.shrink(tmp_path / "in.mp4", max_bytes=1_000_000, workdir=workdir)

    assert result.outcome is ShrinkOutcome.TIMED_OUT
    assert result.attempts == 1
    assert len(encodes(spawned)) == 1
    assert all(process.returncode is not None for _, process in spawned)
    assert files_in(workdir) == []


async def test_a_cancelled_shrink_kills_its_encode_and_deletes_its_file(
    tmp_path: Path, spawned: list[tuple[list[str], Any]]
) -> None:
    workdir = tmp_path / "out"
    hanging = fake_ffmpeg(tmp_path, encode=': > "$output"; exec sleep 60')
    shrinker = VideoShrinker(ffmpeg_path=hanging)
    task = asyncio.create_task(
        shrinker.shrink(tmp_path / "in.mp4", max_bytes=1_000_000, workdir=workdir)
    )
    async with asyncio.timeout(10):
        while not (files_in(workdir) and encodes(spawned)):  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert all(process.returncode is not None for _, process in spawned)
    assert files_in(workdir) == []
    assert shrinker.running == 0


async def test_a_failed_encode_reports_ffmpegs_last_line(tmp_path: Path) -> None:
    failing = fake_ffmpeg(
        tmp_path, encode='echo "frame 1" >&2; echo "Conversion failed!" >&2; exit 1'
    )

    result = await VideoShrinker(ffmpeg_path=failing).shrink(
        tmp_path / "in.mp4", max_bytes=1_000_000, workdir=tmp_path / "out"
    )

    assert result.outcome is ShrinkOutcome.FAILED
    assert result.detail == "Conversion failed!"
    assert files_in(tmp_path / "out") == []


async def test_an_output_over_the_limit_is_tried_again_at_a_proportionally_lower_bitrate(
    tmp_path: Path, spawned: list[tuple[list[str], Any]]
) -> None:
    # The first encode misses by 20 %, the second lands.
    overshooting = fake_ffmpeg(
        tmp_path,
        encode=(
            f'if [ -e "{tmp_path}/tried" ]; then head -c 500000 /dev/zero > "$output"; '
            f'else : > "{tmp_path}/tried"; head -c 1200000 /dev/zero > "$output"; fi'
        ),
    )
    workdir = tmp_path / "out"

    result = await VideoShrinker(ffmpeg_path=overshooting).shrink(
        tmp_path / "in.mp4", max_bytes=1_000_000, workdir=workdir
    )

    assert result.fitted, result.detail
    assert result.attempts == 2
    assert result.size == 500_000
    assert files_in(workdir) == [result.path]
    first, second = (
        int(argv[argv.index("-b:v") + 1].removesuffix("k")) for argv in encodes(spawned)
    )
    budget_seconds = 3 + transcode.VBV_ALLOWANCE_SECONDS  # the stand-in's clip lasts 3 s
    assert first == int(1_000_000 * 8 / 1000 * (1 - transcode.SIZE_MARGIN) / budget_seconds)
    assert second == pytest.approx(first / 1.2 * 0.95, abs=1)


async def test_an_output_still_over_the_limit_after_two_tries_fails(tmp_path: Path) -> None:
    workdir = tmp_path / "out"
    bloated = fake_ffmpeg(tmp_path, encode='head -c 1200000 /dev/zero > "$output"')

    result = await VideoShrinker(ffmpeg_path=bloated).shrink(
        tmp_path / "in.mp4", max_bytes=1_000_000, workdir=workdir
    )

    assert result.outcome is ShrinkOutcome.FAILED
    assert result.attempts == 2
    assert "1200000 bytes" in result.detail
    assert files_in(workdir) == []


async def test_a_missing_ffmpeg_is_a_failure_not_an_exception(tmp_path: Path) -> None:
    def no_ffmpeg() -> str:
        raise RuntimeError("No ffmpeg exe could be found")

    result = await VideoShrinker(ffmpeg_path=no_ffmpeg).shrink(
        tmp_path / "in.mp4", max_bytes=1_000_000, workdir=tmp_path
    )
    gone = await VideoShrinker(ffmpeg_path=lambda: str(tmp_path / "nowhere")).shrink(
        tmp_path / "in.mp4", max_bytes=1_000_000, workdir=tmp_path
    )

    assert result.outcome is ShrinkOutcome.FAILED
    assert "No ffmpeg" in result.detail
    assert gone.outcome is ShrinkOutcome.FAILED


# --- planning and reading ffmpeg's description ----------------------------------------------------

PLAN = {"min_video_kbps": 250, "min_short_side": 240, "preset": "veryfast"}


def test_a_generous_budget_keeps_the_picture_size() -> None:
    info = VideoInfo(duration=6, width=1280, height=720, fps=24, has_audio=True, audio_kbps=128)

    settings = plan_encode(info, 10_000, **PLAN)  # type: ignore[arg-type]

    assert settings == EncodeSettings(9904, 96, 1280, 720, "veryfast")


def test_a_tight_budget_scales_the_picture_down_by_its_short_side() -> None:
    portrait = VideoInfo(duration=60, width=1080, height=1920, fps=30, has_audio=False)

    settings = plan_encode(portrait, 1300, **PLAN)  # type: ignore[arg-type]

    # 1300 kbit/s: 0.02 bits per pixel at 1080x1920, 0.08 only from 540x960.
    assert settings is not None
    assert (settings.width, settings.height, settings.audio_kbps) == (540, 960, 0)


def test_below_the_floor_there_is_no_plan_and_never_below_the_smallest_size() -> None:
    info = VideoInfo(duration=60, width=1280, height=720, fps=30, has_audio=True)

    assert plan_encode(info, 300, **PLAN) is None  # type: ignore[arg-type]
    settings = plan_encode(info, 400, **PLAN)  # type: ignore[arg-type]
    assert settings is not None
    assert (settings.width, settings.height) == (426, 240)


def test_parse_probe_reads_duration_size_rate_audio_and_rotation() -> None:
    text = """
Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'phone.mp4':
  Duration: 00:01:02.50, start: 0.000000, bitrate: 18412 kb/s
  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709), 1920x1080 [SAR 1:1 DAR 16:9], 18251 kb/s, 29.97 fps, 29.97 tbr, 90k tbn (default)
      Side data:
        displaymatrix: rotation of -90.00 degrees
  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, stereo, fltp, 152 kb/s (default)
  Stream #0:2: Video: mjpeg (Baseline), yuvj420p, 300x300, 90k tbn (attached pic)
"""  # noqa: E501

    assert parse_probe(text) == VideoInfo(
        duration=62.5, width=1080, height=1920, fps=29.97, has_audio=True, audio_kbps=152
    )
    assert parse_probe("Error opening input: Invalid data found when processing input") is None


def test_the_encode_command_is_plain_arguments_for_no_shell() -> None:
    settings = EncodeSettings(2000, 0, 1280, 720, "veryfast")

    argv = encode_command("ffmpeg", Path("in put.mp4"), Path("out.mp4"), settings)

    assert argv[argv.index("-i") + 1] == "in put.mp4"
    assert "-an" in argv
    assert argv[argv.index("-maxrate") + 1] == "2000k"
    assert argv[-3:] == ["-movflags", "+faststart", "out.mp4"]
