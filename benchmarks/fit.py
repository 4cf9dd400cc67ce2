"""The default landmark detector and reference fit on the shipped photo (`python benchmarks/run.py fit`).

detector: the backend the reference fit's "auto" uses here (body/detect.py's default_backend).
ms_per_image_512: face mesh + pose + hands on examples/astronaut.png (512x512), one photo each
  (static mode, models loaded), median wall time of REPEATS; cpu_ms_per_image_512 the same in CPU
  time of the process (LiteRT runs body/landmark_models.THREADS threads).
face_landmark_diff_px / pose_landmark_diff_px: mean distance of the 478 face / 33 pose points to
  mediapipe 0.10.21's on the same photo (null where mediapipe is not installed);
  mediapipe_ms_per_image_512 its time, measured interleaved with ours so both see the same load.
ms_per_frame_video_512: tracking mode on 24 frames of examples/talking_astronaut.mp4 upscaled
  to 512; ms_segment_person_512: the selfie person mask.
fit_face_error_px: mean face landmark error of the default reference fit ("auto") on the photo
  (fit_face_error_px_mediapipe: the same with detector "mediapipe", where installed).
"""
from __future__ import annotations

import os
import statistics
import time
from contextlib import nullcontext

import cv2
import numpy as np
from PIL import Image

from vlogger_core.body import landmark_models
from vlogger_core.body.detect import (
    backend_problem,
    default_backend,
    detect,
    frame_detector,
)
from vlogger_core.body.model import DEFAULT_BODY, load_body
from vlogger_core.body.reference import fit_reference
from vlogger_core.media import read_frames
from vlogger_core.paths import EXAMPLES

REPEATS = 10
PARTS = ("face", "pose", "hands")


def _time(fn) -> tuple[float, float]:
    """(wall ms, CPU ms) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return 1000 * (time.perf_counter() - w), 1000 * (time.process_time() - c)


def run() -> dict:
    photo = np.asarray(Image.open(EXAMPLES / "astronaut.png").convert("RGB"))
    backend = default_backend()
    with_mediapipe = backend_problem("mediapipe") is None
    out = {"detector": backend, "cores": os.cpu_count(), "litert_threads": landmark_models.THREADS,
           "load_average_before": round(os.getloadavg()[0], 2)}
    if backend is None:
        out["error"] = f"no landmark backend: {backend_problem('landmarks')}"
        return out
    with frame_detector(backend, False, PARTS, True) as ours, \
            frame_detector("mediapipe", False, PARTS, True) if with_mediapipe else nullcontext() as theirs:
        ours(photo)                                      # warm-up: models loaded, first-touch
        if theirs:
            theirs(photo)
        times, times_mp = [], []
        for _ in range(REPEATS):                         # interleaved: the same load for both
            times.append(_time(lambda: ours(photo)))
            if theirs:
                times_mp.append(_time(lambda: theirs(photo)))
    out["ms_per_image_512"] = round(statistics.median(t for t, _ in times), 1)
    out["cpu_ms_per_image_512"] = round(statistics.median(c for _, c in times), 1)
    out["mediapipe_ms_per_image_512"] = round(statistics.median(t for t, _ in times_mp), 1) if times_mp else None

    a = detect(photo[None], backend=backend)
    if with_mediapipe and backend != "mediapipe":
        b = detect(photo[None], backend="mediapipe")
        out["face_landmark_diff_px"] = round(float(np.linalg.norm(a.face[0] - b.face[0], axis=-1).mean()), 4)
        out["pose_landmark_diff_px"] = round(float(np.linalg.norm(a.pose[0, :, :2] - b.pose[0, :, :2],
                                                                  axis=-1).mean()), 4)
    else:
        out["face_landmark_diff_px"] = out["pose_landmark_diff_px"] = None

    frames, _, _ = read_frames(EXAMPLES / "talking_astronaut.mp4")
    frames = np.stack([cv2.resize(f, (512, 512), interpolation=cv2.INTER_CUBIC) for f in frames[:24]])
    t = time.perf_counter()
    detect(frames, tracking=True, backend=backend)
    out["ms_per_frame_video_512"] = round(1000 * (time.perf_counter() - t) / len(frames), 1)
    landmark_models.segment_person(photo)
    out["ms_segment_person_512"] = round(statistics.median(_time(lambda: landmark_models.segment_person(photo))[0]
                                                           for _ in range(REPEATS)), 1)

    body = load_body(DEFAULT_BODY, "cpu")
    fit = fit_reference(photo, body, "auto")
    out["fit_detector"] = fit.detector
    out["fit_face_error_px"] = round(fit.info["landmark_error_px"], 3)
    out["fit_seconds"] = fit.info["fit_seconds"]
    out["fit_face_error_px_mediapipe"] = (round(fit_reference(photo, body, "mediapipe").info["landmark_error_px"], 3)
                                          if with_mediapipe else None)
    out["load_average_after"] = round(os.getloadavg()[0], 2)
    return out

