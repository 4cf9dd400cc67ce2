"""The lip-closure head (vlogger_core/motion/closure.py): the shipped weights, its causality,
how it closes a motion, and its trainer (scripts/train_lip_closure.py)."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vlogger_core.audio.tts import synthesize
from vlogger_core.errors import VloggerError
from vlogger_core.media import resample
from vlogger_core.motion.closure import (
    DEFAULT_PATH,
    close_lips,
    load_closure,
    shipped_closure,
    shut_track,
)
from vlogger_core.motion.params import (
    ARKIT52,
    Motion,
    matrix_to_axis_angle,
    rot6d_to_matrix,
)
from vlogger_core.motion.sampling import SampleSettings
from vlogger_core.motion.synthetic.corpus import HELDOUT_VOICES, is_heldout_sentence
from vlogger_core.motion.synthetic.visemes import lips_shut

ROOT = Path(__file__).resolve().parent.parent
TEXT = "My mom bought a big lamp."
OPEN = {"a", "A", "A:", "aI", "aa", "a#", "0", "V", "aU", "O", "O:"}


def speech(text=TEXT, voice=HELDOUT_VOICES[0]):
    assert is_heldout_sentence(text)
    wave, sr, tl = synthesize(text, voice=voice, rate=150)
    return resample(torch.from_numpy(wave / max(1e-6, float(np.abs(wave).max()))), sr, 16000), tl


def test_shipped_head_loads_from_safetensors_and_reads_a_heldout_voice():
    assert DEFAULT_PATH.suffix == ".safetensors" and DEFAULT_PATH.is_file()
    head = shipped_closure("cpu")
    wave, tl = speech()
    n = int(round(len(wave) / 16000 * 25))
    p = shut_track(head, wave, 25.0, n).numpy()
    ph = tl.at_frames(25.0, n)
    shut = np.array([lips_shut(q) for q in ph])
    vowels = np.array([q in OPEN for q in ph])
    assert shut.sum() >= 8 and vowels.sum() >= 5
    assert p[shut].mean() > 0.6, p[shut]
    assert p[vowels].mean() < 0.15, p[vowels]


def test_head_sees_no_further_than_its_lookahead():
    head = shipped_closure("cpu")
    wave, _ = speech()
    from vlogger_core.audio.features import audio_features
    n = int(round(len(wave) / 16000 * 25))
    feats = audio_features(wave, 25.0, n)
    cut = n // 2
    changed = feats.clone()
    changed[cut:] = changed[cut:].flip(0)
    a, b = head.shut(feats), head.shut(changed)
    keep = cut - head.config.lookahead
    assert torch.allclose(a[:keep], b[:keep], atol=1e-6)
    assert not torch.allclose(a[keep:], b[keep:], atol=1e-3)


def _open_motion(n=10):
    expr = torch.zeros(n, len(ARKIT52))
    expr[:, ARKIT52.index("jawOpen")] = 0.6
    expr[:, ARKIT52.index("mouthSmileLeft")] = 0.3
    expr[:, ARKIT52.index("mouthLowerDownLeft")] = 0.4
    joints = ["jaw", "head"]
    aa = torch.zeros(n, 2, 3)
    aa[:, 0, 0] = 0.2
    from vlogger_core.motion.params import axis_angle_to_matrix, matrix_to_rot6d
    return Motion(25.0, "arkit52", expr, matrix_to_rot6d(axis_angle_to_matrix(aa)), joints)


def test_close_lips_seals_only_the_shut_frames():
    m = _open_motion()
    shut = torch.tensor([0, 0, 1, 1, 1, 0.4, 0, 0, 0, 0], dtype=torch.float32)
    out = close_lips(m, shut)
    jaw = matrix_to_axis_angle(rot6d_to_matrix(out.rot6d[:, 0])).norm(dim=-1)
    jo = out.expression[:, ARKIT52.index("jawOpen")]
    # a seal keeps the jaw a little open (SEAL_OPEN), the lips sealed by the renderer's soft lips
    from vlogger_core.motion.closure import SEAL_OPEN
    from vlogger_core.motion.synthetic.priors import JAW_MAX_RAD
    assert torch.allclose(jo[2:5], torch.tensor(SEAL_OPEN)) and torch.allclose(jaw[2:5], torch.tensor(SEAL_OPEN * JAW_MAX_RAD))
    assert torch.allclose(jo[[0, 1, 6, 7]], torch.tensor(0.6)) and torch.allclose(jaw[[0, 1, 6]], torch.tensor(0.2))
    assert 0.1 < float(jo[5]) < 0.6                                   # doubtful: partly
    assert torch.all(out.expression[2:5, ARKIT52.index("mouthLowerDownLeft")] == 0)
    assert torch.equal(out.expression[:, ARKIT52.index("mouthSmileLeft")], m.expression[:, ARKIT52.index("mouthSmileLeft")])
    assert torch.equal(close_lips(m, shut, 0.0).expression, m.expression)


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, math.inf])
def test_lip_closure_setting_is_checked(bad):
    with pytest.raises(VloggerError) as e:
        SampleSettings(lip_closure=bad).check()
    assert e.value.arg == "lip_closure"


def test_trainer_writes_a_head_that_loads(tmp_path):
    from vlogger_core.motion.synthetic.corpus import make_corpus
    make_corpus(tmp_path / "corpus", 3, "train", 25.0, seed=5)
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_lip_closure.py"), "--data",
                        str(tmp_path / "corpus"), "--out", str(out), "--steps", "6", "--batch-size", "4",
                        "--log-every", "2", "--crop", "40", "--heldout", str(tmp_path / "corpus")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    head = load_closure(out / "closure.safetensors")
    assert head.config.lookahead == 2
    assert '"bilabial_recall"' in r.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_lip_closure.py"), "--data",
                          str(tmp_path / "nothing"), "--out", str(tmp_path / "run2"), "--steps", "2"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--data" in bad.stderr and "make_motion_corpus" in bad.stderr


def test_words_vocabulary_leaves_out_the_evaluation_texts():
    """The "words" corpus the head learnt on has none of the content words the quality benchmark
    and the lip-closure server test speak (their figures are on words it never heard)."""
    import ast

    from vlogger_core.motion.synthetic.words import (
        EVALUATION_WORDS,
        WORDS,
        content_words,
    )

    texts = [text for _, text in ast.literal_eval(
        (ROOT / "benchmarks" / "quality.py").read_text().split("CLIPS = ", 1)[1].split("\n]", 1)[0] + "\n]")]
    texts.append((ROOT / "tests" / "test_lip_closure.py").read_text().split('TEXT = "', 1)[1].split('"', 1)[0])
    spoken = set().union(*(content_words(t) for t in texts))
    assert len(spoken) > 15, spoken
    assert spoken <= EVALUATION_WORDS, spoken - EVALUATION_WORDS
    assert not spoken & set(WORDS)
    assert len(WORDS) > 400
