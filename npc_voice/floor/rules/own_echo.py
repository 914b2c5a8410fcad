from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class OwnEcho:
    """Long speech over the NPC whose words are mostly its own words of the last seconds: the canceller let
    its voice through. Talk on."""

    name: ClassVar[str] = "speaking.own_echo"

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if not obs.stretch_is_echo:
            return None
        return FloorDecision(Action.CONTINUE, self.name, f"its own words: {obs.stretch_words or obs.words!r}")
