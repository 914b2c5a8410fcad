"""The one audio format on the wire and inside the engine: 16 kHz mono int16, 200 ms chunks."""

import numpy as np

SAMPLE_RATE = 16000
CHUNK_SECONDS = 0.2
CHUNK_SAMPLES = 3200
CHUNK_BYTES = CHUNK_SAMPLES * 2
SAMPLE_FORMAT = "s16le"


def silence() -> np.ndarray:
    """One chunk of silence (the NPC's reply when it has nothing to say)."""
    return np.zeros(CHUNK_SAMPLES, dtype=np.int16)


def to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM to float32 in [-1, 1)."""
    return pcm.astype(np.float32) / 32768.0


def to_int16(audio: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1] to int16 PCM, clipped rather than wrapped."""
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
