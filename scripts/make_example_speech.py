"""Regenerate examples/speech.wav: espeak-ng output (synthetic speech, no recording), 16 kHz mono.

    .venv/bin/python scripts/make_example_speech.py
"""
import sys
from pathlib import Path

import soundfile as sf
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from vlogger_core.audio import (
    speech_io,  # noqa: E402
    tts,  # noqa: E402
)

TEXT = ("Hi everyone, welcome back to the channel! Today I want to show you something new. "
        "All of this came from one photo, and a few seconds of speech.")

if __name__ == "__main__":
    wave, sr, _ = tts.synthesize(TEXT, voice="en-us+f3", rate=165, pitch=55, pitch_range=60)
    wave16 = speech_io.prepare_speech(torch.from_numpy(wave)[None], sr, 16000)
    out = REPO / "examples" / "speech.wav"
    sf.write(out, wave16[0].numpy(), 16000, subtype="PCM_16")
    print(out, f"{wave16.shape[-1] / 16000:.2f} s")
