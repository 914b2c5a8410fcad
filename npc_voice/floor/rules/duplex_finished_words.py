from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import DuplexConfig
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class DuplexFinishedWords:
    """A finished sentence, a quiet player and a model that does not object (weak shift), or a pause longer
    than a within-turn pause usually is even if it does."""

    name: ClassVar[str] = "duplex.finished_words"
    config: DuplexConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        c = self.config
        if not obs.words_accurate:
            return None
        shift = obs.model.shift if obs.model is not None else 0.0
        if (obs.silence_s >= c.complete_silence_s and shift >= c.shift_weak) or obs.silence_s >= c.hold_silence_s:
            return FloorDecision(Action.RESPOND, self.name, f"P(shift) {shift:.2f}, silence {obs.silence_s:.2f} s")
        return None
