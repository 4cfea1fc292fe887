"""Shrinking a video over Discord's upload limit: time, size and picture quality.

The clip: ``--seconds`` (15) of ffmpeg's ``testsrc2`` test pattern (moving colour bars, a
counter and gradients) at ``--size`` (1920x1080) and 30 fps, with a 440 Hz ``sine`` tone, by
x264 ``ultrafast`` at ``--source-kbps`` (16 000) plus 192 kbit/s AAC: about 30 MB, a big
download from the API. ``--noise N`` adds temporal noise of strength N (0…100), which no
encoder can compress: a much harder clip than the clean pattern (and SSIM then mostly measures
the noise lost).

It is shrunk by ``bot.transcode.VideoShrinker`` with the bot's defaults to fit ``--max-mib``
(10 MiB: a server without boosts), then compared with the source by ffmpeg's ``ssim`` and
``psnr`` filters, the shrunk picture first scaled back to the source's size.

    python -m bench.transcode [--seconds 15] [--size 1920x1080] [--noise 0] [--quick]

``--quick``: 3 s at 640x360, shrunk to a third of its size; nothing saved.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import mib, quiet_logging, write_results
from bot.transcode import VideoShrinker, bundled_ffmpeg

MIB = 1024 * 1024


@dataclass(frozen=True)
class TranscodeOptions:
    seconds: int = 15
    width: int = 1920
    height: int = 1080
    fps: int = 30
    source_kbps: int = 16_000
    noise: int = 0
    max_bytes: int | None = 10 * MIB  # None: a third of the clip


async def ffmpeg(*arguments: str) -> str:
    """Run the bundled ffmpeg; what it wrote to stderr."""
    process = await asyncio.create_subprocess_exec(
        bundled_ffmpeg(),
        "-hide_banner",
        "-nostdin",
        "-nostats",
        *arguments,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    text = stderr.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {text.strip().splitlines()[-1:]}")
    return text


async def make_clip(options: TranscodeOptions, path: Path) -> None:
    picture = f"testsrc2=size={options.width}x{options.height}:rate={options.fps}"
    picture += f":duration={options.seconds}"
    if options.noise:
        picture += f",noise=alls={options.noise}:allf=t"
    rate = f"{options.source_kbps}k"
    await ffmpeg(
        "-loglevel",
        "error",
        "-y",
        *("-f", "lavfi", "-i", picture),
        *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={options.seconds}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
        *("-b:v", rate, "-maxrate", rate, "-bufsize", f"{2 * options.source_kbps}k"),
        *("-c:a", "aac", "-b:a", "192k", "-shortest", str(path)),
    )


async def picture_quality(shrunk: Path, source: Path, width: int, height: int) -> dict[str, float]:
    """SSIM and PSNR of ``shrunk`` (scaled back to ``width``x``height``) against ``source``."""
    graph = (
        f"[0:v]scale={width}:{height}:flags=bicubic,format=yuv420p,split[a][b];"
        "[1:v]format=yuv420p,split[c][d];[a][c]ssim;[b][d]psnr"
    )
    text = await ffmpeg("-i", str(shrunk), "-i", str(source), "-lavfi", graph, "-f", "null", "-")
    ssim = re.search(r"SSIM Y:([\d.]+).* All:([\d.]+)", text)
    psnr = re.search(r"PSNR .*average:([\d.]+|inf) min:([\d.]+|inf)", text)
    if ssim is None or psnr is None:
        raise RuntimeError(f"no SSIM/PSNR in ffmpeg's output: {text[-500:]}")
    return {
        "ssim_y": float(ssim.group(1)),
        "ssim_all": float(ssim.group(2)),
        "psnr_average_db": float(psnr.group(1)),
        "psnr_min_db": float(psnr.group(2)),
    }


async def run(options: TranscodeOptions, folder: Path) -> dict[str, object]:
    source = folder / "source.mp4"
    started = time.monotonic()
    await make_clip(options, source)
    generated = time.monotonic() - started
    source_bytes = source.stat().st_size
    limit = options.max_bytes or source_bytes // 3
    print(f"source: {mib(source_bytes)} MiB in {generated:.1f} s; limit {limit} bytes", flush=True)

    shrinker = VideoShrinker()
    result = await shrinker.shrink(source, max_bytes=limit, workdir=folder / "out")
    figures: dict[str, object] = {
        "options": asdict(options),
        "source": {
            "bytes": source_bytes,
            "mib": mib(source_bytes),
            "duration_s": result.source.duration if result.source else None,
            "width": result.source.width if result.source else None,
            "height": result.source.height if result.source else None,
            "fps": result.source.fps if result.source else None,
            "kbps": round(source_bytes * 8 / 1000 / options.seconds),
        },
        "limit_bytes": limit,
        "outcome": str(result.outcome),
        "detail": result.detail,
        "settings": asdict(result.settings) if result.settings else None,
        "attempts": result.attempts,
        "elapsed_s": round(result.elapsed, 2),
        "speed_x_realtime": round(options.seconds / result.elapsed, 1) if result.elapsed else None,
    }
    print(
        f"{result.outcome} in {result.elapsed:.2f} s, {result.attempts} attempt(s): "
        f"{result.settings} {result.detail}",
        flush=True,
    )
    if result.fitted and result.path is not None and result.size is not None:
        quality = await picture_quality(result.path, source, options.width, options.height)
        figures["output"] = {
            "bytes": result.size,
            "mib": mib(result.size),
            "fill_of_limit": round(result.size / limit, 3),
            "compression": round(source_bytes / result.size, 2),
        }
        figures["quality"] = quality
        print(
            f"output: {result.size} bytes ({result.size / limit:.1%} of the limit); "
            f"SSIM {quality['ssim_all']:.4f}, PSNR {quality['psnr_average_db']:.2f} dB",
            flush=True,
        )
    return figures


def parse_options(argv: list[str] | None = None) -> tuple[TranscodeOptions, bool]:
    defaults = TranscodeOptions()
    parser = argparse.ArgumentParser(
        prog="python -m bench.transcode",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=int, default=defaults.seconds)
    parser.add_argument("--size", default=f"{defaults.width}x{defaults.height}", help="WxH")
    parser.add_argument("--source-kbps", type=int, default=defaults.source_kbps)
    parser.add_argument("--noise", type=int, default=defaults.noise, help="0…100, 0: none")
    parser.add_argument("--max-mib", type=float, default=10.0, help="the upload limit")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 3 s at 640x360 to a third, not saved"
    )
    args = parser.parse_args(argv)
    if args.quick:
        return TranscodeOptions(
            seconds=3, width=640, height=360, source_kbps=4000, noise=args.noise, max_bytes=None
        ), True
    width, _, height = args.size.partition("x")
    options = TranscodeOptions(
        seconds=args.seconds,
        width=int(width),
        height=int(height),
        source_kbps=args.source_kbps,
        noise=args.noise,
        max_bytes=int(args.max_mib * MIB),
    )
    return options, False


def main(argv: list[str] | None = None) -> None:
    options, quick = parse_options(argv)
    quiet_logging()
    with tempfile.TemporaryDirectory(prefix="bench-transcode-") as folder:
        figures = asyncio.run(run(options, Path(folder)))
    if figures["outcome"] != "fitted":
        raise SystemExit(f"the clip was not shrunk: {figures['outcome']} {figures['detail']}")
    if not quick:
        print("written to", write_results("transcode", figures))


if __name__ == "__main__":
    main()
