from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import ListeningConfig
from npc_voice.features.words import looks_incomplete
from npc_voice.floor.decision import FloorDecision
from npc_voice.floor.evidence import silence_decision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class UnfinishedOrUnknown:
    """Accurate words that end where a sentence seldom ends ("I would like to buy"), or words that fit no topic
    plainly (under 0.5) that the rules before it left: no confidence from the recogniser, a statement, a two-word
    fragment, a backchannel, a request in new words heard clearly at 0.45-0.5 — a piece of a turn, someone reading
    or thinking aloud ("There's iron they say, in all our blood." 0.50, and the reader goes on): there is no hurry;
    the long silence. ``listening.off_topic`` and ``listening.not_heard_clearly`` answer the rest sooner."""

    name: ClassVar[str] = "listening.unfinished_or_unknown"
    config: ListeningConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if looks_incomplete(obs.words):
            return silence_decision(self.name, obs, self.config.incomplete_silence_s, "the words end unfinished")
        if obs.fit is not None and obs.fit < self.config.unsure_fit:
            return silence_decision(self.name, obs, self.config.incomplete_silence_s, f"fit {obs.fit:.2f}: unknown")
        return None
