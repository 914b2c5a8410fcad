from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import AddresseeConfig
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.evidence import not_addressed
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class NotAddressedOverNpc:
    """Speech over the NPC that is not the player talking to it (another voice, the TV, the game says the player
    is away) neither stops it nor counts as the player's backchannel: it talks on, and once the speech ends the
    stretch is closed without telling the game."""

    name: ClassVar[str] = "speaking.not_addressed"
    config: AddresseeConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        why = not_addressed(obs.addressee, self.config)
        if why is None:
            return None
        return FloorDecision(Action.CONTINUE, self.name, why, ends_stretch=not obs.in_speech)
