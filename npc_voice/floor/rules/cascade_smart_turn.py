from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import CascadeConfig
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class CascadeSmartTurn:
    """pipecat's turn stop: once the VAD has heard ``vad_stop_s`` of silence, the smart-turn v3 model reads the
    turn's audio; P(complete) above its cut ends the turn."""

    name: ClassVar[str] = "cascade.smart_turn"
    config: CascadeConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if obs.silence_s < self.config.vad_stop_s or obs.p_complete is None:
            return None
        if obs.p_complete >= self.config.complete_p:
            return FloorDecision(Action.RESPOND, self.name, f"P(complete) {obs.p_complete:.2f}")
        return FloorDecision(Action.LISTEN, self.name, f"P(complete) {obs.p_complete:.2f}: the player may go on")
