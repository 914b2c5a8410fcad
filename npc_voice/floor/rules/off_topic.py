from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import ListeningConfig
from npc_voice.features.words import looks_incomplete
from npc_voice.floor.decision import FloorDecision
from npc_voice.floor.evidence import silence_decision
from npc_voice.floor.observation import FloorObservation, Understood


@dataclass(frozen=True)
class OffTopic:
    """Words heard clearly that fit nothing the persona knows ("I'm looking for information about Cambridge."):
    a question it has no answer for, not a mishearing. Its ``unknown`` line answers after a human gap, as a
    person says "never heard of it" without first waiting to be sure they heard."""

    name: ClassVar[str] = "listening.off_topic"
    config: ListeningConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if obs.understood is not Understood.UNKNOWN or looks_incomplete(obs.words):
            return None
        return silence_decision(self.name, obs, self.config.sure_silence_s,
                                f"heard clearly (P {obs.clarity:.2f}), fit {obs.fit:.2f}: nothing it knows")
