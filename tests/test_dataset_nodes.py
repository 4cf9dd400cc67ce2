"""Dataset preparation and motion fine-tuning nodes through the real server."""
from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
from footage import alternating_times, write_mp4, write_vfr_mp4

REPO = Path(__file__).resolve().parent.parent


def test_prepare_and_finetune_chain(comfy):
    wf = comfy.workflow("prepare_and_finetune")
    res = comfy.run(wf)
    assert res.error is None, res.error
    ds = comfy.output_dir / "vlogger_datasets" / "astronaut_demo"
    assert (ds / "dataset.json").exists() and len(list((ds / "clips").iterdir())) == 2   # 96 frames / 48
    model = comfy.models_dir / "vlogger" / "motion" / "astronaut_demo_motion.safetensors"
    assert model.exists() and (model.parent / "astronaut_demo_motion_loss_plot.png").exists()
    assert res.outputs["3"]["images"], "the loss plot is shown"
    # the fine-tuned model appears in the loader's list for later runs
    assert "astronaut_demo_motion.safetensors" in str(comfy.object_info()["VLOGGER_MotionModelLoader"])


def test_bad_dataset_path_names_the_input(comfy):
    wf = comfy.workflow("prepare_and_finetune")
    prompt = {"3": {**wf["3"], "inputs": {**wf["3"]["inputs"], "dataset": ["9", 0]}},
              "9": {"class_type": "PrimitiveString", "inputs": {"value": "/nonexistent/dataset"}}}
    res = comfy.run(prompt)
    assert "[VLOGGER_TrainMotion] input 'dataset'" in str(res.error), res.error


def _motion_dataset(root: Path, clips: int = 1) -> Path:
    """A dataset as motion training reads it: dataset.json + per clip its speech and motion."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text("{}")
    t = np.arange(4 * 16000) / 16000
    pcm = (8000 * np.sin(2 * np.pi * 180 * t) * np.sin(2 * np.pi * 3 * t).clip(0)).astype(np.int16)
    for k in range(clips):
        clip = root / "clips" / f"clip_{k:04d}"
        clip.mkdir(parents=True, exist_ok=True)
        (clip / "motion.npz").write_bytes((REPO / "examples" / "talking_astronaut_motion.npz").read_bytes())
        with wave.open(str(clip / "audio.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(pcm.tobytes())
    return root


def _run_watched(comfy, prompt: dict, on_progress=None) -> tuple[list, str]:
    """Run a prompt watching the server's websocket: its progress (value, max) messages and
    how it ended (execution_success / _error / _interrupted)."""
    import websocket

    ws = websocket.create_connection(comfy.url.replace("http", "ws", 1) + f"/ws?clientId={comfy.client_id}",
                                     timeout=600)
    try:
        pid, seen = comfy.queue(prompt), []
        while True:
            m = ws.recv()
            m = json.loads(m) if isinstance(m, str) else {}
            if m.get("data", {}).get("prompt_id") != pid:
                continue
            if m["type"] == "progress":
                seen.append((m["data"]["value"], m["data"]["max"]))
                if on_progress:
                    on_progress()
            if m["type"] in ("execution_success", "execution_error", "execution_interrupted"):
                return seen, m["type"]
    finally:
        ws.close()


def test_trainmotion_progress_cancel_and_typed_errors(comfy):
    """VLOGGER_TrainMotion's progress bar is the trainer's own progress(done, total), every step;
    Cancel stops the trainer and writes no model; the trainer's errors name the node's input."""
    wf = comfy.workflow("prepare_and_finetune")
    models = comfy.models_dir / "vlogger" / "motion"

    def train(data: Path, steps: int, name: str) -> dict:
        return {"9": {"class_type": "PrimitiveString", "inputs": {"value": str(data)}},
                "3": {**wf["3"], "inputs": {**wf["3"]["inputs"], "dataset": ["9", 0], "steps": steps,
                                            "output_name": name}}}
    ds = _motion_dataset(comfy.output_dir / "vlogger_datasets" / "motion_only")
    seen, end = _run_watched(comfy, train(ds, 7, "progress_probe"))
    assert end == "execution_success" and seen[-1] == (7, 7) and len(set(seen)) == 7, seen
    assert (models / "progress_probe.safetensors").exists() and (models / "progress_probe_loss_log.jsonl").exists()

    cancelled = []

    def cancel_once():
        if not cancelled:
            cancelled.append(comfy.interrupt())
    seen, end = _run_watched(comfy, train(ds, 100_000, "cancel_probe"), on_progress=cancel_once)
    assert end == "execution_interrupted" and seen and seen[0][1] == 100_000, (end, seen)
    assert not list(models.glob("cancel_probe*")) and not list(models.glob("*.partial*"))

    empty = comfy.output_dir / "vlogger_datasets" / "no_clips"
    empty.mkdir(parents=True, exist_ok=True)
    (empty / "dataset.json").write_text("{}")
    err = str(comfy.run(train(empty, 3, "never")).error)
    assert "[VLOGGER_TrainMotion] input 'dataset': no clip folders" in err and "Fix:" in err, err


def _prep(wf: dict, video, **inputs) -> dict:
    """The workflow's body loader + PrepareDataset on `video` (a link), with some inputs changed."""
    return {"1": wf["1"], "2": {**wf["2"], "inputs": {**wf["2"]["inputs"], "video": video, **inputs}}}


def _summary(res) -> dict:
    return json.loads(res.outputs["2"]["text"][1])


def test_prepare_from_an_image_batch_and_audio(comfy):
    """Create Video (IMAGE batch + AUDIO, no file behind it) -> PrepareDataset: frames and speech
    come through the VIDEO's components."""
    wf = comfy.workflow("prepare_and_finetune")
    prompt = _prep(wf, ["42", 0], dataset_name="from_frames", clip_frames=48, frame_size=32)
    prompt.update({"40": {"class_type": "LoadVideo", "inputs": {"file": "talking_astronaut.mp4"}},
                   "41": {"class_type": "GetVideoComponents", "inputs": {"video": ["40", 0]}},
                   "42": {"class_type": "CreateVideo", "inputs": {"images": ["41", 0], "audio": ["41", 1],
                                                                  "fps": 24.0}}})
    res = comfy.run(prompt)
    assert res.error is None, res.error
    ds = comfy.output_dir / "vlogger_datasets" / "from_frames"
    d = json.loads((ds / "dataset.json").read_text())
    assert d["kept"] == 2 and d["sources"] == ["video"] and d["frame_size"] == [32, 32]
    for c in d["clips"]:
        with wave.open(str(ds / "clips" / c / "audio.wav")) as w:      # the speech came through
            assert w.getframerate() == 16000 and w.getnframes() == 2 * 16000
            pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        assert np.abs(pcm).max() > 1000
    assert not list(ds.parent.glob("*.partial"))


def _write_video(path: Path, frames: np.ndarray, audio=None, times=None) -> Path:
    return write_mp4(path, frames, audio=audio) if times is None else write_vfr_mp4(path, frames, times)


def test_prepare_bad_and_awkward_footage(comfy, tmp_path):
    """Through the server: silent footage is refused naming allow_silent (and accepted with it),
    footage with no person, a cut and a variable frame rate are reported as documented."""
    from vlogger_core.media import read_video

    frames, *_ = read_video(REPO / "examples" / "talking_astronaut.mp4")
    wf = comfy.workflow("prepare_and_finetune")
    load = lambda name: {"40": {"class_type": "LoadVideo", "inputs": {"file": name}}}  # noqa: E731
    small = dict(clip_frames=24, frame_size=32)

    silent = comfy.upload(_write_video(tmp_path / "silent_clip.mp4", frames[:30]))
    res = comfy.run({**_prep(wf, ["40", 0], dataset_name="silent", **small), **load(silent)})
    err = str(res.error)
    assert "[VLOGGER_PrepareDataset] input 'video'" in err and "no audio track" in err and "allow_silent" in err, err
    assert not (comfy.output_dir / "vlogger_datasets" / "silent").exists()
    res = comfy.run({**_prep(wf, ["40", 0], dataset_name="silent", allow_silent=True, **small), **load(silent)})
    assert res.error is None, res.error
    assert _summary(res)["kept"] == 1 and _summary(res)["notes"]["silent_clip.mp4"]["silent"]

    rng = np.random.default_rng(0)
    noise = comfy.upload(_write_video(tmp_path / "noise_clip.mp4", rng.integers(0, 255, (24, 64, 64, 3), np.uint8),
                                      audio=np.zeros(16000, np.float32)))
    err = str(comfy.run({**_prep(wf, ["40", 0], dataset_name="noise", **small), **load(noise)}).error)
    assert "[VLOGGER_PrepareDataset] input 'video'" in err and "no person found" in err and "Fix:" in err, err

    other = np.ascontiguousarray(frames[40:80, :, ::-1, ::-1])      # mirrored, other colours: another shot
    cut = comfy.upload(_write_video(tmp_path / "cut_clip.mp4", np.concatenate([frames[:40], other]),
                                    audio=np.zeros(16000 * 4, np.float32)))
    res = comfy.run({**_prep(wf, ["40", 0], dataset_name="cut", clip_frames=48, frame_size=32), **load(cut)})
    assert res.error is None, res.error
    s = _summary(res)
    assert s["notes"]["cut_clip.mp4"]["shot_cuts"] == [40] and s["kept"] == 2, s
    assert "1 shot cut(s)" in res.outputs["2"]["text"][0]

    # alternating 1/30 and 1/15 s frame steps: resampled to 24 fps, and said so
    times = alternating_times(60)
    vfr = comfy.upload(_write_video(tmp_path / "vfr_clip.mp4", frames[:60], times=times))
    res = comfy.run({**_prep(wf, ["40", 0], dataset_name="vfr", allow_silent=True, **small), **load(vfr)})
    assert res.error is None, res.error
    n = _summary(res)["notes"]["vfr_clip.mp4"]
    assert n["variable_frame_rate"] and n["resampled_to_fps"] == 24.0, n
    assert "resampled to constant fps" in res.outputs["2"]["text"][0]


def test_prepare_from_images_and_audio_inputs(comfy):
    """The IMAGE batch + AUDIO inputs directly (Get Video Components, or another pack's loader);
    without the audio it is refused naming 'audio'; nothing connected names 'video'."""
    wf = comfy.workflow("prepare_and_finetune")
    src = {"40": {"class_type": "LoadVideo", "inputs": {"file": "talking_astronaut.mp4"}},
           "41": {"class_type": "GetVideoComponents", "inputs": {"video": ["40", 0]}}}
    prompt = {**_prep(wf, ["40", 0], dataset_name="from_images", clip_frames=48, frame_size=32,
                      images=["41", 0], audio=["41", 1], images_fps=["41", 2]), **src}
    del prompt["2"]["inputs"]["video"]
    res = comfy.run(prompt)
    assert res.error is None, res.error
    d = json.loads((comfy.output_dir / "vlogger_datasets" / "from_images" / "dataset.json").read_text())
    assert d["kept"] == 2 and d["sources"] == ["images"]
    assert (comfy.output_dir / "vlogger_datasets" / "from_images" / "clips" / "clip_0001" / "audio.wav").exists()
    del prompt["2"]["inputs"]["audio"]
    err = str(comfy.run(prompt).error)
    assert "[VLOGGER_PrepareDataset] input 'audio'" in err and "allow_silent" in err, err
    del prompt["2"]["inputs"]["images"]
    err = str(comfy.run(prompt).error)
    assert "[VLOGGER_PrepareDataset] input 'video': nothing is connected" in err, err


def test_require_hands_drops_clips_without_hands(comfy):
    """The example video shows no hands: with require_hands every clip is dropped, and the
    node says why and which settings to relax."""
    wf = comfy.workflow("prepare_and_finetune")
    prompt = {**_prep(wf, ["40", 0], dataset_name="hands", clip_frames=48, frame_size=32, require_hands=True),
              "40": {"class_type": "LoadVideo", "inputs": {"file": "talking_astronaut.mp4"}}}
    err = str(comfy.run(prompt).error)
    assert "[VLOGGER_PrepareDataset] input 'video': no usable clip (hands missing in 100% of the frames)" in err, err
    assert "require_hands" in err and not (comfy.output_dir / "vlogger_datasets" / "hands").exists()
