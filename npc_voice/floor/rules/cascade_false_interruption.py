from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import CascadeConfig
from npc_voice.features.words import words_of
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class CascadeFalseInterruption:
    """LiveKit's ``resume_false_interruption``: the NPC was cut off, and ``false_interruption_timeout_s`` later
    the player has said no words: it was no interruption (a cough, a knock). Take the line up again."""

    name: ClassVar[str] = "cascade.false_interruption"
    config: CascadeConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if (obs.line_cut_off and not obs.in_speech and not words_of(obs.words)
                and obs.silence_s >= self.config.false_interruption_timeout_s):
            why = f"no words {obs.silence_s:.1f} s after the cut"
            return FloorDecision(Action.RESPOND, self.name, why, resume=True)
        return None
