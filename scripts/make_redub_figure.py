"""Figure of a re-dub (region inpainting with the default renderer): face crops every 0.5 s.

Re-dubs examples/talking_astronaut.mp4 with the redub_video workflow's sentence (offline TTS,
the shipped motion model, seed 0, mouth region) and writes three rows: the original frames, the
re-dubbed ones, and the feathered mask (white = regenerated).

    .venv/bin/python scripts/make_redub_figure.py [--out docs/images/redub_grid.png]
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vlogger_core.audio.tts import synthesize  # noqa: E402
from vlogger_core.body.model import load_body  # noqa: E402
from vlogger_core.edit.redub import RedubSettings, redub_frames  # noqa: E402
from vlogger_core.media import (
    read_video,  # noqa: E402
    resample,  # noqa: E402
)
from vlogger_core.motion.model import load_motion_model  # noqa: E402
from vlogger_core.motion.sampling import SampleSettings, sample_motion  # noqa: E402

SENTENCE = "Hello from orbit. We dock in two hours."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "redub_grid.png")
    ap.add_argument("--crop", default="72,24,184,136", help="x0,y0,x1,y1 of the face in the video")
    a = ap.parse_args()
    frames, fps, _, _ = read_video(REPO / "examples" / "talking_astronaut.mp4")
    wave, sr, _ = synthesize(SENTENCE)
    wave16 = resample(torch.from_numpy(wave), sr, 16000)
    model = load_motion_model(str(REPO / "models" / "motion" / "vlogger_motion_default.safetensors"))
    with torch.no_grad():
        motion = sample_motion(model, wave16, fps, SampleSettings(seed=0, add_blinks=True))
    body = load_body()
    outs, masks = [], []
    for f, m in redub_frames(body, frames, motion, RedubSettings(region="mouth"), fps):
        outs.append(f)
        masks.append(m)
    out, mask = np.concatenate(outs), np.concatenate(masks)
    x0, y0, x1, y1 = map(int, a.crop.split(","))
    idx = [i for i in range(0, min(len(out), len(frames)), int(round(fps / 2)))][:8]
    rows = [np.concatenate([r[i][y0:y1, x0:x1] for i in idx], 1) for r in
            (frames.astype(np.float32) / 255, out, np.repeat(mask[..., None], 3, -1))]
    img = (np.clip(np.concatenate(rows, 0), 0, 1) * 255).astype(np.uint8)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).resize((img.shape[1] * 2, img.shape[0] * 2), Image.LANCZOS).save(a.out)
    print(a.out, f"{len(out)} frames re-dubbed from a {len(frames)}-frame video")


if __name__ == "__main__":
    main()
