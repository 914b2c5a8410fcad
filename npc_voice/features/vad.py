"""Streaming voice activity with silero-vad's ONNX model, one shared session, state per NPC session.

The model is stateful: each 512-sample (32 ms) frame is fed with the last 64 samples of the
previous frame as context and the LSTM state from the previous call, exactly as silero's own
``OnnxWrapper`` does, so per-frame probabilities match ``get_speech_timestamps`` on the same audio.
The ``InferenceSession`` is created once per process (many NPC sessions share a sidecar); each
``VoiceActivity`` only holds its recurrent state, context and leftover samples (a few KB).
"""

import threading
from importlib import resources

import numpy as np
import onnxruntime

from npc_voice.audio.format import SAMPLE_RATE

FRAME_SAMPLES = 512  # 32 ms at 16 kHz, the only window the 16 kHz model accepts
CONTEXT_SAMPLES = 64
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE

_session: onnxruntime.InferenceSession | None = None
_session_lock = threading.Lock()


def shared_session() -> onnxruntime.InferenceSession:
    """The process-wide silero ONNX session (CPU, one intra-op thread), loaded on first use."""
    global _session
    with _session_lock:
        if _session is None:
            opts = onnxruntime.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            path = resources.files("silero_vad.data").joinpath("silero_vad.onnx")
            _session = onnxruntime.InferenceSession(
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        return _session


class VoiceActivity:
    """Per-session streaming VAD: feed 16 kHz int16 audio of any length, get a probability per frame."""

    def __init__(self) -> None:
        self._session = shared_session()
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        """Forget the recurrent state, context and leftover samples (e.g. after a long gap)."""
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, np.float32)
        self._pending = np.zeros(0, np.float32)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Speech probability (float32) of each 512-sample frame completed by ``chunk``.

        A 3200-sample chunk completes 6 or 7 frames; leftover samples wait for the next chunk, so
        frame k always covers samples [512 k, 512 (k + 1)) of the session's stream.
        """
        audio = np.concatenate((self._pending, chunk.astype(np.float32) / 32768.0))
        frames = len(audio) // FRAME_SAMPLES
        probs = np.empty(frames, np.float32)
        for i in range(frames):
            frame = audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]
            x = np.concatenate((self._context, frame))[None, :]
            out, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
            probs[i] = out[0, 0]
            self._context = frame[-CONTEXT_SAMPLES:]
        self._pending = audio[frames * FRAME_SAMPLES :]
        return probs
