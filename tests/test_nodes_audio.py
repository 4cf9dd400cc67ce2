"""The audio nodes through the real server: outputs and artist-facing errors."""
import io as _io

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


def test_tts_bad_inputs_are_named(comfy):
    prompt = comfy.workflow("text_to_speech")
    prompt["1"]["inputs"]["text"] = "   "
    msg = _error_text(comfy.run(prompt))
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
