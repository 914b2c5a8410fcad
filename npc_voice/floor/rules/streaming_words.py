from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import ListeningConfig
from npc_voice.features.words import looks_incomplete
from npc_voice.floor.decision import FloorDecision
from npc_voice.floor.evidence import silence_decision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class StreamingWords:
    """Without the accurate words (late, or off under overload) the streaming words decide alone: a middling
    gap, or a longer one if they end unfinished. Their last word is too often misheard to hold longer."""

    name: ClassVar[str] = "listening.streaming_words"
    config: ListeningConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if obs.words_accurate:
            return None
        if looks_incomplete(obs.partial or obs.words):
            return silence_decision(self.name, obs, self.config.unsure_silence_s, "streaming words end unfinished")
        return silence_decision(self.name, obs, self.config.end_silence_s, "streaming words only")
