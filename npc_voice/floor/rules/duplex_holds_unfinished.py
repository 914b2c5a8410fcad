from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import DuplexConfig
from npc_voice.features.words import looks_incomplete
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class DuplexHoldsUnfinished:
    """Accurate words that end where a sentence seldom ends veto the model's shift until the long silence (the
    streaming words' last word is usually misheard; the model already weighs their flags)."""

    name: ClassVar[str] = "duplex.holds_unfinished"
    config: DuplexConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if obs.words_accurate and looks_incomplete(obs.words) and obs.silence_s < self.config.incomplete_silence_s:
            return FloorDecision(Action.LISTEN, self.name, f"unfinished: {obs.words!r}")
        return None
