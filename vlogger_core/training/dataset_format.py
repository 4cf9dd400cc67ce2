"""The prepared-dataset format (vlogger-dataset-v1): plain files both trainers read.

    ROOT/dataset.json                 format, fps, sample_rate, body, expression_set, frame_size,
                                      clips, kept, dropped (with reasons), sources, notes
    ROOT/clips/<name>/audio.wav       16 kHz mono PCM16, frames / fps seconds (absent: silent)
    ROOT/clips/<name>/motion.npz      Motion.save_npz: residuals relative to reference_pose
    ROOT/clips/<name>/fit.npz         betas, reference_pose [55,3,3], global_orient / transl [N,3],
                                      fov_diag_deg, width, height (fit frame size),
                                      landmark_error_px [N], body
    ROOT/clips/<name>/frames.npz      frames uint8 [N,S,S,3]
    ROOT/clips/<name>/controls.npz    dense uint8 [N,S,S,3], semantic uint8 [N,S,S] (label ids,
                                      part_names), warped uint8 [N,S,S,3], reference uint8 [S,S,3],
                                      reference_index (frame in the clip the warped maps come from)

The motion trainer reads audio.wav + motion.npz of every clip folder (motion_training.load_dataset).
No pickle anywhere (np.load(allow_pickle=False)); every clip is written to a partial folder and
renamed (files.atomic_write), so an interrupted preparation never leaves a half-written clip.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..files import atomic_write
from ..media import read_audio, to_uint8, write_wav

FORMAT = "vlogger-dataset-v1"


def write_clip(root, name: str, *, frames, wave, motion, fit: dict, controls, reference_index: int) -> Path:
    final = Path(root) / "clips" / name
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(final) as tmp:
        tmp.mkdir()
        if wave is not None:
            write_wav(tmp / "audio.wav", np.asarray(wave, np.float32), 16000)
        motion.save_npz(str(tmp / "motion.npz"))
        np.savez(tmp / "fit.npz", **fit)
        np.savez_compressed(tmp / "frames.npz", frames=to_uint8(frames))
        np.savez_compressed(tmp / "controls.npz", dense=to_uint8(controls.dense),
                            semantic=to_uint8(controls.semantic), warped=to_uint8(controls.warped),
                            reference=to_uint8(frames[reference_index]),
                            reference_index=np.int32(reference_index),
                            part_names=np.array(list(controls.part_names)))
    return final


def write_dataset_json(root, settings, body, sources: list[str], summary: dict,
                       created_by: str = "vlogger_core.training.dataset_prep") -> Path:
    d = {"format": FORMAT, "fps": settings.fps, "sample_rate": 16000, "body": body.name,
         "expression_set": body.expression_set, "frame_size": [settings.frame_size] * 2,
         "clips": [c["name"] for c in summary["clips"]], "kept": summary["kept"],
         "dropped": summary["dropped"], "sources": sources, "notes": summary.get("notes", {}),
         "clip_stats": summary["clips"], "created_by": created_by}
    p = Path(root) / "dataset.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(p) as tmp:
        tmp.write_text(json.dumps(d, indent=1))
    return p


def read_dataset(root) -> dict:
    p = Path(root) / "dataset.json"
    if not p.exists():
        raise FileNotFoundError(f"{root} is not a prepared dataset (no dataset.json)")
    d = json.loads(p.read_text())
    if d.get("format") != FORMAT:
        raise ValueError(f"{p} is not a {FORMAT} dataset")
    return d


def list_clips(root) -> list[str]:
    """The dataset's clip names (dataset.json order) whose folders are complete."""
    d = read_dataset(root)
    return [c for c in d["clips"] if (Path(root) / "clips" / c / "motion.npz").exists()]


def read_clip(root, name: str) -> dict:
    """Every array of one clip (frames, controls, fit) plus its motion (Motion) and audio."""
    from ..motion.params import Motion

    folder = Path(root) / "clips" / name
    out: dict = {}
    for f in ("frames", "controls", "fit"):
        with np.load(folder / f"{f}.npz", allow_pickle=False) as z:
            out.update({k: z[k] for k in z.files})
    out["motion"] = Motion.load_npz(str(folder / "motion.npz"))
    if (folder / "audio.wav").exists():
        out["audio"] = read_audio(folder / "audio.wav", mono=True)[0].numpy()
    return out
