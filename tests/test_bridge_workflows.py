"""The part of each shipped bridge workflow made of our nodes (photo + speech -> fit -> motion ->
16 fps timing / windows -> pose / face / depth videos), queued on its own through the real server
with save and preview nodes on its videos: it runs and writes them, at the frame counts, rates and
window slices the Wan / ControlNet nodes downstream take. (That the whole shipped workflows are
refused only for their absent weights is tests/test_workflows_api.py's check.)"""
from __future__ import annotations

import json

import numpy as np
from comfyui_server import PromptRejected
from test_workflows_api import Run

from vlogger_core.bridge.windows import padded_length, window_start

OURS = ("VLOGGER_", "LoadImage")
TEST_SIZE = 320
FACE_FRAMES = 5          # face / depth videos are checked on their first frames (CPU time)


def our_part(name: str, comfy) -> dict:
    """The shipped workflow's nodes of this pack (and the photo loader) that need nothing else
    (a writer of the video model's frames drops out; the fetch node is tested on its own); the
    driving-video nodes are all in it."""
    prompt = comfy.workflow(name)
    part = {k: v for k, v in prompt.items() if v["class_type"].startswith(OURS)
            and v["class_type"] != "VLOGGER_FetchModels"}      # offline here: its own test
    while True:
        outside = [k for k, v in part.items()
                   if any(isinstance(x, list) and x[0] not in part for x in v["inputs"].values())]
        if not outside:
            break
        for k in outside:
            del part[k]
    makers = {k for k, v in prompt.items() if v["class_type"] in
              ("VLOGGER_PoseVideo", "VLOGGER_FaceVideo", "VLOGGER_WanTiming", "VLOGGER_WanWindow")}
    assert makers and makers <= part.keys(), f"{name}: driving-video nodes depend on other nodes"
    return part


def save_video(images, fps, prefix: str, audio=None) -> dict:
    inputs = {"images": images, "fps": fps, "filename_prefix": prefix, "crf": 16}
    if audio is not None:
        inputs["audio"] = audio
    return {"class_type": "VLOGGER_SaveVideo", "inputs": inputs}


def run(comfy, prompt: dict) -> Run:
    result = comfy.run(prompt)
    assert result.error is None, json.dumps(result.error)[:3000]
    return Run(comfy, result)


def test_wan_animate_part_writes_pose_face_and_depth_videos(comfy):
    p = our_part("wan_animate", comfy)
    for node in ("8", "9"):                                   # the workflow's 640 x 640, halved (CPU time)
        p[node]["inputs"].update(width=TEST_SIZE, height=TEST_SIZE)
    p["8"]["inputs"]["max_frames"] = 0                       # the whole pose video
    p["9"]["inputs"]["max_frames"] = FACE_FRAMES
    p["50"] = {"class_type": "VLOGGER_DepthVideo", "inputs": {
        "body": ["2", 0], "fit": ["3", 0], "motion": ["7", 0], "width": TEST_SIZE, "height": TEST_SIZE,
        "start_frame": 0, "max_frames": FACE_FRAMES}}
    p["60"] = save_video(["8", 0], ["7", 3], "bridge_test/animate_pose", ["7", 1])
    p["61"] = save_video(["9", 0], ["7", 3], "bridge_test/animate_face")
    p["62"] = save_video(["50", 0], ["7", 3], "bridge_test/animate_depth")
    p["63"] = {"class_type": "PreviewAudio", "inputs": {"audio": ["7", 1]}}
    p["64"] = {"class_type": "PreviewAudio", "inputs": {"audio": ["4", 0]}}
    r = run(comfy, p)
    pose, face, depth = r.video("60"), r.video("61"), r.video("62")
    speech, wan_audio = r.audio("64"), r.audio("63")
    frames = padded_length(round(speech.seconds * 16))
    assert pose.fps == 16 and len(pose.frames) == frames and (frames - 1) % 4 == 0, (len(pose.frames), frames)
    assert pose.frames.shape[1:3] == (TEST_SIZE, TEST_SIZE)
    assert wan_audio.rate == 16000 and abs(wan_audio.seconds - frames / 16) < 1e-3, wan_audio.seconds
    assert abs(pose.audio_seconds - frames / 16) <= 0.1, pose.audio_seconds
    drawn = pose.frames.max(-1) > 60
    assert 0.002 < drawn.mean() < 0.2, drawn.mean()          # a skeleton on black, not a picture
    assert (np.abs(np.diff(pose.frames.astype(int), axis=0)).max((1, 2, 3)) > 0).mean() > 0.5, "the pose never moves"
    assert face.frames.shape == (FACE_FRAMES, 512, 512, 3)
    skin = face.frames[:, 200:320, 180:330].reshape(-1, 3).mean(0)   # the face fills the crop
    assert skin[0] > skin[2] + 20 and skin[0] > 120, skin
    assert depth.frames.shape == (FACE_FRAMES, TEST_SIZE, TEST_SIZE, 3)
    body = depth.frames.max(-1) > 20
    assert 0.1 < body.mean() < 0.9 and (depth.frames[~body] > 10).mean() < 0.01


def test_wan_s2v_part_slices_each_window(comfy):
    p = our_part("wan_s2v", comfy)
    whole_pose = {"class_type": "VLOGGER_PoseVideo", "inputs": {**p["9"]["inputs"], "motion": ["7", 0]}}
    start = window_start(1, 77, "s2v")
    assert start == 80                                   # 20 latent frames x 4, as ComfyUI's Extend reads audio
    p["70"] = {**whole_pose, "inputs": {**whole_pose["inputs"], "start_frame": start, "max_frames": 1}}
    p["71"] = {"class_type": "PreviewImage", "inputs": {"images": ["70", 0]}}
    p["72"] = {"class_type": "PreviewImage", "inputs": {"images": ["11", 0]}}      # window 1's pose video
    p["73"] = save_video(["9", 0], 16.0, "bridge_test/s2v_window0", ["8", 1])
    p["74"] = {"class_type": "PreviewAudio", "inputs": {"audio": ["10", 1]}}
    p["75"] = {"class_type": "PreviewAudio", "inputs": {"audio": ["7", 1]}}
    r = run(comfy, p)
    w0 = r.video("73")
    assert len(w0.frames) == 77 and w0.fps == 16 and abs(w0.audio_seconds - 77 / 16) <= 0.1
    (whole_80,) = r.images("71")
    window1 = r.images("72")
    assert len(window1) == 77
    assert np.array_equal(window1[0], whole_80), "window 1 does not start at the whole video's frame 80"
    assert not np.array_equal(window1[0], w0.frames[0])
    a1, whole = r.audio("74"), r.audio("75")
    assert a1.rate == 16000 and abs(a1.seconds - 77 / 16) < 1e-3
    seg = whole.samples[0, start * 1000:(start + 77) * 1000]      # 16 kHz / 16 fps = 1000 samples a frame
    n = min(len(seg), a1.samples.shape[1])
    assert n > 16000 and np.abs(seg[:n] - a1.samples[0, :n]).max() < 0.02, "window 1's speech is not its slice"


def test_sd15_openpose_part_writes_the_pose_video(comfy):
    p = our_part("sd15_openpose", comfy)
    p["80"] = save_video(["7", 0], 12.0, "bridge_test/sd15_pose", ["4", 0])
    p["81"] = {"class_type": "PreviewAudio", "inputs": {"audio": ["4", 0]}}
    r = run(comfy, p)
    v, speech = r.video("80"), r.audio("81")
    assert v.fps == 12 and abs(len(v.frames) - speech.seconds * 12) <= 1 and v.frames.shape[1:3] == (512, 512)
    white = (v.frames.min(-1) > 200)                      # the face dots are drawn (face on)
    assert white[:, :256].sum() > 20, white.sum()
    # the speech is the one the workflow loaded
    assert abs(v.audio_seconds - len(v.frames) / 12) <= 0.2


def test_bridge_nodes_refuse_bad_inputs(comfy):
    p = our_part("wan_s2v", comfy)
    p["10"]["inputs"]["length"] = 78
    p["90"] = {"class_type": "PreviewAudio", "inputs": {"audio": ["10", 1]}}
    try:
        msg = json.dumps(comfy.run({k: p[k] for k in ("4", "5", "6", "10", "90")}).error or {})
    except PromptRejected as e:          # refused when queued, or when it ran: the same message
        msg = json.dumps(e.body)
    assert "[VLOGGER_WanWindow]" in msg and "'length'" in msg and "4n + 1" in msg, msg[:2000]



def test_the_audio_encoder_loader_refuses_its_absent_file_when_run(comfy):
    """ComfyUI does not check this V3 loader's file when the prompt is queued (workflow_files.
    RUN_TIME_LOADERS); run, it is the loader's own error that names the file."""
    prompt = comfy.workflow("wan_s2v")
    loader = next(k for k, v in prompt.items() if v["class_type"] == "AudioEncoderLoader")
    result = comfy.run({loader: prompt[loader],
                        "90": {"class_type": "PreviewAny", "inputs": {"source": [loader, 0]}}})
    msg = json.dumps(result.error or {})
    assert "wav2vec2_large_english_fp16.safetensors" in msg and "not found" in msg, msg[:2000]


def test_the_fetch_node_keeps_files_in_place_offline(comfy):
    """A file already in its folder is kept without asking the hub, so the workflows' fetch node
    passes offline once the weights are there (the test server is offline)."""
    name = "bridge_fetch_test.safetensors"
    target = comfy.models_dir / "loras" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"\0" * 64)
    result = comfy.run({"1": {"class_type": "VLOGGER_FetchModels", "inputs": {
        "workflow": "one file (below)", "file": f"someone/loras/{name}", "folder": "loras"}}})
    assert result.error is None, json.dumps(result.error)[:2000]
    assert name in json.dumps(result.outputs["1"]), result.outputs
