from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import SpeakingConfig
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.evidence import hears_player
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class EndedAwaitingRead:
    """Speech over the NPC has ended and the read of all of it is on its way: judge it on that read a moment
    later ("Sorry, stop." is often read only whole)."""

    name: ClassVar[str] = "ended.awaiting_read"
    config: SpeakingConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if (obs.stretch_read_pending and hears_player(obs.stretch_player_p, self.config.player_p)
                and (obs.stretch_at_onset or obs.speech_s >= self.config.cue_min_s)):
            return FloorDecision(Action.CONTINUE, self.name, "the read of the whole stretch is coming")
        return None
