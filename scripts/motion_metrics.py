"""Metrics of a motion model on HELD-OUT utterances (sentences and voices never used in training).

    python scripts/motion_metrics.py --model models/motion/vlogger_motion_default.safetensors \
        --heldout CORPUS_DIR [--clips 40] [--seeds 3] [--json out.json]

CORPUS_DIR is made by `scripts/make_motion_corpus.py DIR --split heldout`; if it does not exist it
is created. For every clip, motion is sampled with several seeds and compared with:
- the viseme target track (jaw of the phoneme -> viseme mapping): Pearson r of mouth opening;
- the audio energy envelope: Pearson r of mouth opening;
- the same statistics of the synthetic ground-truth motion ("reference" columns);
plus blink rate (onsets per minute), per-seed diversity (std across seeds of head angles and of
arm/hand angles, degrees), jitter (mean |second difference| per frame of head angles in degrees
and of mouth opening), and the mouth opening on 3 s of silence.
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vlogger_core.audio.features import energy_envelope  # noqa: E402
from vlogger_core.motion.model import load_motion_model  # noqa: E402
from vlogger_core.motion.params import ARKIT52  # noqa: E402
from vlogger_core.motion.plot import joint_angles  # noqa: E402
from vlogger_core.motion.sampling import SampleSettings, mouth_opening, sample_motion  # noqa: E402
from vlogger_core.motion.synthetic.corpus import clip_folders, load_clip, make_corpus  # noqa: E402
from vlogger_core.motion.synthetic.visemes import viseme_track  # noqa: E402

HAND_JOINTS = ["left_elbow", "right_elbow", "left_wrist", "right_wrist"]


def pearson(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def blink_onsets(motion) -> int:
    b = motion.expression[:, ARKIT52.index("eyeBlinkLeft")].numpy() > 0.5
    return int(np.sum(b[1:] & ~b[:-1]) + (1 if len(b) and b[0] else 0))


def head_deg(motion) -> np.ndarray:
    return np.degrees(joint_angles(motion, "head") + joint_angles(motion, "neck"))


def hand_deg(motion) -> np.ndarray:
    return np.degrees(np.concatenate([joint_angles(motion, j) for j in HAND_JOINTS], 1))


def jitter(x: np.ndarray) -> float:
    return float(np.abs(np.diff(x, n=2, axis=0)).mean()) if len(x) > 2 else 0.0


def lip_sync(acc: dict, prefix: str, motion, target: np.ndarray, energy: np.ndarray) -> None:
    """Append one motion's mouth-vs-viseme and mouth-vs-energy r and its head / mouth jitter."""
    mouth = mouth_opening(motion).numpy()
    acc[prefix + "r_viseme"].append(pearson(mouth, target))
    acc[prefix + "r_energy"].append(pearson(mouth, energy))
    acc[prefix + "jit_head"].append(jitter(head_deg(motion)))
    acc[prefix + "jit_mouth"].append(jitter(mouth))


def evaluate(model, folders, seeds: int, steps: int, guidance: float, log=print, lip_closure: float = 1.0) -> dict:
    fps = model.config.fps
    acc = {k: [] for k in ("r_viseme", "r_energy", "ref_r_viseme", "ref_r_energy", "div_head",
                           "div_hand", "jit_head", "jit_mouth", "ref_jit_head", "ref_jit_mouth")}
    blinks, ref_blinks, minutes = 0, 0, 0.0
    t0, gen_seconds = time.time(), 0.0
    for i, folder in enumerate(folders):
        wave, ref, tl = load_clip(folder)
        n = ref.num_frames
        env = energy_envelope(wave, fps, n).numpy()
        target = viseme_track(tl, len(wave) / 16000, fps, n)[:, 0]
        heads, hands = [], []
        for s in range(seeds):
            ts = time.time()
            mo = sample_motion(model, wave, fps, SampleSettings(seed=1000 * i + s, steps=steps, body_layer=False, lip_closure=lip_closure,
                                                                guidance=guidance))
            gen_seconds += time.time() - ts
            lip_sync(acc, "", mo, target, env)
            blinks += blink_onsets(mo)
            minutes += mo.duration / 60
            heads.append(head_deg(mo))
            hands.append(hand_deg(mo))
        acc["div_head"].append(float(np.stack(heads).std(0).mean()))
        acc["div_hand"].append(float(np.stack(hands).std(0).mean()))
        lip_sync(acc, "ref_", ref, target, env)
        ref_blinks += blink_onsets(ref)
        if (i + 1) % 10 == 0:
            log(f"{i + 1}/{len(folders)} clips, {time.time() - t0:.0f} s")
    out = {k: round(float(np.mean(v)), 4) for k, v in acc.items()}
    out["blinks_per_min"] = round(blinks / max(minutes, 1e-9), 2)
    out["ref_blinks_per_min"] = round(ref_blinks / max(minutes / seeds, 1e-9), 2)
    silence = torch.zeros(16000 * 3)
    mo = sample_motion(model, silence, fps, SampleSettings(seed=0, steps=steps, guidance=guidance, body_layer=False,
                                                          lip_closure=lip_closure))
    out["silence_mouth_max"] = round(float(mouth_opening(mo).max()), 4)
    out["silence_head_std_deg"] = round(float(head_deg(mo).std(0).mean()), 3)
    out.update({"clips": len(folders), "seeds": seeds, "steps": steps, "guidance": guidance, "lip_closure": lip_closure,
                "minutes_generated": round(minutes, 2),
                "realtime_factor_in_metrics": round(minutes * 60 / max(gen_seconds, 1e-9), 1)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/motion/vlogger_motion_default.safetensors")
    ap.add_argument("--heldout", default="/tmp/vlogger_motion_heldout")
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lip-closure", type=float, default=1.0,
                    help="the sampler's lip-closure head (1 = the default, 0 = the motion model alone)")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if not clip_folders(a.heldout):
        print(f"making {a.clips} held-out clips in {a.heldout}")
        make_corpus(a.heldout, a.clips, "heldout", fps=25.0, seed=0)
    folders = clip_folders(a.heldout)[: a.clips]
    model = load_motion_model(a.model)
    res = evaluate(model, folders, a.seeds, a.steps, a.guidance, lip_closure=a.lip_closure)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
