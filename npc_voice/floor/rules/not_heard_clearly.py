from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import ListeningConfig
from npc_voice.features.words import looks_incomplete
from npc_voice.floor.decision import FloorDecision
from npc_voice.floor.evidence import silence_decision
from npc_voice.floor.observation import FloorObservation, Understood


@dataclass(frozen=True)
class NotHeardClearly:
    """The recogniser was not sure of words that fit no topic plainly ("the tweager leave, after 8"): the NPC asks
    the player to say it again, after ``unclear_silence_s`` (they may be going on, or saying it again already) and
    only then: words heard clearly are never answered with "say that again"."""

    name: ClassVar[str] = "listening.not_heard_clearly"
    config: ListeningConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if obs.understood is not Understood.UNCLEAR or looks_incomplete(obs.words) or looks_incomplete(obs.partial):
            return None  # words that end unfinished, by either recogniser, wait the long silence whatever was heard
        fit = "none" if obs.fit is None else f"{obs.fit:.2f}"
        return silence_decision(self.name, obs, self.config.unclear_silence_s,
                                f"not heard clearly (P {obs.clarity:.2f}), fit {fit}")
