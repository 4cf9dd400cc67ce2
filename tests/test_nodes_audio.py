"""The audio nodes through the real server: outputs and artist-facing errors."""
import io as _io
import json

import pytest
import soundfile as sf

from vlogger_core.media import read_audio


def _audio_out(comfy, result):
    files = result.files()
    assert files, result.outputs
    data = comfy.fetch(files[0])
    wave, sr = sf.read(_io.BytesIO(data))
    return wave, sr


def test_tts_workflow_outputs_speech(comfy):
    prompt = comfy.workflow("text_to_speech")
    prompt["1"]["inputs"]["text"] = "Testing one two three."
    r = comfy.run(prompt)
    assert r.error is None, r.error
    wave, sr = _audio_out(comfy, r)
    assert 0.8 < len(wave) / sr < 4.0 and abs(wave).max() > 0.1


def test_load_speech_trims_and_resamples(comfy):
    r = comfy.run(comfy.workflow("load_speech"))
    assert r.error is None, r.error
    wave, sr = _audio_out(comfy, r)
    original, osr = read_audio(comfy.input_dir / "speech.wav")
    assert sr == 16000
    assert len(wave) / sr <= original.shape[-1] / osr + 0.01


def _error_text(result) -> str:
    assert result.error is not None, "expected an execution error"
    return result.error.get("exception_message", "")


def _refusal(comfy, prompt) -> str:
    """The artist's message for a prompt that must not run: refused at /prompt (HTTP 400, the
    node's validate_inputs) or failing when it runs."""
    from comfyui_server import PromptRejected
    try:
        return _error_text(comfy.run(prompt))
    except PromptRejected as e:
        return json.dumps(e.body)


def test_tts_bad_inputs_are_named(comfy):
    prompt = comfy.workflow("text_to_speech")
    prompt["1"]["inputs"]["text"] = "   "
    msg = _refusal(comfy, prompt)
    assert "[VLOGGER_TextToSpeech] input 'text'" in msg and "Fix:" in msg


def test_load_speech_rejects_too_short_and_nan(comfy):
    import numpy as np
    sf.write(comfy.input_dir / "tiny.wav", np.full(800, 0.3, np.float32), 16000)
    prompt = comfy.workflow("load_speech")
    prompt["1"]["inputs"]["audio"] = "tiny.wav"
    prompt["1"]["inputs"]["trim_silence"] = False
    msg = _error_text(comfy.run(prompt))
    assert "[VLOGGER_LoadSpeech] input 'audio'" in msg and "0.2 s" in msg
    bad = np.full(16000, 0.1, np.float32)
    bad[100] = np.nan
    sf.write(comfy.input_dir / "nan.wav", bad, 16000, subtype="FLOAT")
    prompt["1"]["inputs"]["audio"] = "nan.wav"
    msg = _error_text(comfy.run(prompt))
    assert "NaN" in msg
    # the server is still serving after the failures
    assert comfy.run(comfy.workflow("load_speech")).error is None


def test_load_speech_names_an_undecodable_or_silent_file(comfy):
    """A file PyAV cannot decode, and a video without a soundtrack: the core's MediaError
    reaches the artist as input 'audio' with its fix (no message matching in the node)."""
    import numpy as np
    from footage import write_mp4
    (comfy.input_dir / "junk.wav").write_bytes(b"RIFF but not really a wave file" * 50)
    prompt = comfy.workflow("load_speech")
    prompt["1"]["inputs"]["audio"] = "junk.wav"
    msg = _error_text(comfy.run(prompt))
    assert "[VLOGGER_LoadSpeech] input 'audio': cannot decode junk.wav" in msg and "Fix: use a file that plays" in msg, msg
    write_mp4(comfy.input_dir / "mute.mp4", np.zeros((12, 32, 32, 3), np.uint8))
    prompt["1"]["inputs"]["audio"] = "mute.mp4"
    msg = _error_text(comfy.run(prompt))
    assert "[VLOGGER_LoadSpeech] input 'audio': mute.mp4 has no audio stream" in msg and "Fix: use a file with sound" in msg, msg


def test_odd_sample_rates_load_in_bounded_time(comfy):
    """Files recorded at rates coprime with 16 kHz (44,101 Hz once took 54 s and 12 GB for 2 s
    through torchaudio; the server was OOM-killed) load through libswresample: the right
    length at 16 kHz, the tone kept."""
    import numpy as np
    for rate in (44101, 7993, 192000):
        t = np.arange(int(2.0 * rate)) / rate
        sf.write(comfy.input_dir / f"odd_{rate}.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
                 rate, subtype="FLOAT")
        prompt = comfy.workflow("load_speech")
        prompt["1"]["inputs"].update(audio=f"odd_{rate}.wav", trim_silence=False)
        res = comfy.run(prompt, timeout=120)
        assert res.error is None, (rate, res.error)
        wave, sr = _audio_out(comfy, res)
        assert sr == 16000 and abs(len(wave) / sr - 2.0) < 0.01, (rate, len(wave), sr)
        spectrum = np.abs(np.fft.rfft(wave[1000:-1000]))
        peak_hz = np.argmax(spectrum) * sr / (len(wave) - 2000)
        assert abs(peak_hz - 440) < 5, (rate, peak_hz)


def _motion_of(comfy, name: str, wave=None):
    """A wave (or the shipped speech) through the default loader and the motion sampler."""
    from vlogger_core.motion.params import Motion
    prompt = comfy.workflow("motion_from_speech")
    if wave is not None:
        sf.write(comfy.input_dir / f"{name}_4s.wav", wave, 16000, subtype="FLOAT")
        prompt["1"]["inputs"]["audio"] = f"{name}_4s.wav"
    prompt["3"]["inputs"]["steps"] = 8
    prompt["5"]["inputs"]["filename_prefix"] = f"audiotest/{name}"
    del prompt["4"]                                       # no plot needed
    res = comfy.run(prompt)
    assert res.error is None, (name, res.error)
    return Motion.load_npz(str(sorted((comfy.output_dir / "audiotest").glob(f"{name}_*.npz"))[-1]))


@pytest.mark.parametrize("case", ["silence", "white_noise"])
def test_silence_and_white_noise_keep_the_mouth_closed(comfy, case):
    """Silence and white noise through the default loader and the motion sampler: a still face
    with the mouth closed, whereas speech opens it (the speech check shows the measure can fail)."""
    import numpy as np

    from vlogger_core.motion.sampling import mouth_opening

    rng = np.random.default_rng(7)
    wave = (np.zeros(4 * 16000, np.float32) if case == "silence"
            else (0.3 * rng.standard_normal(4 * 16000)).astype(np.float32))
    motion = _motion_of(comfy, case, wave)
    assert motion.num_frames == 100, motion.num_frames
    # the lip-closure head seals noise (it learnt noise as not-speech: training/closure.py); a seal
    # keeps at most SEAL_OPEN of jaw, under the renderer's LIP_SEAL: the lips stay together
    from vlogger_core.body.reference import LIP_SEAL
    from vlogger_core.motion.closure import SEAL_OPEN
    opening = float(mouth_opening(motion).max())
    assert opening <= SEAL_OPEN + 1e-4 < LIP_SEAL, (case, opening)
    if case == "silence":
        assert float(mouth_opening(_motion_of(comfy, "speech")).max()) > 0.2   # speech opens it
