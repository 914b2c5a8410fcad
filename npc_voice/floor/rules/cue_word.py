from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import SpeakingConfig
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.evidence import heard_cue, hears_player
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class CueWord:
    """A cut-in word ("wait", "stop", "hold on", "sorry") in the player's speech over the NPC stops it at
    once, while the speech lasts or as it ends (a cue is often recognised only once said: "wait!" read as
    "way" until its end). An impatient persona's ``cue_min_s`` is infinite: a cue alone does not stop it."""

    name: ClassVar[str] = "speaking.cue_word"
    config: SpeakingConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        if (hears_player(obs.stretch_player_p, self.config.player_p) and obs.speech_s >= self.config.cue_min_s
                and heard_cue(obs)):
            words = obs.stretch_words if obs.stretch_words is not None else obs.words
            return FloorDecision(Action.INTERRUPTED, self.name, f"cut-in word in {words!r}")
        return None
