"""Prosodic end of turn: is the silence that just began the end of the player's turn, or a comma?

Words alone cannot tell "My sword is broken," (more to come) from "My sword is broken." (answer now);
people hear it in the last syllable: a final fall (or a yes/no question's final rise) and a drawn-out,
decaying last syllable end a turn, a level or continuation-rise pitch and a clipped syllable hold it.
``EndOfTurn.p_end`` looks at the last 1.28 s before the voice ended, as 64 frames every 20 ms from
``prosody.frame_descriptors`` (YIN pitch, periodicity, level, spectral flux, two MFCCs), normalised to
the utterance itself (pitch in semitones re its median voiced pitch, level in dB re its loudest 10 ms),
so the speaker's register and the microphone's gain do not matter. A small 1-D CNN turns them into one
logit. Trained on eSpeak NG and festival speech by ``python -m npc_voice.train.endpoint``.

Nothing after ``voice_end`` is read, so the answer cannot depend on how much trailing silence the
caller passes, and it is causal by construction. A 20 ms hop (rather than 10 ms) keeps a call near
2-3 ms on one core: ~90 YIN frames whatever the utterance's length.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch
from scipy.signal import lfilter
from torch import nn

from npc_voice.audio.format import to_float
from npc_voice.data import model_dir
from npc_voice.features.prosody import (
    F_DB,
    F_FLUX,
    F_MFCC,
    F_PER,
    F_ST,
    F_VOICED,
    FRAME,
    OCTAVE_FOLD_ST,
    frame_descriptors,
)

MODEL_DIR = model_dir("endpoint")  # package data: models/endpoint in the repository
WEIGHTS = MODEL_DIR / "endpoint.pt"

HOP = 320  # 20 ms between analysis frames
N_WINDOW = 64  # frames before voice_end the model sees: 1.28 s
N_CONTEXT = 24  # frames spread over the rest of the utterance, only for its median pitch
BLOCK = 160  # 10 ms blocks for the utterance's loudest level
VOICED_RANGE_DB = 30.0  # voiced frames this far below the loudest (breath, echo) do not set the median
LEVEL_FLOOR_DB = -60.0
CHANNELS = ("pitch_st", "voiced", "periodicity", "level_db", "flux", "mfcc1", "mfcc2", "present")
N_CHANNELS = len(CHANNELS)


def endpoint_features(audio: np.ndarray, voice_end: int) -> np.ndarray:
    """The model's input ``(N_CHANNELS, N_WINDOW)`` for ``audio`` (int16 or float) ending its voice at
    sample ``voice_end``: the last frame's window ends exactly there, earlier frames every 20 ms."""
    x = to_float(audio) if audio.dtype == np.int16 else np.asarray(audio, dtype=np.float32)
    end = int(min(max(voice_end, 0), x.size))
    x = x[:end]
    n_blocks = end // BLOCK
    if n_blocks == 0:
        return np.zeros((N_CHANNELS, N_WINDOW), dtype=np.float32)
    blocks = x[end - n_blocks * BLOCK :].reshape(n_blocks, BLOCK)
    peak_db = float(10.0 * np.log10(np.max(np.mean(blocks * blocks, axis=1)) + 1e-10))

    # The window, DC/rumble-blocked the way ProsodyTracker does, framed back from voice_end.
    span = FRAME + HOP * (N_WINDOW - 1)
    seg = np.zeros(span, dtype=np.float32)
    take = min(span, end)
    seg[span - take :] = lfilter([1.0, -1.0], [1.0, -0.995], x[end - take :]).astype(np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(seg, FRAME)[::HOP]
    present = (np.arange(N_WINDOW) * HOP >= span - take).astype(np.float32)
    # Context frames, evenly over the utterance before the window (mean removed in place of the filter).
    before = end - take
    if before >= FRAME:
        starts = np.linspace(0, before - FRAME, N_CONTEXT).astype(int)
        ctx = x[starts[:, None] + np.arange(FRAME)[None, :]]
        frames = np.concatenate([frames, ctx - ctx.mean(axis=1, keepdims=True)])
    desc, _ = frame_descriptors(np.ascontiguousarray(frames, dtype=np.float32), None)
    desc[:N_WINDOW][present == 0] = 0.0

    voiced = (desc[:, F_VOICED] > 0.5) & (desc[:, F_DB] > peak_db - VOICED_RANGE_DB)
    st = np.zeros(N_WINDOW, dtype=np.float32)
    if voiced.any():
        med = float(np.median(desc[voiced, F_ST]))
        off = desc[:N_WINDOW, F_ST] - med
        off = off - 12.0 * (off > OCTAVE_FOLD_ST) + 12.0 * (off < -OCTAVE_FOLD_ST)
        st = np.where(voiced[:N_WINDOW], np.clip(off, -12.0, 12.0), 0.0)
    w = desc[:N_WINDOW]
    level = np.clip(w[:, F_DB] - peak_db, LEVEL_FLOOR_DB, 0.0)
    feats = np.stack([
        st / 6.0, voiced[:N_WINDOW].astype(np.float32), w[:, F_PER], level / 20.0 + 1.5,
        np.minimum(w[:, F_FLUX], 20.0) / 5.0, w[:, F_MFCC] / 3.0, w[:, F_MFCC + 1] / 3.0, present,
    ])
    return (feats * present[None, :]).astype(np.float32)


class EndpointNet(nn.Module):
    """Strided 1-D convolutions over the window, flattened so the last frames' position is kept."""

    def __init__(self, width: int = 32, dropout: float = 0.2) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(N_CHANNELS, width, 5, padding=2), nn.GELU(),
            nn.Conv1d(width, width, 5, stride=2, padding=2), nn.GELU(),  # 32
            nn.Conv1d(width, width, 5, stride=2, padding=2), nn.GELU(),  # 16
            nn.Conv1d(width, width, 3, stride=2, padding=1), nn.GELU(),  # 8
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width * N_WINDOW // 8, 32), nn.GELU(),
                                  nn.Linear(32, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, N_CHANNELS, N_WINDOW)`` features to ``(batch,)`` logits of "turn complete"."""
        return self.head(self.conv(x).flatten(1)).squeeze(1)


class EndOfTurn:
    """The trained model, loaded once per process and shared by every session (read-only after load)."""

    _shared: EndOfTurn | None = None
    _lock = threading.Lock()

    def __init__(self, path: Path = WEIGHTS) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.net = EndpointNet(width=int(state["width"]))
        self.net.load_state_dict(state["model"])
        self.net.eval()
        # The threshold that let through at most 10% of held-out synthetic commas when trained.
        self.threshold = float(state["threshold"])
        # Below this the model is sure the player only paused: at most 1% of held-out true ends score lower.
        self.hold_threshold = float(state["hold_threshold"])

    @classmethod
    def available(cls) -> bool:
        """Whether the trained weights are present."""
        return WEIGHTS.exists()

    @classmethod
    def shared(cls) -> EndOfTurn:
        """The process-wide instance, loaded on first use."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def p_end(self, audio: np.ndarray, voice_end: int) -> float:
        """P(the turn is prosodically complete) for the utterance ``audio`` (16 kHz, from its start)
        whose voice ended at sample ``voice_end``; samples after ``voice_end`` are not read."""
        feats = endpoint_features(np.asarray(audio), voice_end)
        if not feats[-1].any():  # no audio at all before voice_end
            return 0.5
        with torch.inference_mode():
            logit = self.net(torch.from_numpy(feats)[None])
        return float(torch.sigmoid(logit)[0])

