from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import CascadeConfig
from npc_voice.features.words import words_of
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class CascadeBargeIn:
    """LiveKit's barge-in (``InterruptionOptions``): speech over the agent of ``min_interruption_duration_s``
    by the VAD, or ``min_interruption_words`` words by the recogniser, interrupts it. No player head, no echo
    check beyond the canceller's: what the VAD hears over the NPC is the player."""

    name: ClassVar[str] = "cascade.barge_in"
    config: CascadeConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        c = self.config
        words = max(len(words_of(obs.words)), len(words_of(obs.stretch_words or "")))
        if obs.in_speech and obs.speech_s >= c.min_interruption_duration_s:
            return FloorDecision(Action.INTERRUPTED, self.name, f"{obs.speech_s:.2f} s of speech")
        if words >= c.min_interruption_words:
            return FloorDecision(Action.INTERRUPTED, self.name, f"{words} words: {obs.words!r}")
        return None
