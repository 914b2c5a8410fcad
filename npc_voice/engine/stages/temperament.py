from __future__ import annotations

import random
from typing import Any

from npc_voice import events as ev
from npc_voice.config import TemperamentConfig
from npc_voice.engine.barks import BarkScheduler
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.speaker import Speaker
from npc_voice.engine.state import HearingState, PersonaRef, SpeakingState, StretchState, TurnState
from npc_voice.floor.decision import Action
from npc_voice.floor.evidence import heard_cue
from npc_voice.floor.rules.not_addressed import NotAddressed
from npc_voice.floor.rules.not_addressed_over_npc import NotAddressedOverNpc
from npc_voice.floor.strategies import StrategySet


class Temperament:
    """What the persona's temperament adds to the floor decision: it holds the floor against a cut-in it does not
    yield to ("Let me finish."), says its own "mm-hm" in the player's pauses, and barks when the floor is free."""

    def __init__(self, config: TemperamentConfig, strategy: StrategySet, persona: PersonaRef, barks: BarkScheduler,
                 speaker: Speaker, hearing: HearingState, turn: TurnState, stretch: StretchState,
                 speaking: SpeakingState, game_state: dict[str, Any], rng: random.Random) -> None:
        self.config, self.strategy, self.persona, self.barks, self.speaker = config, strategy, persona, barks, speaker
        self.hearing, self.turn, self.stretch, self.speaking = hearing, turn, stretch, speaking
        self.game_state, self.rng = game_state, rng

    def run(self, frame: StepFrame) -> None:
        action = frame.decision.action
        line = self.speaking.line
        h = self.hearing
        addressed = frame.decision.rule not in (NotAddressed.name, NotAddressedOverNpc.name)
        if line is not None:
            self.barks.npc_speaks()
            talks_on = action in (Action.CONTINUE, Action.BACKCHANNEL) and addressed
            if talks_on and self._cut_in(frame) and self.speaking.held_line != line.line_id:
                self._hold_floor(frame)
            return
        if h.in_speech or (self.turn.speech_s > 0 and h.silence_s < self.config.player_turn_quiet_s) \
                or action is Action.RESPOND:
            self.barks.player_has_floor()
            if action is Action.LISTEN and addressed:  # no "mm-hm" to the TV
                self.barks.offer_backchannel(frame.events)
            return
        self.barks.floor_free(frame.events, frame.index)

    def _cut_in(self, frame: StepFrame) -> bool:
        """A cut-in it does not yield to, heard while it lasts or as it ends ("wait" is often only recognised
        once said)."""
        obs = frame.observation
        return (self.hearing.speech_s >= self.config.hold_floor_min_s and not self.stretch.judged
                and not self.stretch.held and obs is not None and heard_cue(obs)
                and self.strategy.hears_player(obs.stretch_player_p))

    def _hold_floor(self, frame: StepFrame) -> None:
        """"Let me finish." and it takes up its sentence again."""
        line = self.speaking.line
        assert line is not None
        self.speaking.held_line = line.line_id
        reaction = self.persona.loaded.persona.reaction("holds_floor", self.game_state, self.rng)
        if reaction is None:
            return
        line.interject(self.speaker.synth(reaction.text))
        self.stretch.held = True  # the cut-in was answered; when it ends it is dropped, not a backchannel
        frame.events.append(ev.Bark(offset=0.0, kind="holds_floor", line_id=line.line_id, text=reaction.text))
