"""docs/images/fit_and_controls.png: the shipped photo's fit overlay and, for one frame of the
shipped speech's motion, the three control maps (dense C_d, semantic C_m, warped reference C_w)
and the default renderer's frame, side by side at 256 px.

    .venv/bin/python scripts/make_controls_figure.py [--frame 40]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vlogger_core.body.model import load_body  # noqa: E402
from vlogger_core.body.overlay import draw_fit_overlay  # noqa: E402
from vlogger_core.body.reference import fit_reference  # noqa: E402
from vlogger_core.motion.params import Motion  # noqa: E402
from vlogger_core.render.controls import render_motion  # noqa: E402
from vlogger_core.render.talking_video import TalkingVideoRenderer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frame", type=int, default=40)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "fit_and_controls.png")
    a = ap.parse_args()
    photo = torch.from_numpy(np.array(Image.open(REPO / "examples" / "astronaut.png").convert("RGB"))).float() / 255
    body = load_body()
    fit = fit_reference(photo, body, "auto")
    motion = Motion.load_npz(str(REPO / "examples" / "talking_astronaut_motion.npz"))
    f = min(a.frame, motion.num_frames - 1)
    c = render_motion(body, fit, motion, 256, 256, f, f + 1)
    frame = TalkingVideoRenderer(body, fit, 256, 256).render(motion, f, f + 1)[0]
    overlay = draw_fit_overlay(fit, body).numpy()
    overlay = np.asarray(Image.fromarray((overlay * 255).astype(np.uint8)).resize((256, 256), Image.LANCZOS)) / 255.0
    tiles = [overlay, c.dense[0].numpy(), c.semantic_rgb()[0].numpy(), c.warped[0].numpy(), frame]
    img = np.concatenate([np.clip(t, 0, 1) for t in tiles], 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((img * 255).astype(np.uint8)).save(a.out)
    print(a.out, f"fov {fit.camera.fov_diag_deg:.1f} ({fit.info.get('fov_source')}), "
          f"landmark error {fit.info['landmark_error_px']:.2f} px mean, detector {fit.detector}")


if __name__ == "__main__":
    main()
