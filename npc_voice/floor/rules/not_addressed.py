from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import AddresseeConfig
from npc_voice.floor.decision import FloorDecision
from npc_voice.floor.evidence import not_addressed, unanswered_decision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class NotAddressed:
    """Speech that is not the player talking to the NPC (``not_addressed``: the game says they are away, another
    voice, a voice blurred by the room) is never answered: the NPC keeps listening, and once it has gone quiet
    ``drop_after_s`` the turn is forgotten, so the player's own next words start afresh."""

    name: ClassVar[str] = "listening.not_addressed"
    config: AddresseeConfig
    drop_after_s: float

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        why = not_addressed(obs.addressee, self.config)
        if why is None:
            return None
        return unanswered_decision(self.name, obs, self.drop_after_s, why)
