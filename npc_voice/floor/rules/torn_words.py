from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import ListeningConfig
from npc_voice.features.words import looks_incomplete
from npc_voice.floor.decision import FloorDecision
from npc_voice.floor.evidence import silence_decision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class TornWords:
    """A middling (or unknown) fit and streaming words that end unfinished: the two recognisers disagree, and
    Whisper may have made a sentence of a fragment ("I would like to bye.") while the player is still
    thinking. The long silence."""

    name: ClassVar[str] = "listening.torn_words"
    config: ListeningConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if not looks_incomplete(obs.partial or obs.words):
            return None
        return silence_decision(self.name, obs, self.config.incomplete_silence_s, "the streaming words end unfinished")
