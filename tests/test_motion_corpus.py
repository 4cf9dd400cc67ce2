"""Audio features, visemes and the synthetic motion corpus (real espeak-ng speech)."""
import json

import numpy as np
import pytest
import torch

from vlogger_core.audio.features import FEATURE_DIM, audio_features, prepare_audio
from vlogger_core.audio.speech_io import SpeechError
from vlogger_core.audio.tts import PhonemeTimeline
from vlogger_core.motion.params import ARKIT52, Motion
from vlogger_core.motion.synthetic import corpus as sc
from vlogger_core.motion.synthetic.visemes import (
    VISEME_KEYS,
    phoneme_viseme,
    viseme_track,
)


def test_features_frame_count_any_fps():
    wave = torch.randn(int(16000 * 2.34)) * 0.1
    for fps in (24, 25, 29.97, 30, 60):
        f = audio_features(wave, fps)
        assert f.shape == (round(2.34 * fps), FEATURE_DIM)
        assert torch.isfinite(f).all()


def test_features_follow_loudness_per_frame():
    sr, fps = 16000, 25
    wave = torch.zeros(sr * 2)
    wave[sr: sr + sr // 2] = torch.sin(torch.arange(sr // 2) * 0.3) * 0.5   # 1.0-1.5 s loud
    f = audio_features(wave, fps)
    energy = f[:, -1]
    assert energy[26:37].min() > energy[:24].max() + 3
    assert energy[40:].max() < energy[26:37].min() - 3


def test_prepare_audio_comfy_dict_stereo_any_rate():
    w = torch.randn(1, 2, 44100)
    out = prepare_audio({"waveform": w, "sample_rate": 44100})
    assert out.dim() == 1 and abs(out.shape[0] - 16000) <= 1
    with pytest.raises(SpeechError, match="NaN"):
        prepare_audio({"waveform": torch.full((1, 1, 16000), float("nan")), "sample_rate": 16000})
    with pytest.raises(SpeechError, match="0.2 s"):
        audio_features(torch.zeros(1000), 25)


def test_viseme_classes():
    k = {n: i for i, n in enumerate(VISEME_KEYS)}
    assert phoneme_viseme("m")[k["close"]] == 1.0 and phoneme_viseme("b")[k["jaw"]] < 0.1
    assert phoneme_viseme("u:")[k["pucker"]] > 0.5
    assert phoneme_viseme("i:")[k["stretch"]] > 0.4
    assert phoneme_viseme("f")[k["roll_lower"]] > 0.5
    assert phoneme_viseme("aI")[k["jaw"]] > 0.5
    assert phoneme_viseme("_:")[k["jaw"]] == 0


def test_viseme_track_closes_on_bilabials_and_pauses():
    tl = PhonemeTimeline(["_", "a", "m", "a", "_"], np.array([0, 0.2, 0.5, 0.6, 0.9]),
                         np.array([0.2, 0.5, 0.6, 0.9, 1.5]))
    tr = viseme_track(tl, 1.5, 100, 150)
    jaw, close = tr[:, 0], tr[:, 1]
    assert jaw[35] > 0.5 and jaw[75] > 0.5          # open vowels
    assert close[55] > 0.8                           # lips seal on /m/
    assert jaw[55] < jaw[35] - 0.3
    assert jaw[140:].max() < 0.01                    # mouth closed in the pause


def test_heldout_split_is_disjoint():
    rng = np.random.default_rng(0)
    tr = {sc.sentence_for("train", rng) for _ in range(200)}
    ho = {sc.sentence_for("heldout", rng) for _ in range(50)}
    assert not tr & ho and all(sc.is_heldout_sentence(s) for s in ho)
    assert not set(sc.voices_for("train")) & set(sc.HELDOUT_VOICES)


def test_corpus_clip_files_and_motion(tmp_path):
    idx = sc.make_corpus(tmp_path, 2, "train", fps=25.0, seed=3)
    assert len(idx["clips"]) == 2
    folders = sc.clip_folders(tmp_path)
    assert [f.name for f in folders] == ["clip_00000", "clip_00001"]
    wave, motion, tl = sc.load_clip(folders[0])
    assert isinstance(motion, Motion) and motion.fps == 25.0
    assert abs(motion.num_frames - round(len(wave) / 16000 * 25)) <= 1
    jaw = motion.expression[:, ARKIT52.index("jawOpen")].numpy()
    speaking = np.array([not p.startswith("_") for p in tl.at_frames(25, motion.num_frames)])
    assert jaw[speaking].mean() > 3 * jaw[~speaking].mean() + 0.05
    assert json.loads((tmp_path / "corpus.json").read_text())["split"] == "train"
    r = motion.rotation_matrices()
    assert torch.allclose(r.transpose(-1, -2) @ r, torch.eye(3).expand_as(r), atol=1e-4)
