"""Re-encoding a video that is over the upload limit, so that it can still be posted as a file.

The API's result links expire, so a video is worth uploading even when it is bigger than the
server accepts: ``VideoShrinker.shrink`` re-encodes it with ffmpeg to fit ``max_bytes``, or
says why it could not (the caller then posts the link).

Choices (measured on clips like those of ``python -m bench.transcode``, on 2 CPUs):

* H.264 (libx264, ``-preset veryfast``, yuv420p) and AAC in MP4 with ``+faststart``: plays inline
  in every Discord client. One pass at an average bitrate, capped by ``-maxrate`` with a
  one-second ``-bufsize``: two passes hit the size more exactly but took about twice as long
  for the same SSIM, and ``faster`` took 1.5 times as long for a barely better picture.
* The bitrate is what fits ``max_bytes`` over the duration plus half a second (what x264 was
  seen to spend of its buffer beyond the rate: up to 20 % over on a 2 s clip, 6 % on 6 s), less
  2 % for the container and less the audio (AAC at up to 96 kbit/s; none without an audio
  stream). Should the file still be too big, one more attempt lowers the bitrate in proportion
  to the miss.
* The picture is scaled down (short side 1080, 720, 540, 480, 360, 240) while the bitrate would
  leave fewer than 0.08 bits per pixel per frame: a smaller sharp picture beats a blocky one.
* Below ``min_video_kbps`` the result would not be worth watching: no encode is run.
* ffmpeg runs without a shell, at most ``max_concurrent`` shrinks at a time, each within
  ``time_limit`` seconds (the wait for a slot not counted); on a timeout or a cancellation the
  process is killed and reaped and the partial output deleted. ffmpeg's problems come back as a
  ``ShrinkResult``, never as an exception.
* There is no ffprobe in the bundled build: duration, size and streams are read from what
  ``ffmpeg -i FILE`` prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

log = logging.getLogger(__name__)

SHORT_SIDE_LADDER = (1080, 720, 540, 480, 360, 240)
MIN_BITS_PER_PIXEL = 0.08  # per frame; below it H.264 at a fast preset turns visibly blocky
SIZE_MARGIN = 0.02  # MP4 overhead (under 1 %) and the rate control's error
# x264 may spend the one-second buffer's initial fill (90 %) on top of the rate: up to 0.9 s
# of extra bits. Measured: up to 0.4 s' worth (20 % over on a 2 s clip, up to 6 % on 6 s).
VBV_ALLOWANCE_SECONDS = 0.5
RETRY_MARGIN = 0.05  # on top of the proportional correction: the second try must land
MAX_ATTEMPTS = 2
AUDIO_KBPS = 96  # AAC: clear speech and music, 1 % of a 10 MiB budget for a 10 s clip
MIN_AUDIO_KBPS = 32
DEFAULT_FPS = 30.0  # when ffmpeg does not say (only matters for choosing the picture size)


def bundled_ffmpeg() -> str:
    """The static ffmpeg of the ``imageio-ffmpeg`` package, imported only when needed."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


class ShrinkOutcome(StrEnum):
    FITTED = "fitted"
    TOO_LOW_QUALITY = "too_low_quality"
    TIMED_OUT = "timed_out"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What ``ffmpeg -i`` says about a file. Width and height as displayed (rotation applied)."""

    duration: float
    width: int
    height: int
    fps: float
    has_audio: bool
    audio_kbps: int | None = None

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)


@dataclass(frozen=True, slots=True)
class EncodeSettings:
    """One encode: the bitrates (``audio_kbps`` 0: no audio track) and the picture size."""

    video_kbps: int
    audio_kbps: int
    width: int
    height: int
    preset: str


@dataclass(frozen=True, slots=True)
class ShrinkResult:
    """How a shrink ended.

    ``FITTED``: ``path`` is the new file (in the caller's ``workdir``, the caller's to delete)
    and ``size`` its bytes. Otherwise there is no file and ``detail`` says why. ``source`` is
    what the probe found (None if it failed), ``settings`` those of the last encode started
    (None if none was), ``attempts`` the encodes started, ``elapsed`` the seconds spent once a
    slot was free and ``waited`` those before.
    """

    outcome: ShrinkOutcome
    detail: str = ""
    path: Path | None = None
    size: int | None = None
    source: VideoInfo | None = None
    settings: EncodeSettings | None = None
    attempts: int = 0
    elapsed: float = 0.0
    waited: float = 0.0

    @property
    def fitted(self) -> bool:
        return self.outcome is ShrinkOutcome.FITTED


class _FfmpegError(Exception):
    """ffmpeg could not be run, or failed: the message is its last line of complaint."""


# --- planning ----------------------------------------------------------------------------------


def bits_per_pixel(video_kbps: float, info: VideoInfo, short_side: int) -> float:
    """Bits per pixel per frame at ``video_kbps`` with the picture's short side scaled to this."""
    scale = short_side / info.short_side
    pixels = info.width * scale * info.height * scale
    return video_kbps * 1000 / (pixels * info.fps)


def scaled_size(info: VideoInfo, short_side: int) -> tuple[int, int]:
    """Width and height with the short side at ``short_side``, both even (yuv420p needs it)."""
    even_short = short_side - short_side % 2
    long_side = max(info.width, info.height)
    even_long = round(long_side * even_short / info.short_side / 2) * 2
    return (even_long, even_short) if info.width >= info.height else (even_short, even_long)


def plan_encode(
    info: VideoInfo,
    total_kbps: float,
    *,
    min_video_kbps: int,
    min_short_side: int,
    preset: str,
) -> EncodeSettings | None:
    """The encode that spends ``total_kbps`` best, or None when the video would get too little.

    The picture keeps its size if the bitrate affords it, else takes the biggest rung of
    ``SHORT_SIDE_LADDER`` that it affords, never below ``min_short_side``.
    """
    audio_kbps = 0
    if info.has_audio:
        audio_kbps = max(MIN_AUDIO_KBPS, min(AUDIO_KBPS, info.audio_kbps or AUDIO_KBPS))
    video_kbps = int(total_kbps - audio_kbps)
    if video_kbps < min_video_kbps:
        return None
    sides = [info.short_side, *(side for side in SHORT_SIDE_LADDER if side < info.short_side)]
    allowed = [side for side in sides if side >= min_short_side] or [info.short_side]
    short_side = next(
        (side for side in allowed if bits_per_pixel(video_kbps, info, side) >= MIN_BITS_PER_PIXEL),
        allowed[-1],
    )
    width, height = scaled_size(info, short_side)
    return EncodeSettings(video_kbps, audio_kbps, width, height, preset)


# --- reading ffmpeg -i -------------------------------------------------------------------------

_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_VIDEO_STREAM = re.compile(r"Stream #\d+:\d+.*?: Video: (.*)")
_AUDIO_STREAM = re.compile(r"Stream #\d+:\d+.*?: Audio: (.*)")
_SIZE = re.compile(r"\b(\d{2,5})x(\d{2,5})\b")
_FPS = re.compile(r"(\d+(?:\.\d+)?) fps")
_KBPS = re.compile(r"(\d+) kb/s")
_ROTATION = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees")


def parse_probe(text: str) -> VideoInfo | None:
    """The first input's duration and streams from ``ffmpeg -i`` output; None if not a video."""
    duration = _DURATION.search(text)
    video_lines = [
        match.group(1)
        for match in _VIDEO_STREAM.finditer(text)
        if "attached pic" not in match.group(1)
    ]
    size = _SIZE.search(video_lines[0]) if video_lines else None
    if duration is None or size is None:
        return None
    hours, minutes, seconds = duration.groups()
    total_seconds = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    if total_seconds <= 0:
        return None
    width, height = int(size.group(1)), int(size.group(2))
    rotation = _ROTATION.search(text)
    if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
        width, height = height, width  # ffmpeg turns the picture upright when it decodes it
    fps = _FPS.search(video_lines[0])
    audio = _AUDIO_STREAM.search(text)
    audio_kbps = _KBPS.search(audio.group(1)) if audio else None
    return VideoInfo(
        duration=total_seconds,
        width=width,
        height=height,
        fps=float(fps.group(1)) if fps and float(fps.group(1)) > 0 else DEFAULT_FPS,
        has_audio=audio is not None,
        audio_kbps=int(audio_kbps.group(1)) if audio_kbps else None,
    )


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# --- the shrinker ------------------------------------------------------------------------------


@dataclass
class _Progress:
    """What a shrink has learnt so far: reported even when it is cut short."""

    source: VideoInfo | None = None
    settings: EncodeSettings | None = None
    attempts: int = 0

    def result(
        self,
        outcome: ShrinkOutcome,
        detail: str = "",
        *,
        path: Path | None = None,
        size: int | None = None,
    ) -> ShrinkResult:
        return ShrinkResult(
            outcome,
            detail,
            path=path,
            size=size,
            source=self.source,
            settings=self.settings,
            attempts=self.attempts,
        )


class VideoShrinker:
    """Re-encodes videos to fit an upload limit; one per bot, shared by every delivery."""

    def __init__(
        self,
        *,
        ffmpeg_path: Callable[[], str] = bundled_ffmpeg,
        max_concurrent: int = 2,
        time_limit: float = 120.0,
        min_video_kbps: int = 250,
        min_short_side: int = 240,
        preset: str = "veryfast",
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        if time_limit <= 0:
            raise ValueError("time_limit must be positive")
        self._resolve_ffmpeg = ffmpeg_path
        self._ffmpeg: str | None = None
        self._slots = asyncio.Semaphore(max_concurrent)
        self.time_limit = time_limit
        self.min_video_kbps = min_video_kbps
        self.min_short_side = min_short_side
        self.preset = preset
        self._running = 0
        self._peak_running = 0

    @property
    def running(self) -> int:
        """Shrinks holding a slot now."""
        return self._running

    @property
    def peak_running(self) -> int:
        """The most shrinks that ever held a slot at once (never above ``max_concurrent``)."""
        return self._peak_running

    async def shrink(self, source: Path, *, max_bytes: int, workdir: Path) -> ShrinkResult:
        """Re-encode ``source`` into a new file in ``workdir`` of at most ``max_bytes``.

        Meant for files over the limit (one under it is re-encoded all the same). Waits for a
        free slot first; a cancellation kills the encode and deletes its file.
        """
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        queued = time.monotonic()
        async with self._slots:
            started = time.monotonic()
            self._running += 1
            self._peak_running = max(self._peak_running, self._running)
            try:
                result = await self._shrink_in_time(source, max_bytes, workdir)
            finally:
                self._running -= 1
        result = replace(result, elapsed=time.monotonic() - started, waited=started - queued)
        self._log(source, max_bytes, result)
        return result

    async def _shrink_in_time(self, source: Path, max_bytes: int, workdir: Path) -> ShrinkResult:
        progress = _Progress()
        try:
            async with asyncio.timeout(self.time_limit):
                return await self._shrink(source, max_bytes, workdir, progress)
        except TimeoutError:
            # Only the deadline: _run turns every OSError (TimeoutError is one) into _FfmpegError.
            return progress.result(ShrinkOutcome.TIMED_OUT, f"over {self.time_limit:g} s")
        except _FfmpegError as error:
            return progress.result(ShrinkOutcome.FAILED, str(error))

    async def _shrink(
        self, source: Path, max_bytes: int, workdir: Path, progress: _Progress
    ) -> ShrinkResult:
        ffmpeg = self._ffmpeg_executable()
        info = await self._probe(ffmpeg, source)
        progress.source = info
        total_kbps = (
            max_bytes * 8 / 1000 * (1 - SIZE_MARGIN) / (info.duration + VBV_ALLOWANCE_SECONDS)
        )
        size = 0
        while progress.attempts < MAX_ATTEMPTS:
            settings = plan_encode(
                info,
                total_kbps,
                min_video_kbps=self.min_video_kbps,
                min_short_side=self.min_short_side,
                preset=self.preset,
            )
            if settings is None:
                return progress.result(
                    ShrinkOutcome.TOO_LOW_QUALITY,
                    f"{total_kbps:.0f} kbit/s in all over {info.duration:.1f} s leaves the "
                    f"video under {self.min_video_kbps} kbit/s",
                )
            progress.settings = settings
            progress.attempts += 1
            output = self._new_output(source, workdir)
            size = await self._encode(ffmpeg, source, output, settings)
            if size <= max_bytes:
                return progress.result(ShrinkOutcome.FITTED, path=output, size=size)
            _discard(output)
            total_kbps *= max_bytes / size * (1 - RETRY_MARGIN)
        return progress.result(
            ShrinkOutcome.FAILED,
            f"still {size} bytes (limit {max_bytes}) after {progress.attempts} attempts",
        )

    def _ffmpeg_executable(self) -> str:
        if self._ffmpeg is None:
            try:
                self._ffmpeg = self._resolve_ffmpeg()
            except (ImportError, OSError, RuntimeError) as error:
                raise _FfmpegError(f"no ffmpeg: {error}") from error
        return self._ffmpeg

    @staticmethod
    def _new_output(source: Path, workdir: Path) -> Path:
        # A name of its own: shrinks of the same file may share a folder.
        try:
            workdir.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix=f"{source.stem}-", suffix=".mp4", dir=workdir)
        except OSError as error:
            raise _FfmpegError(f"cannot write to {workdir}: {error}") from error
        os.close(handle)
        return Path(name)

    async def _probe(self, ffmpeg: str, source: Path) -> VideoInfo:
        # Without an output ffmpeg describes the input and exits with status 1: expected.
        _, stderr = await _run([ffmpeg, "-hide_banner", "-nostdin", "-i", str(source)])
        info = parse_probe(stderr)
        if info is None:
            raise _FfmpegError(last_line(stderr) or f"{source.name} is not a video")
        return info

    async def _encode(
        self, ffmpeg: str, source: Path, output: Path, settings: EncodeSettings
    ) -> int:
        """Run one encode into ``output``; its size. The file is deleted if this fails."""
        try:
            returncode, stderr = await _run(encode_command(ffmpeg, source, output, settings))
            if returncode != 0:
                raise _FfmpegError(last_line(stderr) or f"ffmpeg exited with {returncode}")
            try:
                return _size_of(output)
            except OSError as error:
                raise _FfmpegError(f"ffmpeg left no output: {error}") from error
        except BaseException:
            _discard(output)
            raise

    @staticmethod
    def _log(source: Path, max_bytes: int, result: ShrinkResult) -> None:
        if result.fitted and result.settings is not None:
            settings = result.settings
            log.info(
                "shrank %s to %d bytes (limit %d) at %d+%d kbit/s, %dx%d, in %.1f s, %d attempt(s)",
                source.name,
                result.size,
                max_bytes,
                settings.video_kbps,
                settings.audio_kbps,
                settings.width,
                settings.height,
                result.elapsed,
                result.attempts,
            )
        elif result.outcome is ShrinkOutcome.TOO_LOW_QUALITY:
            log.info("not shrinking %s to %d bytes: %s", source.name, max_bytes, result.detail)
        else:
            log.warning(
                "could not shrink %s to %d bytes (%s after %.1f s): %s",
                source.name,
                max_bytes,
                result.outcome,
                result.elapsed,
                result.detail,
            )


def encode_command(ffmpeg: str, source: Path, output: Path, settings: EncodeSettings) -> list[str]:
    """The ffmpeg arguments of one encode (no shell is involved)."""
    side = min(settings.width, settings.height)
    # The short side whichever way the picture turns once ffmpeg has put it upright.
    scale = f"scale=w='if(gte(iw,ih),-2,{side})':h='if(gte(iw,ih),{side},-2)'"
    video_rate = f"{settings.video_kbps}k"
    audio: Sequence[str] = ["-an"]
    if settings.audio_kbps:
        audio = ["-map", "0:a:0", "-c:a", "aac", "-b:a", f"{settings.audio_kbps}k"]
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(source),
        "-map",
        "0:V:0",  # the first real video stream, not a cover picture
        "-vf",
        scale,
        "-c:v",
        "libx264",
        "-preset",
        settings.preset,
        "-b:v",
        video_rate,
        "-maxrate",
        video_rate,
        "-bufsize",
        video_rate,
        "-pix_fmt",
        "yuv420p",
        *audio,
        "-movflags",
        "+faststart",
        str(output),
    ]


# Files in the caller's local working folder: stat and unlink take microseconds, not worth a thread.
def _size_of(path: Path) -> int:
    return path.stat().st_size


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


async def _run(argv: Sequence[str]) -> tuple[int, str]:
    """Run a command to its end; its status and what it wrote to stderr.

    However this ends (a deadline, a cancellation), the process does not outlive it.
    """
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as error:
        raise _FfmpegError(f"cannot run {argv[0]}: {error}") from error
    try:
        _, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    return process.returncode, stderr.decode(errors="replace")
