from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class DuplexNoModel:
    """The learned strategy without its model's heads for this chunk (no weights): change nothing."""

    name: ClassVar[str] = "duplex.no_model"

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if obs.model is not None:
            return None
        return FloorDecision(Action.CONTINUE if obs.npc_speaking else Action.LISTEN, self.name, "no duplex heads")
