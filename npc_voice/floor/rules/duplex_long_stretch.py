from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import DuplexConfig
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class DuplexLongStretch:
    """Speech the player head is sure of, ``long_stretch_s`` over the NPC, is no backchannel."""

    name: ClassVar[str] = "duplex.long_stretch"
    config: DuplexConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        out = obs.model
        if (obs.in_speech and obs.speech_s >= self.config.long_stretch_s and out is not None
                and out.player >= self.config.cue_player_on):
            return FloorDecision(Action.INTERRUPTED, self.name, f"{obs.speech_s:.2f} s, P(player) {out.player:.2f}")
        return None
