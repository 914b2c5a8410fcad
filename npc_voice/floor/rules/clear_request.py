from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import ListeningConfig
from npc_voice.floor.decision import FloorDecision
from npc_voice.floor.evidence import clear_request, silence_decision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class ClearRequest:
    """A sentence that plainly asks for one of the persona's topics ("can you fix my sword?") is answered after
    a human gap."""

    name: ClassVar[str] = "listening.clear_request"
    config: ListeningConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        c = self.config
        if not clear_request(obs.words, obs.fit, obs.margin, c.sure_fit, c.question_fit, c.question_margin):
            return None
        return silence_decision(self.name, obs, c.sure_silence_s, f"fit {obs.fit:.2f}")
