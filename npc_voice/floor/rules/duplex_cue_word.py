from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import DuplexConfig
from npc_voice.features.words import has_interrupt_cue
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class DuplexCueWord:
    """A cue word while the model hears the player (acoustic evidence the word is theirs, not echo), in this
    chunk or the last: it often arrives as the stretch ends."""

    name: ClassVar[str] = "duplex.cue_word"
    config: DuplexConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        out, previous = obs.model, obs.model_previous
        player = max(out.player if out is not None else 0.0, previous.player if previous is not None else 0.0)
        if player >= self.config.cue_player_on and has_interrupt_cue(obs.words):
            return FloorDecision(Action.INTERRUPTED, self.name, f"cut-in word in {obs.words!r}, P(player) {player:.2f}")
        return None
