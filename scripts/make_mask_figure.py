"""The compositor's person masks side by side (docs/images/person_masks.png): the photo, the old
GrabCut mask (the fallback where LiteRT cannot run) and the selfie-segmentation mask (the default),
then a close-up of the hair with the photo cut out by each mask over flat grey.

    .venv/bin/python scripts/make_mask_figure.py [--photo FILE] [--out FILE]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from vlogger_core.body.model import load_body  # noqa: E402
from vlogger_core.body.reference import fit_reference  # noqa: E402
from vlogger_core.render import controls, rasterizer  # noqa: E402
from vlogger_core.render.compositor import (  # noqa: E402
    person_mask_from_segmentation,
    person_mask_from_silhouette,
)

GREY = np.array([0.5, 0.5, 0.5], np.float32)


def silhouette(fit, body) -> np.ndarray:
    """The fitted body rendered in the reference pose at the photo's resolution, [H,W] bool."""
    pts = controls.project(fit.camera, body.pose_frames(fit, None, 0, 1, "cpu"))
    return rasterizer.rasterize(pts, body.faces, fit.camera.width, fit.camera.height).tri_id[0] >= 0


def tile(a: np.ndarray, label: str, size: tuple[int, int]) -> np.ndarray:
    a = a if a.ndim == 3 else np.repeat(a[..., None], 3, 2)
    im = Image.fromarray((np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)).resize(size, Image.LANCZOS)
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, 8 * len(label) + 8, 14), fill=(0, 0, 0))
    d.text((4, 1), label, fill=(255, 255, 0))
    return np.asarray(im)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--photo", default=str(REPO / "examples" / "astronaut.png"))
    ap.add_argument("--out", default=str(REPO / "docs" / "images" / "person_masks.png"))
    a = ap.parse_args()
    photo = np.asarray(Image.open(a.photo).convert("RGB"), np.float32) / 255
    body = load_body()
    fit = fit_reference(torch.from_numpy(photo), body, "auto")
    sil = silhouette(fit, body)
    old = person_mask_from_silhouette(photo, sil)
    new = person_mask_from_segmentation(photo, sil)
    H, W = sil.shape
    s = 512 / max(H, W)
    size = (round(W * s), round(H * s))
    top = [tile(photo, "photo", size), tile(old, "GrabCut (fallback)", size),
           tile(new, "selfie segmentation + body (default)", size)]
    # the hair: the face landmarks' box, widened and raised
    pts = np.asarray(fit.info["detected_landmarks"])
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    fw = x1 - x0
    cx0, cx1 = int(max(0, x0 - 0.7 * fw)), int(min(W, x1 + 0.7 * fw))
    cy0, cy1 = int(max(0, y0 - 1.1 * fw)), int(min(H, y1 + 0.3 * fw))
    crop = lambda m: m[cy0:cy1, cx0:cx1]  # noqa: E731
    cs = 512 / (cx1 - cx0)
    csize = (512, round((cy1 - cy0) * cs))
    cut = lambda m: crop(photo) * crop(m)[..., None] + GREY * (1 - crop(m)[..., None])  # noqa: E731
    bottom = [tile(crop(photo), "hair close-up", csize), tile(cut(old), "GrabCut cut-out", csize),
              tile(cut(new), "selfie cut-out", csize)]
    fig = np.concatenate([np.concatenate(top, 1), np.concatenate(bottom, 1)], 0)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(fig).save(a.out)
    print(a.out)


if __name__ == "__main__":
    main()
