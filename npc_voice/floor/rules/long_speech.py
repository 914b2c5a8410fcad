from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class LongSpeech:
    """Speech over the NPC longer than a backchannel that says something (or still has no read in time) is an
    interruption: stop."""

    name: ClassVar[str] = "speaking.long_speech"

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        return FloorDecision(Action.INTERRUPTED, self.name, f"{obs.speech_s:.2f} s: {obs.stretch_words or obs.words!r}")
