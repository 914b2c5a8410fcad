from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import AddresseeConfig
from npc_voice.floor.decision import FloorDecision
from npc_voice.floor.evidence import blurred, unanswered_decision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class BlurredAndUnclear:
    """A voice blurred by the room (``floor/evidence.blurred``) whose words the recogniser could not make out
    (P(heard right) under ``clear_p``) is someone else's talk in the room, a TV, a voice across the hall, more
    often than the player's: it is not answered, not even with "say that again" ("Pass me the leg, woah hoo.",
    P 0.39, for a bystander's "Pass me the bread, would you?" across a hall). The NPC keeps listening and, once it
    has gone quiet ``drop_after_s``, forgets the turn, as ``listening.not_addressed`` does. A player who sounds
    like this and was misheard says it again, as they would to "say that again"; words heard clearly, however
    blurred, are answered."""

    name: ClassVar[str] = "listening.blurred_and_unclear"
    config: AddresseeConfig
    clear_p: float
    drop_after_s: float

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if obs.clarity is None or obs.clarity >= self.clear_p:
            return None
        why = blurred(obs.addressee, self.config)
        if why is None:
            return None
        return unanswered_decision(self.name, obs, self.drop_after_s,
                                   f"{why}, and not heard clearly (P {obs.clarity:.2f})")
