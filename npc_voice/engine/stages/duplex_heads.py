from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from npc_voice.audio.echo import EchoStats
from npc_voice.audio.format import CHUNK_SECONDS
from npc_voice.config import HearingConfig
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.resources import EngineResources
from npc_voice.engine.state import HearingState, SpeakingState, StretchState, TurnState
from npc_voice.floor.observation import DuplexOutputs


class HeadsState(Protocol):
    """One session's duplex model state (``model/duplex.py``'s ``DuplexState``; a fake in tests)."""

    last: DuplexOutputs | None
    previous: DuplexOutputs | None

    def step(self, raw: np.ndarray, clean: np.ndarray, played: np.ndarray | None, vad: np.ndarray, echo: EchoStats,
             npc_speaking: bool, line_elapsed_s: float, partial: str) -> DuplexOutputs: ...


class DuplexHeads:
    """The duplex model's heads for this chunk, from both audio streams. Under overload the sidecar turns the
    model off while the NPC listens (the rules decide without it), but never while the NPC speaks: its player
    head is what tells the NPC's own echo from the player there. A strategy set that decides by the heads
    keeps it on always. Back from a pause, the model starts a fresh window rather than join chunks seconds
    apart."""

    def __init__(self, config: HearingConfig, new_state: Callable[[], HeadsState], resources: EngineResources,
                 always: bool, hearing: HearingState, turn: TurnState, stretch: StretchState,
                 speaking: SpeakingState) -> None:
        self.config, self.new_state, self.resources, self.always = config, new_state, resources, always
        self.hearing, self.turn, self.stretch, self.speaking = hearing, turn, stretch, speaking
        self.state = new_state()

    def run(self, frame: StepFrame) -> None:
        line = self.speaking.line
        on = frame.load.learned or line is not None or self.always
        if on and not self.stretch.model_heard and frame.index:
            self.state = self.new_state()  # back from an overload pause: a fresh window
        self.stretch.model_heard = on
        if not on:
            return
        assert frame.clean is not None and frame.raw_probs is not None and frame.echo is not None
        elapsed = (frame.index - self.speaking.line_step) * CHUNK_SECONDS if line is not None else 0.0
        out = self.state.step(frame.mic, frame.clean, frame.played, frame.raw_probs, frame.echo, line is not None,
                              elapsed, self.turn.partial)
        frame.heads, frame.heads_previous = out, self.state.previous
        h = self.hearing
        if frame.started and frame.quiet_before >= self.config.stretch_join_s:
            self.stretch.player_p = out.player
        elif frame.started or frame.was_speaking or h.in_speech:  # "Oh, | I see": one voice, two stretches
            self.stretch.player_p = max(self.stretch.player_p, out.player)
