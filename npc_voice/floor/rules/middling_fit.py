from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import ListeningConfig
from npc_voice.floor.decision import FloorDecision
from npc_voice.floor.evidence import silence_decision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class MiddlingFit:
    """A middling fit of words both recognisers hear finished: most are whole requests in other words than
    the topic's examples ("Who are you?"), but a fragment Whisper completed can be one too ("I would like to
    bye." while pocketsphinx hears "...survive"): a longer gap than a clear request's."""

    name: ClassVar[str] = "listening.middling_fit"
    config: ListeningConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        fit = "unknown" if obs.fit is None else f"{obs.fit:.2f}"
        return silence_decision(self.name, obs, self.config.end_silence_s, f"fit {fit}")
