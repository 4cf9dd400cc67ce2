"""Every shipped API-format workflow runs through the real server over HTTP and does what it is
for: each has an expectation in EXPECT (a new workflow without one fails). Some add probe nodes
(PreviewAudio / PreviewImage on an intermediate output) to see what a step produced, e.g. the
speech the video must match; the workflow's own nodes and links are untouched."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import av
import numpy as np
import pytest
from comfyui_server import PromptRejected
from PIL import Image
from safetensors.numpy import load_file
from workflow_files import ABSENT_WEIGHTS, API_FILES, UI_FILES, weights_problem

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHIPPED_MOTION = EXAMPLES.parent / "models" / "motion" / "vlogger_motion_default.safetensors"


@dataclass
class Video:
    frames: np.ndarray          # [N, H, W, 3] uint8
    fps: float
    audio_seconds: float | None

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.fps


@dataclass
class Audio:
    samples: np.ndarray         # [C, T] float
    rate: int

    @property
    def seconds(self) -> float:
        return self.samples.shape[1] / self.rate

    @property
    def rms_dbfs(self) -> float:
        return float(20 * np.log10(np.sqrt(np.mean(self.samples.astype(np.float64) ** 2)) + 1e-12))


def read_video(data: bytes) -> Video:
    with av.open(io.BytesIO(data)) as c:
        v = c.streams.video[0]
        fps = float(v.average_rate)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(v)])
    with av.open(io.BytesIO(data)) as c:
        seconds = None
        if c.streams.audio:
            a = c.streams.audio[0]
            seconds = sum(f.samples for f in c.decode(a)) / a.rate
    return Video(frames, fps, seconds)


def read_audio(data: bytes | Path) -> Audio:
    with av.open(io.BytesIO(data) if isinstance(data, bytes) else str(data)) as c:
        a = c.streams.audio[0]
        chunks = [f.to_ndarray().reshape(a.channels, -1) if f.format.is_planar
                  else f.to_ndarray().reshape(-1, a.channels).T for f in c.decode(a)]
    x = np.concatenate(chunks, axis=1)
    scale = np.iinfo(x.dtype).max + 1 if np.issubdtype(x.dtype, np.integer) else 1
    return Audio((x / scale).astype(np.float32), a.rate)


class Run:
    """One workflow's result, with readers for what its nodes showed."""

    def __init__(self, comfy, result):
        self.comfy, self.result = comfy, result

    def files(self, node: str, kind: str) -> list[dict]:
        items = self.result.outputs.get(node, {}).get(kind) or []
        assert items, f"node {node} showed no {kind}: {json.dumps(self.result.outputs.get(node))[:500]}"
        return items

    def video(self, node: str) -> Video:
        (f,) = self.files(node, "images")          # PreviewVideo's entry
        assert f["filename"].endswith(".mp4"), f
        return read_video(self.comfy.fetch(f))

    def images(self, node: str) -> np.ndarray:
        return np.stack([np.asarray(Image.open(io.BytesIO(self.comfy.fetch(f))).convert("RGB"))
                         for f in self.files(node, "images")])

    def audio(self, node: str) -> Audio:
        (f,) = self.files(node, "audio")
        return read_audio(self.comfy.fetch(f))

    def text(self, node: str) -> list[str]:
        return self.files(node, "text")


def preview_audio(node: str, output: int = 0) -> dict:
    return {"class_type": "PreviewAudio", "inputs": {"audio": [node, output]}}


def preview_image(node: str, output: int = 0) -> dict:
    return {"class_type": "PreviewImage", "inputs": {"images": [node, output]}}


# workflow name -> (probe nodes added to its prompt, the check of what it is for)
EXPECT: dict[str, tuple[dict, Callable[[Run], None]]] = {}


def expects(name: str, probes: dict | None = None):
    def register(check):
        EXPECT[name] = (probes or {}, check)
        return check
    return register


def assert_person_talks(frames: np.ndarray) -> None:
    """A talking person on a still background: some pixels change over time, most do not, and
    the picture keeps changing (not one pose held)."""
    span = (frames.max(0).astype(int) - frames.min(0)).max(-1)
    moving = float((span > 40).mean())
    assert 0.005 < moving < 0.6, f"{moving:.3%} of the pixels change over the video"
    steps = np.abs(np.diff(frames[::6].astype(np.int16), axis=0)).mean((1, 2, 3))
    assert (steps > 0.3).mean() > 0.7, f"a quarter-second apart, frames barely differ: {steps}"


def assert_talking_video(video: Video, speech: Audio, size: tuple[int, int] = (256, 256)) -> None:
    assert video.fps == 24 and video.frames.shape[1:3] == size, (video.fps, video.frames.shape)
    assert abs(video.seconds - speech.seconds) <= 0.2, (video.seconds, speech.seconds)
    assert video.audio_seconds is not None, "the MP4 has no audio stream"
    assert abs(video.audio_seconds - video.seconds) <= 0.2, (video.audio_seconds, video.seconds)
    assert_person_talks(video.frames)


@expects("talking_video", {"900": preview_audio("4")})
def check_talking_video(run: Run):
    assert_talking_video(run.video("8"), run.audio("900"))


@expects("talking_video_from_text", {"900": preview_audio("4")})
def check_talking_video_from_text(run: Run):
    speech = run.audio("900")
    assert speech.seconds > 4, speech.seconds        # the whole typed sentence was spoken
    assert_talking_video(run.video("8"), speech)


@expects("talking_video_long", {"900": preview_audio("4")})
def check_talking_video_long(run: Run):
    assert_talking_video(run.video("7"), run.audio("900"))


@expects("talking_video_from_motion")
def check_talking_video_from_motion(run: Run):
    with np.load(EXAMPLES / "talking_astronaut_motion.npz") as m:
        frames, fps = m["expression"].shape[0], float(m["fps"])
    v = run.video("6")
    assert len(v.frames) == frames and v.fps == fps and v.frames.shape[1:3] == (256, 256)
    assert v.audio_seconds is not None and v.audio_seconds >= v.seconds - 0.2, v.audio_seconds
    assert_person_talks(v.frames)


@expects("motion_exchange", {"900": {"class_type": "VLOGGER_SaveMotion",
                                     "inputs": {"motion": ["7", 0], "filename_prefix": "vlogger/exchange_probe"}}})
def check_motion_exchange(run: Run):
    """The motion out as ARKit CSV and BVH (read back equal), a 60 fps capture in at 24 fps."""
    from vlogger_core.motion.exchange.arkit_csv import read_arkit_csv
    from vlogger_core.motion.exchange.bvh import parse_bvh
    from vlogger_core.motion.params import ARKIT52, Motion

    true = Motion.load_npz(str(EXAMPLES / "talking_astronaut_motion.npz"))
    out = run.comfy.output_dir / "vlogger"
    csv_file = max(out.glob("exchange_face_*.csv"), key=lambda p: p.stat().st_mtime)
    back, _ = read_arkit_csv(csv_file, 24.0, 24.0)
    assert back.num_frames == true.num_frames and (back.expression - true.expression).abs().max() < 1e-5
    bvh = parse_bvh(max(out.glob("exchange_body_*.bvh"), key=lambda p: p.stat().st_mtime).read_text())
    assert len(bvh.joints) == 55 and len(bvh.positions) == true.num_frames
    # the 60 fps capture (the same face) read at 24 fps (its node's text may be cached: read the motion)
    cap = Motion.load_npz(str(max(out.glob("exchange_probe_*.npz"), key=lambda p: p.stat().st_mtime)))
    assert cap.num_frames == true.num_frames and cap.fps == 24.0
    assert (cap.expression - true.expression).abs().max() < 0.1           # resampled 24 -> 60 -> 24 fps
    jaw = ARKIT52.index("jawOpen")
    assert np.corrcoef(cap.expression[:, jaw], true.expression[:, jaw])[0, 1] > 0.98
    assert run.images("8").std() > 10          # the capture's plot


@expects("motion_combine")
def check_motion_combine(run: Run):
    """Face from the npz, head from the capture from frame 24 on (its first frame there), crossfaded;
    then the keyframed edits: a head turn between 2.5 and 3.5 s only, a blink at 1 s."""
    from vlogger_core.motion.params import ARKIT52, Motion

    true = Motion.load_npz(str(EXAMPLES / "talking_astronaut_motion.npz"))
    out = run.comfy.output_dir / "vlogger"
    m = Motion.load_npz(str(max(out.glob("combined_*.npz"), key=lambda p: p.stat().st_mtime)))
    blink = [ARKIT52.index("eyeBlinkLeft"), ARKIT52.index("eyeBlinkRight")]
    other = [i for i in range(52) if i not in blink]
    assert m.num_frames == true.num_frames and (m.expression[:, other] - true.expression[:, other]).abs().max() < 1e-6
    assert float(m.expression[24, blink].min()) > 0.8                # the added blink (frame 24: 1.02 s)
    k = m.joints.index("head")
    R, Rt = m.rotation_matrices()[:, k], true.rotation_matrices()[:, k]
    assert (R[:24] - Rt[:24]).abs().max() < 1e-5                    # before the head's start: the face's
    for a, b in ((40, 60), (84, 96)):                               # the capture's head, 24 frames on
        assert (R[a:b] - Rt[a - 24:b - 24]).abs().max() < 1e-3
    turned = (R[60:84] - Rt[36:60]).abs().amax((-1, -2))           # the edit's 2.5..3.5 s only
    assert float(turned[12]) > 0.2 and float(turned.max()) < 0.5
    assert run.images("4").std() > 10


@expects("reenact_photo")
def check_reenact_photo(run: Run):
    """The photo driven by the driving video: as long as it, with its audio, and moving."""
    v = run.video("6")
    assert len(v.frames) == 96 and v.fps == 24 and v.frames.shape[1:3] == (256, 256), v.frames.shape
    assert v.audio_seconds is not None and abs(v.audio_seconds - 4.0) <= 0.2, v.audio_seconds
    assert_person_talks(v.frames)


@expects("motion_from_speech", {"900": preview_audio("1")})
def check_motion_from_speech(run: Run):
    (saved,) = run.text("5")                          # "saved <subfolder>/<file>.npz"
    path = run.comfy.output_dir / saved.removeprefix("saved ")
    with np.load(path, allow_pickle=False) as m:
        assert str(m["format"]) == "vlogger-motion-v1" and float(m["fps"]) == 25.0
        expression, rot6d = m["expression"], m["rot6d"]
    n = expression.shape[0]
    assert abs(n - run.audio("900").seconds * 25) <= 1, n          # one frame per 1/25 s of speech
    assert rot6d.shape[:1] == (n,) and rot6d.shape[2] == 6
    assert expression.std(0).max() > 0.05 and rot6d.std(0).max() > 1e-3   # the face and the head move
    (plot,) = run.images("4")
    assert plot.shape == (800, 1200, 3)


@expects("fit_reference")
def check_fit_reference(run: Run):
    photo = np.asarray(Image.open(EXAMPLES / "astronaut.png").convert("RGB"))
    (overlay,) = run.images("4")
    assert overlay.shape == photo.shape
    drawn = float((np.abs(overlay.astype(int) - photo).max(-1) > 20).mean())
    assert 0.03 < drawn < 0.9, f"the fitted body covers {drawn:.1%} of the photo"


@expects("render_controls")
def check_render_controls(run: Run):
    dense, semantic, warped, mask = (run.images(n) for n in ("5", "6", "7", "9"))
    for maps in (dense, semantic, warped, mask):
        assert maps.shape == (24, 256, 256, 3), maps.shape       # max_frames 24 of the motion
    body = dense.max(-1) > 0
    assert 0.05 < body.mean() < 0.95
    assert ((semantic.max(-1) > 0) == body).mean() > 0.99      # semantic covers the same pixels
    assert (warped.max(-1) > 0).mean() > 0.5 * body.mean()
    assert (body[0] != body[-1]).mean() > 0.001, "the body does not move over the 24 frames"
    mouth = mask[..., 0] > 127
    assert 0 < mouth.mean() < 0.05 and (mouth & ~body).sum() <= 0.02 * mouth.sum()
    (overlay,) = run.images("10")
    assert overlay.shape == (512, 512, 3)


@expects("load_speech")
def check_load_speech(run: Run):
    raw, speech = read_audio(EXAMPLES / "speech.wav"), run.audio("2")
    assert speech.rate == 16000 and speech.samples.shape[0] == 1
    assert raw.seconds - 0.3 <= speech.seconds <= raw.seconds + 0.01, (speech.seconds, raw.seconds)
    assert abs(speech.rms_dbfs + 20) < 1.5, speech.rms_dbfs       # normalised to -20 dBFS


@expects("text_to_speech")
def check_text_to_speech(run: Run):
    speech = run.audio("2")
    words = len("Hello! I'm a talking photo, made from a single picture and this sentence.".split())
    expected = words / 160 * 60                       # the workflow's rate: 160 words per minute
    assert 0.6 * expected < speech.seconds < 1.6 * expected, (speech.seconds, expected)
    assert speech.rms_dbfs > -30, speech.rms_dbfs


@expects("redub_video", {"900": preview_image("7", 0), "903": preview_audio("7", 2),
                         "901": {"class_type": "MaskToImage", "inputs": {"mask": ["7", 1]}},
                         "902": preview_image("901")})
def check_redub_video(run: Run):
    with av.open(str(EXAMPLES / "talking_astronaut.mp4")) as c:
        source = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])
    frames, mask = run.images("900"), run.images("902")[..., 0]
    n = len(frames)
    assert abs(n - run.audio("903").seconds * 24) <= 1, n        # the new speech's length
    k = min(n, len(source))                           # a shorter video plays back and forth
    kept = mask[:k] == 0
    diff = np.abs(frames[:k].astype(int) - source[:k]).max(-1)
    assert kept.mean() > 0.8 and diff[kept].max() <= 1, "pixels outside the mask changed"
    changed = [diff[i][mask[i] > 127].mean() for i in range(k) if (mask[i] > 127).any()]
    assert changed and max(changed) > 3, "the mouth was not re-rendered"
    v = run.video("8")
    assert len(v.frames) == n and v.fps == 24 and v.audio_seconds is not None
    assert abs(v.audio_seconds - v.seconds) <= 0.2


def _dataset(run: Run, name: str, frame_size: int) -> dict:
    root = run.comfy.output_dir / "vlogger_datasets" / name
    d = json.loads((root / "dataset.json").read_text())
    assert d["format"] == "vlogger-dataset-v1" and d["kept"] == 2, d     # 96 frames in 48-frame clips
    assert d["frame_size"] == [frame_size, frame_size]
    for clip in d["clips"]:
        with np.load(root / "clips" / clip / "frames.npz") as z:
            assert z["frames"].shape == (48, frame_size, frame_size, 3)
    return d


@expects("prepare_and_finetune")
def check_prepare_and_finetune(run: Run):
    _dataset(run, "astronaut_demo", 64)
    tuned = load_file(str(run.comfy.models_dir / "vlogger" / "motion" / "astronaut_demo_motion.safetensors"))
    base = load_file(str(SHIPPED_MOTION))
    assert tuned.keys() == base.keys()
    assert any(not np.array_equal(tuned[k], base[k]) for k in base), "the model was not fine-tuned"
    assert len(run.images("3")) == 1                  # the loss plot
    (plot,) = run.images("6")
    assert plot.shape == (800, 1200, 3)


@expects("personalize_lora")
def check_personalize_lora(run: Run):
    _dataset(run, "astronaut_lora_demo", 32)
    lora = run.comfy.models_dir / "vlogger" / "lora" / "astronaut_lora_demo"
    info = json.loads((lora / "lora.json").read_text())
    assert info["model_folder"] == "tiny-random-pixel" and info["steps"] == 8
    assert len(load_file(str(lora / "lora.safetensors"))) > 0
    assert run.images("11").shape == (4, 32, 32, 3)


def assert_diffusion_video(v: Video, frames: int) -> None:
    assert v.frames.shape == (frames, 64, 64, 3) and v.fps == 24, (v.frames.shape, v.fps)   # SR 32 -> 64
    assert v.audio_seconds is not None and abs(v.audio_seconds - v.seconds) <= 0.2
    assert np.abs(np.diff(v.frames.astype(np.int16), axis=0)).mean() > 0.5   # not one frame repeated


@expects("diffusion_video")
def check_diffusion_video(run: Run):
    assert_diffusion_video(run.video("10"), 48)       # the controls' 48 frames


@expects("diffusion_stages")
def check_diffusion_stages(run: Run):
    assert run.images("11").shape == (4, 32, 32, 3)   # one clip of the model's N frames
    assert_diffusion_video(run.video("15"), 12)       # the outpainted 12 frames, super-resolved


def expects_absent_weights(name: str):
    """A workflow for weights that are not here: queued as shipped, ComfyUI refuses it for exactly
    the model files it names (ABSENT_WEIGHTS), nothing else; tests/test_bridge_workflows.py runs
    the part made of our nodes."""
    def check(run: Run):
        raise AssertionError(f"{name} ran: its weights are not supposed to be here")
    EXPECT[name] = ({}, check)


for _name in ABSENT_WEIGHTS:   # wan_animate, wan_s2v, sd15_openpose
    expects_absent_weights(_name)


def test_every_api_workflow_has_a_ui_twin():
    assert API_FILES, "no shipped workflow"
    assert {p.stem for p in API_FILES} == {p.stem for p in UI_FILES}


def test_every_workflow_has_an_expectation():
    assert {p.stem for p in API_FILES} == set(EXPECT), "add what a new workflow is for to EXPECT"


@pytest.mark.parametrize("path", API_FILES, ids=[p.stem for p in API_FILES])
def test_api_workflow_runs(comfy, path):
    assert path.stem in EXPECT, f"{path.name} has no expectation in EXPECT: say what it is for"
    probes, check = EXPECT[path.stem]
    prompt = json.loads(path.read_text())
    assert not probes.keys() & prompt.keys(), "a probe id is taken by the workflow"
    if path.stem in ABSENT_WEIGHTS:
        with pytest.raises(PromptRejected) as rejected:
            comfy.queue(prompt)
        problem = weights_problem(rejected.value.body, ABSENT_WEIGHTS[path.stem], prompt)
        assert problem is None, f"{path.name}: {problem}"
        return
    result = comfy.run({**prompt, **probes})
    assert result.error is None, f"{path.name} failed: {json.dumps(result.error)[:3000]}"
    assert result.status == "success"
    files = result.files()
    assert files, f"{path.name} produced no output file"
    for f in files:
        assert len(comfy.fetch(f)) > 0
    check(Run(comfy, result))
