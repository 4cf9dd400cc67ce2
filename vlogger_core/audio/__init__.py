"""Speech in: offline TTS with phoneme timings, speech file I/O and cleaning, the motion model's audio features."""
