"""The duplex model: every 200 ms, hold or shift, backchannel or interruption, from both audio streams.

``DuplexNet`` (torch, ~60 k parameters) reads one feature vector per chunk (``DuplexFeatures``: the
cleaned mic, the raw mic, the loudspeaker reference, VAD, echo statistics, timing, NPC state, lexical
flags of the fast transcript). Each chunk is encoded to a latent; the context is (a) a sliding
window of the last ``WINDOW`` latents (3.2 s) read by attention with learned relative positions, and
(b) a GRU state that compresses everything older. Both are fixed-size, so a session's memory and
per-step compute are flat however long it runs. Heads, per chunk:

- ``shift``: the player's turn is over and the NPC should speak now (only meaningful while it is silent);
- ``soon``: the player's final words end within the next 0.4 s (predictive; used to get ready);
- ``over``: while the NPC speaks, the player is silent / backchannelling / interrupting (softmax);
- ``player``: the player (not the NPC's echo, not noise) is speaking in this chunk.

The ``duplex`` strategy set (``npc_voice/floor/strategies.py``) turns the heads plus the words into the floor
action; the ``rules`` set uses the player head; see ``docs/duplex.md``.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from npc_voice.audio.echo import EchoStats
from npc_voice.data import model_dir
from npc_voice.features.duplex_features import N_FEATURES, DuplexFeatures
from npc_voice.floor.observation import DuplexOutputs

MODEL_DIR = model_dir("duplex")  # package data: models/duplex in the repository
WINDOW = 16  # chunks of latent kept for attention (3.2 s)
LATENT = 48
N_OUT = 6  # shift, soon, over x3, player


class DuplexNet(nn.Module):
    """Chunk encoder, windowed causal attention plus a GRU summary, and the heads."""

    def __init__(self, n_in: int = N_FEATURES, d: int = LATENT, window: int = WINDOW) -> None:
        super().__init__()
        self.window = window
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("std", torch.ones(n_in))
        self.enc = nn.Sequential(nn.Linear(n_in, 96), nn.GELU(), nn.Linear(96, d), nn.GELU())
        self.gru = nn.GRU(d, d, batch_first=True)
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.pos = nn.Parameter(torch.zeros(window, d))  # index 0 = the current chunk, 1 = one back...
        self.head = nn.Sequential(nn.Linear(3 * d, 64), nn.GELU(), nn.Linear(64, N_OUT))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc((x - self.mean) / self.std)

    def _attend(self, z: torch.Tensor, ctx: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """z (..., d) attends over ctx (..., W, d), newest first; ``valid`` (..., W) masks empty slots."""
        keys = self.k(ctx) + self.pos
        scores = (self.q(z).unsqueeze(-2) * keys).sum(-1) / math.sqrt(z.shape[-1])
        scores = scores.masked_fill(~valid, -1e9)
        return (torch.softmax(scores, -1).unsqueeze(-1) * self.v(ctx)).sum(-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training/analysis over whole sequences ``(B, T, F)`` -> logits ``(B, T, N_OUT)``; causal."""
        z = self.encode(x)
        h, _ = self.gru(z)
        b, t, d = z.shape
        padded = torch.cat([z.new_zeros(b, self.window - 1, d), z], 1)
        ctx = padded.unfold(1, self.window, 1).permute(0, 1, 3, 2).flip(2)  # (B, T, W, d), newest first
        idx = torch.arange(t).unsqueeze(1) - torch.arange(self.window).unsqueeze(0)
        valid = (idx >= 0).unsqueeze(0).expand(b, t, self.window)
        att = self._attend(z, ctx, valid)
        return self.head(torch.cat([z, h, att], -1))

    def step(self, x: torch.Tensor, ctx: torch.Tensor, n_ctx: int, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One chunk: x (F,), ctx (W, d) newest first (rolled in place by the caller), h (d,)."""
        z = self.encode(x)
        h = self.gru(z.view(1, 1, -1), h.view(1, 1, -1))[1].view(-1)
        ctx = torch.cat([z.unsqueeze(0), ctx[:-1]], 0)
        valid = torch.arange(self.window) < min(n_ctx + 1, self.window)
        att = self._attend(z, ctx, valid)
        return self.head(torch.cat([z, h, att], -1)), ctx, h


def outputs_from_logits(logits: torch.Tensor) -> DuplexOutputs:
    p = torch.sigmoid(logits)
    over = torch.softmax(logits[2:5], -1)
    return DuplexOutputs(float(p[0]), float(p[1]), float(over[0]), float(over[1]), float(over[2]), float(p[5]))


class DuplexModel:
    """The trained weights, loaded once per process and shared by every session (read-only)."""

    _shared: ClassVar[DuplexModel | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, folder: Path = MODEL_DIR) -> None:
        torch.set_num_threads(1)
        self.net = DuplexNet()
        self.net.load_state_dict(torch.load(folder / "duplex.pt", map_location="cpu", weights_only=True))
        self.net.eval()
        self.config = json.loads((folder / "duplex.json").read_text())

    @staticmethod
    def available(folder: Path = MODEL_DIR) -> bool:
        return (folder / "duplex.pt").exists()

    @classmethod
    def shared(cls) -> DuplexModel:
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def session(self) -> DuplexState:
        return DuplexState(self)


class DuplexState:
    """One session's model state: feature extractor, the latent window and the GRU summary (fixed size)."""

    def __init__(self, model: DuplexModel) -> None:
        self.model = model
        self.features = DuplexFeatures()
        self.ctx = torch.zeros(WINDOW, LATENT)
        self.h = torch.zeros(LATENT)
        self.steps = 0
        self.last: DuplexOutputs | None = None
        self.previous: DuplexOutputs | None = None  # the chunk before: an interruption must hold two chunks

    def step(
        self,
        raw: np.ndarray,
        clean: np.ndarray,
        played: np.ndarray | None,
        vad: np.ndarray,
        echo: EchoStats,
        npc_speaking: bool,
        line_elapsed_s: float,
        partial: str,
    ) -> DuplexOutputs:
        """Advance by one chunk and return the heads."""
        x = self.features.step(raw, clean, played, vad, echo, npc_speaking, line_elapsed_s, partial)
        with torch.inference_mode():
            logits, self.ctx, self.h = self.model.net.step(torch.from_numpy(x), self.ctx, self.steps, self.h)
        self.steps += 1
        self.previous, self.last = self.last, outputs_from_logits(logits)
        return self.last

    def nbytes(self) -> int:
        """Bytes held by the recurrent state (the part that could grow if it were built wrong)."""
        return self.ctx.numel() * 4 + self.h.numel() * 4
