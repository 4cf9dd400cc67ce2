"""Face crops at 512 on the p/b/m frames of the quality benchmark's first clip, one row per
lip-closure head: what `bilabial_closed` measures, for the eye.

    .venv/bin/python scripts/make_closure_figure.py OUT.png [HEAD.safetensors ...]

No HEAD: the shipped head only. Each row is labelled with its file name; every tile with the
phoneme at its frame and the time.
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import _lip_metrics as lips  # noqa: E402
import quality  # noqa: E402
from _pipeline import example_photo, load_models  # noqa: E402

from vlogger_core.body.reference import fit_reference  # noqa: E402
from vlogger_core.motion import closure, sampling  # noqa: E402
from vlogger_core.render import rasterizer  # noqa: E402
from vlogger_core.render.talking_video import TalkingVideoRenderer  # noqa: E402

TILES = 8
CROP = (195, 125, 285, 195)     # x0, y0, x1, y1: the mouth at 512 on the shipped photo


def main() -> None:
    out, heads = sys.argv[1], sys.argv[2:] or [str(closure.DEFAULT_PATH)]
    body, model = load_models()
    rasterizer.warm_up()
    renderer = TalkingVideoRenderer(body, fit_reference(example_photo(), body), 512, 512)
    voice, text = quality.CLIPS[0]
    wave, timeline = quality.speech(voice, text)
    # the sampler's motion without its closure, then each head's closure as the sampler applies
    # it (close_lips only moves the lips and jaw; the body layer after it in the sampler does not)
    open_motion = sampling.sample_motion(model, wave, quality.FPS, sampling.SampleSettings(seed=0, lip_closure=0))
    n = open_motion.num_frames
    rows = []
    for head in heads:
        shut = closure.shut_track(closure.load_closure(head), wave, quality.FPS, n)
        motion = closure.close_lips(open_motion, shut, 1.0)
        frames = np.nonzero(lips.bilabial_frames(timeline, quality.FPS, n))[0]
        pick = frames[np.linspace(0, len(frames) - 1, TILES).round().astype(int)]
        phon = timeline.at_frames(quality.FPS, n)
        tiles = []
        for i in pick:
            f = renderer.render(motion, int(i), int(i) + 1)[0]
            x0, y0, x1, y1 = CROP
            tile = Image.fromarray((np.clip(f[y0:y1, x0:x1], 0, 1) * 255).astype(np.uint8)).resize(
                ((x1 - x0) * 2, (y1 - y0) * 2), Image.LANCZOS)
            ImageDraw.Draw(tile).text((3, 2), f"{phon[i]} {i / quality.FPS:.2f}s", fill=(255, 255, 0))
            tiles.append(np.asarray(tile))
        row = Image.fromarray(np.concatenate(tiles, 1))
        label = Image.new("RGB", (row.width, 16), (0, 0, 0))
        ImageDraw.Draw(label).text((3, 2), Path(head).name, fill=(255, 255, 255))
        rows.append(np.concatenate([np.asarray(label), np.asarray(row)], 0))
    Image.fromarray(np.concatenate(rows, 0)).save(out)
    print(out)


if __name__ == "__main__":
    main()
