"""Speech in: offline text-to-speech (espeak-ng) and loading/cleaning speech files."""
from __future__ import annotations

import hashlib
import os

import folder_paths
import torch
from comfy_api.latest import io

from vlogger_core import media
from vlogger_core.audio import speech_io, tts
from vlogger_core.audio.comfy_audio import to_audio
from vlogger_core.errors import VloggerError

from .common import VloggerNode, check_downstream_batches, input_error, node_error
from .types import Phonemes


def _voices() -> list[str]:
    try:
        voices = tts.list_voices()
    except Exception:  # espeak missing: the node still registers and explains at run time
        return ["en-us"]
    first = [v for v in ("en-us", "en-gb", "en-us+f3", "en-us+m3") if v in voices]
    return first + [v for v in voices if v not in first]


class TextToSpeech(VloggerNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VLOGGER_TextToSpeech",
            display_name="VLOGGER Text to Speech (offline)",
            category="VLOGGER/audio",
            description=(
                "Speaks the text offline with espeak-ng (no download) and returns the AUDIO plus "
                "the phoneme timeline it spoke (each phoneme's exact start and end), which the "
                "lip-sync preview and the training-data tools use. Voices: ~130 languages; "
                "'en-us+f3' style names pick a variant (female/male/whisper...). Any other TTS "
                "node's AUDIO works downstream too."),
            inputs=[
                io.String.Input("text", multiline=True,
                                default="Hello! I'm a talking photo, made from a single picture and this sentence.",
                                tooltip="What to say. Punctuation shapes the pauses."),
                io.Combo.Input("voice", options=_voices(), default="en-us",
                               tooltip="espeak-ng voice: language, optionally '+variant' (e.g. en-us+f3)."),
                io.Int.Input("rate", default=160, min=80, max=450,
                             tooltip="Speaking rate in words per minute (150-180 sounds natural)."),
                io.Int.Input("pitch", default=50, min=0, max=99, tooltip="Base pitch, 0-99."),
                io.Int.Input("pitch_range", default=50, min=0, max=99,
                             tooltip="Intonation range, 0 (monotone) to 99 (very lively)."),
            ],
            outputs=[io.Audio.Output("audio", tooltip="The speech at 22,050 Hz, mono."),
                     Phonemes.Output("phonemes", tooltip="The phoneme timeline of the speech.")],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, text, voice, rate, pitch, pitch_range) -> io.NodeOutput:
        node = "VLOGGER_TextToSpeech"
        if not text or not text.strip():
            raise input_error(node, "text", "is empty", "type the sentence to speak")
        try:
            wave, sr, timeline = tts.synthesize(text, voice, rate, pitch, pitch_range)
        except tts.TTSError as e:
            raise node_error(node, e, default="text") from None
        if len(wave) < speech_io.MIN_SECONDS * sr:
            raise input_error(node, "text", "produced under 0.2 s of speech", "say at least a word")
        check_downstream_batches(node, "text", cls.hidden.prompt, cls.hidden.unique_id, len(wave) / sr)
        return io.NodeOutput(to_audio(torch.from_numpy(wave), sr), timeline)


class LoadSpeech(VloggerNode):
    @classmethod
    def define_schema(cls):
        input_dir = folder_paths.get_input_directory()
        files = folder_paths.filter_files_content_types(os.listdir(input_dir), ["audio", "video"])
        return io.Schema(
            node_id="VLOGGER_LoadSpeech",
            display_name="VLOGGER Load Speech",
            category="VLOGGER/audio",
            description=(
                "Loads a speech file from ComfyUI's input folder (wav, mp3, flac, ogg, m4a, or a "
                "video's soundtrack; use the upload button), trims leading and trailing silence, "
                "normalises loudness and resamples (16 kHz is what the motion model uses). "
                "ComfyUI's own LoadAudio works as well; the motion sampler resamples any AUDIO."),
            inputs=[
                io.Combo.Input("audio", options=sorted(files), upload=io.UploadType.audio,
                               tooltip="A speech file in ComfyUI's input folder."),
                io.Boolean.Input("trim_silence", default=True,
                                 tooltip="Cut leading/trailing silence (keeps 80 ms of margin)."),
                io.Float.Input("silence_db", default=-40.0, min=-80.0, max=-10.0, step=1.0,
                               tooltip="What counts as silence: dB below the loudest 20 ms."),
                io.Boolean.Input("normalize", default=True,
                                 tooltip="Bring the voice to -20 dBFS RMS (peaks kept under -0.2 dBFS)."),
                io.Int.Input("sample_rate", default=16000, min=min(speech_io.SAMPLE_RATES),
                             max=max(speech_io.SAMPLE_RATES), step=1000,
                             tooltip="Output sample rate: " + ", ".join(map(str, speech_io.SAMPLE_RATES))
                                     + " Hz (16000 = the motion model's rate). Any file rate is read."),
            ],
            outputs=[io.Audio.Output("speech", tooltip="The cleaned speech.")],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, **kwargs):
        super().validate_inputs(**kwargs)      # the shared checks (the file, the ranges)
        if kwargs.get("sample_rate") is not None:
            try:
                speech_io.check_output_rate(kwargs["sample_rate"])
            except speech_io.SpeechError as e:
                raise node_error("VLOGGER_LoadSpeech", e, {"target_rate": "sample_rate"}) from None
        return True

    @classmethod
    def fingerprint_inputs(cls, audio, **kwargs):
        m = hashlib.sha256()
        with open(folder_paths.get_annotated_filepath(audio), "rb") as f:
            m.update(f.read())
        return m.hexdigest()

    @classmethod
    def execute(cls, audio, trim_silence, silence_db, normalize, sample_rate) -> io.NodeOutput:
        node = "VLOGGER_LoadSpeech"
        path = folder_paths.get_annotated_filepath(audio)
        seconds = media.audio_seconds(path)      # from the header: long speech is refused at once
        if seconds:
            check_downstream_batches(node, "audio", cls.hidden.prompt, cls.hidden.unique_id, seconds)
        try:
            wave, sr = media.read_audio(path)
            wave = speech_io.prepare_speech(wave, sr, sample_rate, trim_silence, silence_db, normalize)
        except VloggerError as e:   # media.MediaError (the file) or speech_io.SpeechError (its samples)
            raise node_error(node, e, {"path": "audio", "wave": "audio", "target_rate": "sample_rate"}) from None
        return io.NodeOutput(to_audio(wave, sample_rate))


NODES = [TextToSpeech, LoadSpeech]
