from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import DuplexConfig
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class DuplexShiftHead:
    """The model's shift head says the player's turn is over, or the pause has lasted ``max_wait_s``."""

    name: ClassVar[str] = "duplex.shift_head"
    config: DuplexConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        shift = obs.model.shift if obs.model is not None else 0.0
        if shift >= self.config.shift_on or obs.silence_s >= self.config.max_wait_s:
            return FloorDecision(Action.RESPOND, self.name, f"P(shift) {shift:.2f}, silence {obs.silence_s:.2f} s")
        return None
