"""Sampled-frame decoding (load_video at 1 fps, <= 90 frames) vs decoding every frame of a long clip.

Generates a 2-minute 30 fps clip (320x240, H.264, default GOP) once, then times each backend both ways and prints
a side-by-side table with the speed-up ratio. Not run in CI.

    python benchmarks/video_decode.py [--seconds 120] [--fps 30] [--size 320x240] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from fractions import Fraction

import av
import numpy as np

from videosafety_r1.data.video import load_video


def write_clip(path: str, seconds: int, fps: int, width: int, height: int, gop: int) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "g": str(gop)})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(np.roll(base, i, axis=1), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def decode_all(path: str, backend: str) -> int:
    if backend == "decord":
        import decord

        reader = decord.VideoReader(path, num_threads=1)
        count = 0
        for start in range(0, len(reader), 256):  # batches keep memory bounded
            count += len(reader.get_batch(list(range(start, min(start + 256, len(reader))))).asnumpy())
        return count
    with av.open(path) as container:
        return sum(1 for frame in container.decode(video=0) if frame.to_ndarray(format="rgb24") is not None)


def best_of(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gop", type=int, nargs="+", default=[30, 250], help="key-frame intervals to compare")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    print(f"{'gop':>4} {'backend':8} {'sampled (1 fps, <=90)':>22} {'every frame':>18} {'speed-up':>9}")
    for gop in args.gop:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "long.mp4")
            write_clip(path, args.seconds, args.fps, width, height, gop)
            load_video(path, fps=1.0, max_frames=90, backend="pyav")  # warm-up: imports
            for backend in ("decord", "pyav"):
                sampled, (frames, _) = best_of(
                    lambda b=backend, p=path: load_video(p, 1.0, 90, backend=b), args.repeat
                )
                full, count = best_of(lambda b=backend, p=path: decode_all(p, b), max(1, args.repeat - 2))
                print(
                    f"{gop:>4} {backend:8} {sampled:>12.3f}s ({len(frames):>3} fr) {full:>9.3f}s ({count} fr)"
                    f" {full / sampled:>7.1f}x"
                )
    print(f"clip: {args.seconds}s at {args.fps} fps, {width}x{height}, H.264 ultrafast; best of {args.repeat}")


if __name__ == "__main__":
    main()
