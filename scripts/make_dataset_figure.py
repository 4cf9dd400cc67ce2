"""Figure of a prepared dataset clip: does the per-frame body fit sit on the footage?

Prepares examples/talking_astronaut.mp4 (96 frames, one clip, 128 px) and writes a grid of
frames every 0.5 s: top the stored frames, middle the same frames with the semantic control map
blended over them (the fitted body's parts), bottom the warped control (the clip's reference
frame carried along the fitted motion).

    .venv/bin/python scripts/make_dataset_figure.py [--out docs/images/dataset_clip.png]
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vlogger_core.body.model import load_body  # noqa: E402
from vlogger_core.render.controls import palette  # noqa: E402
from vlogger_core.training.dataset_format import read_clip  # noqa: E402
from vlogger_core.training.dataset_prep import PrepSettings, prepare_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "dataset_clip.png")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        s = prepare_dataset([REPO / "examples" / "talking_astronaut.mp4"], Path(tmp) / "ds", load_body(),
                            PrepSettings(clip_frames=96, frame_size=128), log=lambda *x: None)
        c = read_clip(Path(tmp) / "ds", "clip_0000")
    idx = list(range(0, 96, 12))
    frames = c["frames"][idx].astype(np.float32) / 255
    pal = palette(max(len(c["part_names"]), int(c["semantic"].max()) + 1))
    sem = pal[c["semantic"][idx]]
    body = (c["semantic"][idx] > 0)[..., None]
    blend = np.where(body, 0.45 * frames + 0.55 * sem, frames)
    warped = c["warped"][idx].astype(np.float32)
    warped = warped / 255 if warped.max() > 1.5 else warped
    rows = [np.concatenate(list(r), 1) for r in (frames, blend, warped)]
    img = (np.clip(np.concatenate(rows, 0), 0, 1) * 255).astype(np.uint8)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(a.out)
    st = s["clips"][0]
    print(a.out, f"landmark error {st['landmark_error_px']} px, jitter {st['jitter_px']} px, "
          f"FOV {st['fov_diag_deg']} deg, reference frame {int(c['reference_index'])}")


if __name__ == "__main__":
    main()
