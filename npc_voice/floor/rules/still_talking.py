from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.features.words import words_of
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class StillTalking:
    """Never answer while the player is voicing (the read would lose the last word, "Do you sell swor-"),
    nor a cough or click too short to be a turn, nor a turn with no words heard yet."""

    name: ClassVar[str] = "listening.still_talking"
    min_turn_speech_s: float

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if obs.in_speech:
            return FloorDecision(Action.LISTEN, self.name, "the player is speaking")
        if obs.turn_speech_s < self.min_turn_speech_s:
            return FloorDecision(Action.LISTEN, self.name, f"only {obs.turn_speech_s:.2f} s of voice")
        if not words_of(obs.words):
            return FloorDecision(Action.LISTEN, self.name, "no words heard")
        return None
