"""A frame grid of a video (PNG), for the README and for looking at what a run produced.

    .venv/bin/python scripts/make_frame_grid.py VIDEO.mp4 OUT.png [--frames 12] [--cols 4] [--crop x0,y0,x1,y1]
        [--every SECONDS] [--scale K]

--every takes a frame every SECONDS (instead of --frames spread over the video); --scale enlarges
each tile K times (a face crop at 512 is small).
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
    ap.add_argument("--every", type=float, help="a frame every this many seconds (instead of --frames)")
    ap.add_argument("--scale", type=int, default=1, help="enlarge each tile this many times")
    a = ap.parse_args()
    frames, fps, _, _ = read_video(a.video)
    if a.every:
        idx = np.arange(0, len(frames), max(1, round(a.every * fps)))
    else:
        idx = np.linspace(0, len(frames) - 1, a.frames).round().astype(int)
    tiles = []
    for i in idx:
        f = frames[i]
        if a.crop:
            x0, y0, x1, y1 = map(int, a.crop.split(","))
            f = f[y0:y1, x0:x1]
        im = Image.fromarray(f)
        if a.scale > 1:
            im = im.resize((im.width * a.scale, im.height * a.scale), Image.LANCZOS)
        ImageDraw.Draw(im).text((4, 2), f"{i / fps:.2f}s", fill=(255, 255, 0))
        tiles.append(np.asarray(im))
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % a.cols)      # fill the last row
    rows = [np.concatenate(tiles[r:r + a.cols], 1) for r in range(0, len(tiles), a.cols)]
    Image.fromarray(np.concatenate(rows, 0)).save(a.out)
    print(a.out)


if __name__ == "__main__":
    main()
