"""The default landmark detector (vlogger_core/body/landmark_models.py: mediapipe 0.10.21's models
shipped in models/landmarks/, run on LiteRT) with the real models: it finds the face and pose on
the shipped photo and nothing on a blank image, its person mask covers the person, it gives the
same landmarks as mediapipe itself (photo at 512, frames of examples/talking_astronaut.mp4 at 512,
one by one and tracked), the reference fit's "auto" uses it and fits as well as with mediapipe,
and without LiteRT everything falls back as documented."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from vlogger_core.body import landmark_models as lm
from vlogger_core.body import model as bm
from vlogger_core.body import reference as rf
from vlogger_core.body.detect import (
    FACE_POINTS,
    backend_problem,
    default_backend,
    detect,
)
from vlogger_core.media import read_frames
from vlogger_core.paths import EXAMPLES

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def photo():
    img = np.asarray(Image.open(EXAMPLES / "astronaut.png").convert("RGB"))
    assert img.shape == (512, 512, 3)
    return img


@pytest.fixture(scope="module")
def frames():
    """12 frames (every 2nd of the first 24: one second) of the shipped 256 px video, at 512."""
    f, _, _ = read_frames(EXAMPLES / "talking_astronaut.mp4")
    return np.stack([cv2.resize(x, (512, 512), interpolation=cv2.INTER_CUBIC) for x in f[:24:2]])


@pytest.fixture(scope="module")
def body():
    return bm.load_body(bm.DEFAULT_BODY, "cpu")


def _px(a, b):
    """Per-point pixel distances of two [...,N,>=2] arrays (NaN-free)."""
    return np.linalg.norm(a[..., :2] - b[..., :2], axis=-1)


# ----------------------------------------------------------------------------- alone
def test_the_shipped_files_are_the_ones_the_notice_lists():
    """models/landmarks/ as tools/extract_landmark_models.py wrote it (NOTICE: licence, source, hashes)."""
    notice = (lm.MODEL_DIR / "NOTICE").read_text()
    assert "mediapipe 0.10.21" in notice and "Apache License 2.0" in notice
    assert (lm.MODEL_DIR / "LICENSE").read_text().lstrip().startswith("Apache License")
    listed = dict(line.split() for line in notice.split("Files here (sha256):\n")[1].splitlines() if line.strip())
    assert set(listed) | {"NOTICE"} == {p.name for p in lm.MODEL_DIR.iterdir()}
    for name, digest in listed.items():
        assert hashlib.sha256((lm.MODEL_DIR / name).read_bytes()).hexdigest() == digest, name


def test_it_is_the_default_here():
    assert lm.unavailable_reason() is None
    assert default_backend() == "landmarks"
    assert rf.DETECTORS[0] == "auto" and "landmarks" in rf.DETECTORS and "mediapipe" in rf.DETECTORS


def test_it_finds_the_face_and_pose_on_the_photo(photo):
    lms = detect(photo[None])
    assert lms.face_found()[0] and lms.pose_found()[0]
    face = lms.face[0]
    assert face.shape == (FACE_POINTS, 2) and np.isfinite(face).all()     # refined: irises included
    lo, hi = face.min(0), face.max(0)
    assert 150 < lo[0] < hi[0] < 300 and 50 < lo[1] < hi[1] < 200 and hi[0] - lo[0] > 70    # her face
    pose = lms.pose[0]
    assert pose[11, 2] > 0.9 and pose[12, 2] > 0.9                       # both shoulders seen
    assert pose[11, 0] > pose[12, 0] and pose[11, 1] > hi[1]              # her left on the image's right, below the face
    assert not lms.hand_found("left")[0] and not lms.hand_found("right")[0]   # no hand in the photo


def test_a_blank_image_gives_nothing():
    blank = np.full((256, 320, 3), 128, np.uint8)
    r = lm.LandmarkModels().detect_image(blank)
    assert r.face is None and r.pose is None and r.hands == []
    lms = detect(blank[None])
    assert np.isnan(lms.face).all() and np.isnan(lms.pose).all()
    assert all(np.isnan(h).all() for h in lms.hands.values())


def test_every_face_is_found_the_largest_first(photo):
    """detect_faces lists every face (the fit picks the largest of several people)."""
    # (the short-range detector finds faces over ~15% of the image's long side)
    head = photo[:320, 60:380]
    canvas = np.full((320, 544, 3), 120, np.uint8)
    canvas[96:, :224] = cv2.resize(head, (224, 224), interpolation=cv2.INTER_AREA)   # the smaller, left
    canvas[:, 224:] = head
    boxes = lm.detect_faces(canvas)
    assert len(boxes) == 2, boxes
    (x0, _, w0, h0), (x1, _, w1, h1) = boxes
    assert w0 * h0 > 1.3 * w1 * h1 and x0 > 224 > x1        # largest first, wherever it is
    assert lm.detect_faces(np.full((256, 256, 3), 90, np.uint8)) == []
    (x, y, w, h), = lm.detect_faces(photo)
    face = detect(photo[None], parts=("face",)).face[0, :468]
    cx, cy = face.mean(0)
    assert x < cx < x + w and y < cy < y + h               # the same face the mesh finds


def test_the_person_mask_covers_the_person(photo):
    mask = lm.segment_person(photo)
    assert mask.shape == photo.shape[:2] and mask.dtype == np.float32
    assert 0 <= mask.min() and mask.max() <= 1
    face = detect(photo[None], parts=("face",)).face[0]
    inside = np.zeros(mask.shape, np.uint8)
    cv2.fillConvexPoly(inside, cv2.convexHull(face.astype(np.int32)), 1)
    assert mask[inside > 0].mean() > 0.95                                  # the face
    top = int(face[:, 1].min())
    assert mask[top - 30:top - 10, 200:250].mean() > 0.9                  # the hair above it
    assert mask[300:500, 100:250].mean() > 0.95                            # the suit
    assert mask[:100, :100].mean() < 0.05 and mask[:100, 330:].mean() < 0.05   # flag, shuttle: background


def test_the_reference_fit_auto_uses_it(body, photo):
    fit = rf.fit_reference(photo, body, "auto")
    assert fit.detector == "landmarks" and not fit.info["warnings"]
    assert fit.info["landmark_error_px"] < 3.0
    assert {"left_shoulder", "right_shoulder"} <= set(fit.info["pose_joints_used"])


def test_without_litert_it_falls_back_with_a_reason(tmp_path):
    """A python where ai-edge-litert cannot be imported (as on a platform without its wheel)."""
    code = ("import sys, logging; sys.modules['ai_edge_litert'] = None\n"
            "logging.basicConfig(level=logging.WARNING, format='%(message)s')\n"
            "from vlogger_core.body import detect as d, reference as rf\n"
            "from vlogger_core.body.model import load_body\n"
            "print('PROBLEM', d.backend_problem('landmarks'))\n"
            "print('DEFAULT', d.default_backend(), d.default_backend())\n"
            "import numpy as np\n"
            "try:\n    rf.fit_reference(np.zeros((64, 64, 3), np.uint8), load_body(), 'landmarks')\n"
            "except rf.FitInputError as e:\n    print('ERR', e.arg, '|', e, '|', e.fix)\n"
            "from vlogger_core.render import compositor as c\n"     # the person mask: GrabCut
            "ph = np.random.default_rng(0).random((96, 96, 3)).astype(np.float32)\n"
            "sil = np.zeros((96, 96), bool); sil[30:90, 30:70] = True\n"
            "import cv2\ncv2.setRNGSeed(0); a = c.person_mask(ph, sil)\n"      # GrabCut draws random numbers
            "cv2.setRNGSeed(0); print('MASK', np.array_equal(a, c.person_mask_from_silhouette(ph, sil)))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "PROBLEM ai-edge-litert cannot be imported" in r.stdout, r
    fallback = "mediapipe" if backend_problem("mediapipe") is None else "None"
    assert f"DEFAULT {fallback} {fallback}" in r.stdout, r
    assert r.stderr.count("the default landmark detector is unavailable: ai-edge-litert") == 1, r.stderr  # one line, once
    assert "ERR detector | the landmarks detector cannot run" in r.stdout and "pip install ai-edge-litert" in r.stdout, r
    assert "MASK True" in r.stdout, r


# ----------------------------------------------------------------------------- against mediapipe
@pytest.mark.needs_mediapipe
def test_same_landmarks_as_mediapipe_on_the_photo(photo):
    ours, theirs = detect(photo[None]), detect(photo[None], backend="mediapipe")
    face = _px(ours.face[0], theirs.face[0])
    pose = _px(ours.pose[0], theirs.pose[0])
    print(f"photo 512: face mean {face.mean():.4f} px max {face.max():.4f}; pose mean {pose.mean():.4f} px "
          f"max {pose.max():.4f}")
    assert face.mean() < 0.05 and face.max() < 0.5          # measured 0.0007 / 0.002 px
    assert pose.mean() < 0.1 and np.abs(ours.pose[0, :, 2] - theirs.pose[0, :, 2]).max() < 0.01
    plain = _px(detect(photo[None], parts=("face",), refine_face=False).face[0, :468],
                detect(photo[None], parts=("face",), refine_face=False, backend="mediapipe").face[0, :468])
    assert plain.mean() < 0.05                               # the 468-point model body/track.py uses


@pytest.mark.needs_mediapipe
@pytest.mark.parametrize("tracking", [False, True], ids=["each-frame", "tracked"])
def test_same_landmarks_as_mediapipe_on_the_video(frames, tracking):
    ours, theirs = detect(frames, tracking), detect(frames, tracking, backend="mediapipe")
    assert ours.face_found().all() and theirs.face_found().all()
    assert ours.pose_found().all() and theirs.pose_found().all()
    face, pose = _px(ours.face, theirs.face), _px(ours.pose, theirs.pose)
    print(f"video 512 {'tracked' if tracking else 'each frame'}: face mean {face.mean():.4f} px "
          f"max {face.max():.4f}; pose mean {pose.mean():.4f} px max {pose.max():.4f}")
    assert face.mean() < (0.1 if tracking else 0.05)         # measured 0.02 / 0.0006 px
    assert pose.mean() < (1.0 if tracking else 0.1)          # measured 0.37 / 0.02 px


@pytest.mark.needs_mediapipe
def test_same_person_mask_as_mediapipe(photo):
    import mediapipe as mp

    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        theirs = seg.process(photo).segmentation_mask
    assert np.abs(lm.segment_person(photo) - theirs).max() < 1e-3


@pytest.mark.needs_mediapipe
def test_the_fit_is_the_one_mediapipe_gives(body, photo):
    ours, theirs = rf.fit_reference(photo, body, "landmarks"), rf.fit_reference(photo, body, "mediapipe")
    assert ours.detector == "landmarks" and theirs.detector == "mediapipe"
    det = _px(np.array(ours.info["detected_landmarks"]), np.array(theirs.info["detected_landmarks"]))
    a, b = ours.info["landmark_error_px"], theirs.info["landmark_error_px"]
    print(f"fit error: landmarks {a:.4f} px, mediapipe {b:.4f} px; targets differ by {det.mean():.4f} px")
    assert det.max() < 0.05 and abs(a - b) < 0.05
    assert ours.info["fov_diag_deg"] == pytest.approx(theirs.info["fov_diag_deg"], abs=0.5)
