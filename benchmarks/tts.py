"""TTS latency and determinism: every utterance gets a freshly loaded espeak-ng (so what it says
does not depend on what was said before, vlogger_core/audio/tts.py's _Espeak). Figures: the time
of one live-page sentence that way, the time the fresh load adds over reusing one loaded
instance (the old, order-dependent way), memory growth per call, and whether the same sentence
after other voices and variants is sample-identical to the first."""
import resource
import statistics
import time

import numpy as np

from vlogger_core.audio import tts

SENTENCE = "Good evening, and welcome back to the show."   # one sentence, as the live page speaks them
ARGS = ("en-us", 160, 50, 50, 0)
N = 200


def _rss_kb() -> int:
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() // 1024


def _median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def run() -> dict:
    eng = tts._engine()
    first = tts.synthesize(SENTENCE)
    for v in ("en-us+f4", "en-us+whisper", "en-us+klatt2", "de", "en-us"):
        tts.synthesize(SENTENCE, voice=v)
    again = tts.synthesize(SENTENCE)
    same = bool(np.array_equal(first[0], again[0]) and first[2].to_dict() == again[2].to_dict())
    fresh_ms = _median_ms(lambda: eng.synth(SENTENCE, *ARGS), 50)
    with eng.session() as s:   # one instance reused: what the engine did before
        reused_ms = _median_ms(lambda: s.synth(SENTENCE, *ARGS), 50)
    rss0 = _rss_kb()
    for i in range(N):
        eng.synth(SENTENCE, ("en-us", "en-us+f4")[i % 2], *ARGS[1:])
    growth = (_rss_kb() - rss0) / N
    return {"deterministic": same, "ms_per_sentence": round(fresh_ms, 2),
            "ms_added_per_call": round(fresh_ms - reused_ms, 2), "ms_per_sentence_reused": round(reused_ms, 2),
            "growth_kb_per_call": round(growth, 2), "audio_seconds": round(len(first[0]) / first[1], 2),
            "calls_for_growth": N}
