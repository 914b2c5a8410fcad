from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import SpeakingConfig
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.evidence import goes_on, hears_player
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class GoesOn:
    """Speech that began as the NPC's answer began and says more than a backchannel is the player going on
    with a turn the NPC took to be over ("I'm looking for the castle gate. | Where is it?"): yield to it."""

    name: ClassVar[str] = "speaking.goes_on"
    config: SpeakingConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if hears_player(obs.stretch_player_p, self.config.player_p) and goes_on(obs):
            return FloorDecision(Action.INTERRUPTED, self.name, f"the turn goes on: {obs.stretch_words!r}")
        return None
