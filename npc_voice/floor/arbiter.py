"""The arbiter: the rules of the observation's phase, tried in their declared order; the first that decides,
decides (pipecat's user-turn strategies and ``UserTurnController`` are the model)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation, Phase, phase_of
from npc_voice.floor.rules.base import FloorRule

# When no rule of a phase has anything to say.
_DEFAULTS = {
    Phase.LISTENING: FloorDecision(Action.LISTEN, "listening.waiting", "no rule ends the turn yet"),
    Phase.OVER_NPC: FloorDecision(Action.CONTINUE, "speaking.talks_on", "no rule stops the NPC"),
    Phase.STRETCH_ENDED: FloorDecision(Action.CONTINUE, "ended.talks_on", "no rule judged the stretch"),
    Phase.NPC_ALONE: FloorDecision(Action.CONTINUE, "speaking.nothing_heard", "nobody speaks over the NPC"),
}


@dataclass(frozen=True)
class Arbiter:
    rules: Mapping[Phase, Sequence[FloorRule]]

    def decide(self, obs: FloorObservation) -> FloorDecision:
        phase = phase_of(obs)
        for rule in self.rules.get(phase, ()):
            decision = rule.decide(obs)
            if decision is not None:
                return decision
        return _DEFAULTS[phase]

    def names(self, phase: Phase) -> list[str]:
        """The rules of ``phase`` in the order they are tried (for docs and ``npc-voice talk --why``)."""
        return [rule.name for rule in self.rules.get(phase, ())]
