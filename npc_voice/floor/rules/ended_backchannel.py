from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class EndedBackchannel:
    """Speech over the NPC ended without taking the floor: a backchannel, told to the game if it was the
    player's (``gate.not_the_player``)."""

    name: ClassVar[str] = "ended.backchannel"

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        heard = obs.stretch_words if obs.stretch_words is not None else obs.words
        return FloorDecision(Action.BACKCHANNEL, self.name, f"{obs.speech_s:.2f} s: {heard!r}", ends_stretch=True)
