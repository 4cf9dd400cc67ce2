"""docs/images/bridge_{pose,face,depth}.png: frame strips of the driving videos the bridge nodes make
for the shipped photo and speech (motion from the shipped model at 16 fps, seed 0, as the
wan_animate workflow makes it): the pose video over the default renderer's frame, the pose video
itself (DWPose style, hands and face), the Wan Animate face crops, and the depth / normal videos.

    .venv/bin/python scripts/make_bridge_figure.py [--every 16]
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
from vlogger_core.body.reference import fit_reference  # noqa: E402
from vlogger_core.bridge import windows  # noqa: E402
from vlogger_core.bridge.pose_drawing import PoseStyle  # noqa: E402
from vlogger_core.bridge.videos import face_video, map_videos, pose_video, renderer_for  # noqa: E402
from vlogger_core.media import read_audio  # noqa: E402
from vlogger_core.motion.model import load_motion_model  # noqa: E402
from vlogger_core.motion.sampling import SampleSettings, sample_motion  # noqa: E402

TILE = 256


def strip(frames: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(Image.fromarray((np.clip(f, 0, 1) * 255).astype(np.uint8))
                                      .resize((TILE, TILE), Image.LANCZOS)) for f in frames], 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--every", type=int, default=16, help="frames between tiles (16 = one a second)")
    ap.add_argument("--tiles", type=int, default=6)
    ap.add_argument("--size", type=int, default=640)
    a = ap.parse_args()
    photo = torch.from_numpy(np.array(Image.open(REPO / "examples" / "astronaut.png").convert("RGB"))).float() / 255
    body = load_body()
    fit = fit_reference(photo, body, "auto")
    wave, _ = read_audio(REPO / "examples" / "speech.wav", 16000, mono=True)
    model = load_motion_model(str(REPO / "models" / "motion" / "vlogger_motion_default.safetensors"))
    motion = windows.whole_motion(sample_motion(model, wave, windows.WAN_FPS, SampleSettings(seed=0)))
    r = renderer_for(body, fit, a.size, a.size)
    idx = [min(motion.num_frames - 1, 8 + i * a.every) for i in range(a.tiles)]
    pick = lambda v: v[[i - idx[0] for i in idx]]  # noqa: E731
    span = (idx[0], idx[-1] + 1)
    pose = pick(pose_video(r, motion, PoseStyle(face=True), *span))
    faces, frames = face_video(r, motion, *span)
    faces, frames = pick(faces), pick(frames)
    maps = map_videos(r, motion, *span)
    out = REPO / "docs" / "images"
    over = np.where(pose.max(-1, keepdims=True) > 0, pose, frames * 0.6)
    Image.fromarray(np.concatenate([strip(frames), strip(over), strip(pose)], 0)).save(out / "bridge_pose.png")
    Image.fromarray(strip(faces)).save(out / "bridge_face.png")
    Image.fromarray(np.concatenate([strip(pick(maps["depth"])), strip(pick(maps["normal"]))], 0)).save(
        out / "bridge_depth.png")
    print("frames", idx, "of", motion.num_frames, "at", windows.WAN_FPS, "fps ->", out / "bridge_*.png")


if __name__ == "__main__":
    main()
