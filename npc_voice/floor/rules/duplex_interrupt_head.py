from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import DuplexConfig
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


@dataclass(frozen=True)
class DuplexInterruptHead:
    """The interruption head on two chunks in a row (an "mm-hm" onset can look like a sentence's for one), with
    the player speaking or heard."""

    name: ClassVar[str] = "duplex.interrupt_head"
    config: DuplexConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        out, previous = obs.model, obs.model_previous
        if out is None or previous is None or min(out.interrupt, previous.interrupt) < self.config.interrupt_on:
            return None
        if obs.in_speech or out.player >= self.config.cue_player_on:
            why = f"P(interrupt) {out.interrupt:.2f}, then {previous.interrupt:.2f}"
            return FloorDecision(Action.INTERRUPTED, self.name, why)
        return None
