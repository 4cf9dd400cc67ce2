"""The shipped default motion model: silence, lip sync on held-out speech, seamless windows."""
import numpy as np
import pytest
import torch

from vlogger_core.audio.tts import synthesize
from vlogger_core.media import resample
from vlogger_core.motion.model import load_motion_model
from vlogger_core.motion.params import ARKIT52
from vlogger_core.motion.plot import joint_angles
from vlogger_core.motion.sampling import SampleSettings, mouth_opening, sample_motion
from vlogger_core.motion.synthetic.corpus import HELDOUT_VOICES
from vlogger_core.motion.synthetic.visemes import viseme_track
from vlogger_core.paths import SHIPPED_MODELS

PATH = SHIPPED_MODELS / "motion" / "vlogger_motion_default.safetensors"


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return load_motion_model(str(PATH))


def _speech(text, voice=HELDOUT_VOICES[0]):
    w, sr, tl = synthesize(text, voice=voice)
    return resample(torch.from_numpy(w), sr, 16000), tl


def test_shipped_model_is_small_safetensors_with_config(model):
    assert PATH.stat().st_size < 10e6
    assert model.config.n_layers == 4 and model.config.expression_set == "arkit52"
    assert "final_losses" in model.training_info


def test_silent_audio_mouth_closed_idle_motion_continues(model):
    mo = sample_motion(model, torch.zeros(16000 * 8), 25.0, SampleSettings(seed=3))
    assert float(mouth_opening(mo).max()) < 0.1
    head = np.degrees(joint_angles(mo, "head"))
    assert head.std(0).max() > 0.05            # the head still drifts
    assert torch.isfinite(mo.as_vector()).all()


def test_lip_sync_on_heldout_sentence(model):
    wave, tl = _speech("Would you believe the mayor bought a purple umbrella at the airport?")
    mo = sample_motion(model, wave, 25.0, SampleSettings(seed=0))
    target = viseme_track(tl, len(wave) / 16000, 25.0, mo.num_frames)[:, 0]
    r = np.corrcoef(mouth_opening(mo).numpy(), target)[0, 1]
    assert r > 0.5, r


def test_windows_join_without_seams(model):
    text = ("Honestly, the old man painted the broken window before lunch. Then we talked about "
            "cold pizza, the football match and a tiny puppy, again and again, in the rain.")
    wave, _ = _speech(text)
    wave = wave.repeat(2)
    W, C = 64, 16
    mo = sample_motion(model, wave, 25.0, SampleSettings(seed=1, window=W, context=C))
    x = mo.as_vector().numpy()
    # Channels that move smoothly: rotations (expression includes fast blinks and lips).
    rot = x[:, 52:]
    jumps = np.abs(np.diff(rot, axis=0)).mean(1)
    bounds = np.arange(W, mo.num_frames, W - C)       # first new frame of each later window
    at = jumps[bounds - 1]
    others = np.delete(jumps, bounds - 1)
    assert len(bounds) >= 8
    assert at.mean() <= 2.0 * others.mean(), (at.mean(), others.mean())
    assert at.max() <= np.percentile(others, 99.5) * 1.5


def test_blink_overlay_adds_natural_blinks_and_nothing_else(model):
    wave, _ = _speech("We keep thinking about the museum downtown. Everyone here remembers it. "
                      "Nobody understood why the pilot forgot the heavy boxes last summer.")
    wave = wave.repeat(3)
    plain = sample_motion(model, wave, 25.0, SampleSettings(seed=2))
    mo = sample_motion(model, wave, 25.0, SampleSettings(seed=2, add_blinks=True))
    bi = [ARKIT52.index("eyeBlinkLeft"), ARKIT52.index("eyeBlinkRight")]
    b = mo.expression[:, bi[0]].numpy() > 0.5
    per_min = int(np.sum(b[1:] & ~b[:-1])) / (mo.duration / 60)
    assert 5 <= per_min <= 35, per_min
    keep = [i for i in range(52) if i not in bi]
    assert torch.equal(mo.expression[:, keep], plain.expression[:, keep])
    assert torch.equal(mo.rot6d, plain.rot6d)
