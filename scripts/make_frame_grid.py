"""A frame grid of a video (PNG), for the README and for looking at what a run produced.

    .venv/bin/python scripts/make_frame_grid.py VIDEO.mp4 OUT.png [--frames 12] [--cols 4] [--crop x0,y0,x1,y1]
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from vlogger_core.media import read_video  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("video")
    ap.add_argument("out")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--crop", help="x0,y0,x1,y1 in pixels (e.g. the face)")
    a = ap.parse_args()
    frames, fps, _, _ = read_video(a.video)
    idx = np.linspace(0, len(frames) - 1, a.frames).round().astype(int)
    tiles = []
    for i in idx:
        f = frames[i]
        if a.crop:
            x0, y0, x1, y1 = map(int, a.crop.split(","))
            f = f[y0:y1, x0:x1]
        im = Image.fromarray(f)
        ImageDraw.Draw(im).text((4, 2), f"{i / fps:.2f}s", fill=(255, 255, 0))
        tiles.append(np.asarray(im))
    rows = [np.concatenate(tiles[r:r + a.cols], 1) for r in range(0, len(tiles), a.cols)]
    Image.fromarray(np.concatenate(rows, 0)).save(a.out)
    print(a.out)


if __name__ == "__main__":
    main()
