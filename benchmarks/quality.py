"""Does the default talking video look like a person talking? Measured on the OUTPUT pixels.

README command 1's pipeline (fit the shipped photo, sample the shipped motion model, the
compositor renderer) at 512 on held-out TTS speech (sentences and voices the motion model's
corpus holds out; vlogger_core/motion/synthetic/corpus.py), encoded to MP4 and decoded back; then
the pack's default landmark detector (body/detect.py, backend "landmarks" = mediapipe's face mesh
and pose models on LiteRT; it knows nothing of how the frames were made) runs on those frames.

Figures (issue 14): lip_gap_r (goal >= 0.85), bilabial_closed (>= 0.8), pause_closed (>= 0.9),
shoulder_motion_pct (>= 1.0) with background_change (< 2 levels of 255), seconds_10s_512 (<= 10,
e2e's figure: 10 s of the shipped speech), photo_lip_gap (the detector on the photo itself);
rounded_width_ratio (no goal): the seen mouth width on o / u / w frames over i / e frames.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import _body_metrics as bm
import _lip_metrics as lips
import numpy as np
import torch
from _pipeline import example_photo, example_speech, load_models, make_video

from vlogger_core.audio.tts import synthesize
from vlogger_core.body.reference import fit_reference
from vlogger_core.media import read_video, resample
from vlogger_core.motion.sampling import SampleSettings, mouth_opening, sample_motion
from vlogger_core.motion.synthetic.corpus import HELDOUT_VOICES, is_heldout_sentence
from vlogger_core.render import rasterizer
from vlogger_core.render.talking_video import TalkingVideoRenderer, write_talking_video

# held-out sentences (is_heldout_sentence) full of p / b / m, with commas and full stops (pauses)
CLIPS = [
    ("en-us+f4", "My mom bought a big lamp. Imagine a palm tree by the beach. Simple problems, big maps."),
    ("en-gb-scotland", "My best pal ate a pear. Bob bought bread by the pier. The map, the pen, the lamp."),
]
FPS = 24.0


def speech(voice: str, text: str):
    for s in text.replace(". ", ".|").split("|"):
        assert is_heldout_sentence(s), f"not a held-out sentence: {s!r}"
    assert voice in HELDOUT_VOICES
    wave, sr, timeline = synthesize(text, voice=voice, rate=150)
    wave = 0.8 * wave / max(1e-6, float(np.abs(wave).max()))
    return resample(torch.from_numpy(wave), sr, 16000), timeline


def render_clip(motion_model, renderer, wave16k, out: Path):
    motion = sample_motion(motion_model, wave16k, FPS, SampleSettings(seed=0))
    write_talking_video(str(out), renderer, motion, wave16k, 16000)
    frames = read_video(str(out))[0]
    return motion, frames


def run() -> dict:
    body, motion_model = load_models()
    rasterizer.warm_up()
    photo = example_photo()
    fit = fit_reference(photo, body)
    renderer = TalkingVideoRenderer(body, fit, 512, 512)
    gaps, opening, bil, pau, thr_ok_b, thr_ok_p = [], [], [], [], [], []
    frames_all, widths, timelines = [], [], []
    with tempfile.TemporaryDirectory() as d:
        for k, (voice, text) in enumerate(CLIPS):
            wave, timeline = speech(voice, text)
            motion, frames = render_clip(motion_model, renderer, wave, Path(d) / f"q{k}.mp4")
            n = min(len(frames), motion.num_frames)
            frames = frames[:n]
            face = lips.detect_faces(frames)
            gap = lips.seen_lip_gap(face)
            widths.append(lips.seen_mouth_width(face))
            timelines.append(timeline)
            thr = lips.closed_threshold(gap)
            b, p = lips.bilabial_frames(timeline, FPS, n), lips.pause_frames(timeline, FPS, n)
            ok = np.isfinite(gap)
            gaps.append(gap)
            opening.append(mouth_opening(motion).numpy()[:n])
            bil.append(b & ok)
            pau.append(p & ok)
            thr_ok_b.append(b & ok & (gap < thr))
            thr_ok_p.append(p & ok & (gap < thr))
            frames_all.append(frames)
        # e2e's figure at 512 (10 s of the shipped speech), JIT already warm
        t0 = time.perf_counter()
        make_video(Path(d) / "e2e.mp4", body, motion_model, photo, example_speech(10.0), "512")
        seconds = time.perf_counter() - t0
    gap, opening = np.concatenate(gaps), np.concatenate(opening)
    photo_u8 = (photo.numpy() * 255 + 0.5).astype(np.uint8)
    out = {
        "detector": "landmarks (pack default: mediapipe face mesh + pose models on LiteRT)",
        "lip_gap_r": round(lips.pearson(gap, opening), 3),
        "bilabial_closed": round(float(np.concatenate(thr_ok_b).sum() / max(1, np.concatenate(bil).sum())), 3),
        "pause_closed": round(float(np.concatenate(thr_ok_p).sum() / max(1, np.concatenate(pau).sum())), 3),
        "bilabial_frames": int(np.concatenate(bil).sum()),
        "pause_frames": int(np.concatenate(pau).sum()),
        "face_found_pct": round(100 * float(np.isfinite(gap).mean()), 1),
        "seen_gap_p95": round(float(np.nanpercentile(gap, 95)), 3),
        "seen_gap_min": round(float(np.nanmin(gap)), 3),
        "seconds_10s_512": round(seconds, 2),
        "photo_lip_gap": round(lips.photo_lip_gap(photo_u8), 3),
    }
    # the lip corners: seen mouth width on rounded vowels over spread ones (< 1: they round)
    ratios = [lips.rounded_width_ratio(w, tl, FPS) for w, tl in zip(widths, timelines)]
    out["rounded_width_ratio"] = round(float(np.nanmean([r[0] for r in ratios])), 3)
    # per clip (benchmarks/_body_metrics.py): the shoulders' motion (mean over the clips), the
    # background's change (the worst clip)
    sh = [v for v in (bm.shoulder_motion_pct(bm.body_landmarks(f)) for f in frames_all) if v is not None]
    bg = [v for v in (bm.background_change(f, bm.person_masks(f)) for f in frames_all) if v is not None]
    out["shoulder_motion_pct"] = round(float(np.mean(sh)), 3) if sh else None
    out["background_change"] = round(float(np.max(bg)), 3) if bg else None
    return out
