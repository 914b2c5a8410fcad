from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import CascadeConfig
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class CascadeStopSecs:
    """pipecat's ``SmartTurnParams.stop_secs``: a turn the model keeps calling incomplete ends after this much
    silence anyway."""

    name: ClassVar[str] = "cascade.stop_secs"
    config: CascadeConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if obs.silence_s >= self.config.stop_s:
            return FloorDecision(Action.RESPOND, self.name, f"silence {obs.silence_s:.2f} s")
        return None
