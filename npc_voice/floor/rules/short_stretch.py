from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import SpeakingConfig
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class ShortStretch:
    """Speech over the NPC no longer than a backchannel usually is ("uh-huh", "yeah", "I see"): talk on."""

    name: ClassVar[str] = "speaking.short_stretch"
    config: SpeakingConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if obs.speech_s > self.config.backchannel_max_s:
            return None
        return FloorDecision(Action.CONTINUE, self.name, f"{obs.speech_s:.2f} s of {self.config.backchannel_max_s} s")
