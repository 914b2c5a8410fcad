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

``DuplexPolicy`` turns the heads plus the words into the floor action; see ``docs/duplex.md``.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from npc_voice.audio.echo import EchoStats
from npc_voice.data import model_dir
from npc_voice.features.duplex_features import N_FEATURES, DuplexFeatures
from npc_voice.model.turntaking import Action, FloorObservation, has_interrupt_cue, looks_incomplete, words_of

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


@dataclass(frozen=True)
class DuplexOutputs:
    """The heads for one chunk, as probabilities."""

    shift: float
    soon: float
    silent: float  # while the NPC speaks: the player is not talking to it
    backchannel: float
    interrupt: float
    player: float


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


@dataclass(kw_only=True)
class DuplexPolicy:
    """Floor decisions from the model's heads and the words heard.

    Listening: respond when P(shift) says the turn is over, unless the accurate words end where a
    sentence seldom ends (then wait for more silence). Speaking: stop when P(interrupt) is high, or
    when a cue word ("wait", "stop", "hold on", "sorry") arrives while the model hears the player
    (acoustic evidence that the word is the player's and not echo); a stretch that ends without
    either was a backchannel.
    """

    shift_on: float = 0.5
    shift_weak: float = 0.25  # with finished accurate words, the model need only not object
    complete_silence_s: float = 0.35  # accurate words that end a sentence, and this much silence: answer
    hold_silence_s: float = 1.0  # finished words but the model expects more: wait a within-turn pause out
    interrupt_on: float = 0.6
    cue_player_on: float = 0.5
    incomplete_silence_s: float = 1.2
    long_stretch_s: float = 1.0  # speech the player head is sure of, this long over the NPC, is no backchannel
    max_wait_s: float = 1.5  # a pause this long after words is answered even if the model hesitates
    min_turn_speech_s: float = 0.25

    def decide(self, out: DuplexOutputs | None, obs: FloorObservation, accurate: bool = False,
               previous: DuplexOutputs | None = None) -> Action:
        """``accurate``: ``obs.words`` is the accurate transcript; only then can its ending veto the model
        (the fast partial's last word is usually misheard; the model already weighs its flags).
        ``previous``: the heads one chunk earlier; the interruption head must agree on two chunks in a
        row (an "mm-hm" onset can look like the start of a sentence for one chunk)."""
        if out is None:
            return Action.CONTINUE if obs.npc_speaking else Action.LISTEN
        if obs.npc_speaking:
            return self._while_speaking(out, obs, previous)
        if obs.in_speech or obs.turn_speech_s < self.min_turn_speech_s or not words_of(obs.words):
            # Never answer while the player is still voicing: the accurate pass would lose the last
            # word ("Do you sell swor-") and a pause between sentences is not the end of a turn.
            return Action.LISTEN
        if accurate and looks_incomplete(obs.words) and obs.silence_s < self.incomplete_silence_s:
            return Action.LISTEN
        if out.shift >= self.shift_on or obs.silence_s >= self.max_wait_s:
            return Action.RESPOND
        if accurate and obs.silence_s >= self.complete_silence_s and out.shift >= self.shift_weak:
            return Action.RESPOND  # a finished sentence, a quiet player, and the model does not object
        if accurate and obs.silence_s >= self.hold_silence_s:
            return Action.RESPOND  # the model expects more, but a within-turn pause is rarely this long
        return Action.LISTEN

    def _while_speaking(self, out: DuplexOutputs, obs: FloorObservation, previous: DuplexOutputs | None) -> Action:
        sustained = previous is not None and min(out.interrupt, previous.interrupt) >= self.interrupt_on
        if sustained and (obs.in_speech or out.player >= self.cue_player_on):
            return Action.INTERRUPTED
        player = max(out.player, previous.player if previous is not None else 0.0)
        if player >= self.cue_player_on and has_interrupt_cue(obs.words):
            return Action.INTERRUPTED  # the cue word often arrives as the stretch ends: not only in speech
        if obs.in_speech and obs.speech_s >= self.long_stretch_s and out.player >= self.cue_player_on:
            return Action.INTERRUPTED
        if obs.speech_s > 0 and obs.silence_s > 0 and not obs.in_speech:
            return Action.BACKCHANNEL
        return Action.CONTINUE
