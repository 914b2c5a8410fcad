from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from npc_voice import events as ev
from npc_voice.config import HearingConfig, OnsetConfig
from npc_voice.engine.answers import AnswerBuilder, PreparedAnswer
from npc_voice.engine.clock import Clock
from npc_voice.engine.frame import ProjectedStart, StepFrame
from npc_voice.engine.speaker import Speaker
from npc_voice.engine.stages.onset import restore_turn
from npc_voice.engine.state import (
    AnswerOnset,
    HearingState,
    PersonaRef,
    ProjectedAnswer,
    SpeakingState,
    StretchState,
    TurnSnapshot,
    TurnState,
)
from npc_voice.engine.turn_reader import TurnReader
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.rules.not_addressed import NotAddressed
from npc_voice.floor.strategies import StrategySet
from npc_voice.model.emotion import NpcFeelings


class Act:
    """Carry the floor decision out: start the answer, stop the line, or close a stretch over it. Two gates
    judge the decision again first, after the temperament has had its say:

    - ``gate.max_turn``: a turn longer than ``max_turn_s`` is answered anyway;
    - ``gate.held_floor`` / ``gate.not_the_player``: a stretch over the NPC that ended is told to the game as a
      backchannel only if it was the player's and the NPC did not talk through it with "let me finish".
    """

    def __init__(self, hearing_config: HearingConfig, config: OnsetConfig, strategy: StrategySet, clock: Clock,
                 persona: PersonaRef, game_state: dict[str, Any], rng: random.Random, answers: AnswerBuilder,
                 reader: TurnReader, speaker: Speaker, feelings: NpcFeelings, hearing: HearingState, turn: TurnState,
                 stretch: StretchState, speaking: SpeakingState, reset_turn: Callable[[], None]) -> None:
        self.hearing_config, self.config, self.strategy, self.clock = hearing_config, config, strategy, clock
        self.persona, self.game_state, self.rng, self.answers = persona, game_state, rng, answers
        self.reader, self.speaker, self.feelings = reader, speaker, feelings
        self.hearing, self.turn, self.stretch, self.speaking = hearing, turn, stretch, speaking
        self.reset_turn = reset_turn

    def run(self, frame: StepFrame) -> None:
        decision = frame.decision = self._gates(frame, frame.decision)
        frame.npc_was_speaking = self.speaking.line is not None
        if decision.action is Action.RESPOND:
            self._respond(frame, decision)
        elif decision.action is Action.INTERRUPTED and self.speaking.line is not None:
            self._yield(frame)
        elif decision.drops_turn:
            self.reset_turn()  # not addressed to the NPC: the player's next words start a turn of their own
        elif decision.ends_stretch and not self.stretch.judged:
            self.stretch.judged = True
            if decision.action is Action.BACKCHANNEL:
                frame.events.append(ev.Backchannel(heard=self.turn.partial))
            self.stretch.held = False
            self.reset_turn()

    def _gates(self, frame: StepFrame, decision: FloorDecision) -> FloorDecision:
        if (decision.action is not Action.RESPOND and self.speaking.line is None and decision.rule != NotAddressed.name
                and self.turn.speech_s > self.config.max_turn_s):
            return decision.overruled(Action.RESPOND, "gate.max_turn", f"{self.turn.speech_s:.1f} s of turn")
        if decision.action is Action.BACKCHANNEL and not self.stretch.judged:
            if self.stretch.held:
                return decision.overruled(Action.CONTINUE, "gate.held_floor", "a cut-in it talked through",
                                          ends_stretch=True)
            obs = frame.observation
            if obs is not None and not self.strategy.hears_player(obs.stretch_player_p):
                return decision.overruled(Action.CONTINUE, "gate.not_the_player",
                                          f"P(player) {obs.stretch_player_p:.2f}: its echo or noise", ends_stretch=True)
        return decision

    def _yield(self, frame: StepFrame) -> None:
        """The player took the floor: stop at once. If they were going on with their turn over the answer's onset,
        the turn goes on from its words; else the rest of the line waits to be taken up or dropped."""
        line = self.speaking.line
        assert line is not None
        if self.stretch.at_onset:
            self.turn.carry = restore_turn(self.speaking, self.turn)
        else:
            self.turn.unsaid, self.turn.after_interrupt = line.unsaid(), True
        self.speaker.stop_line(frame.events, self.turn.partial)
        self.stretch.judged = True

    def _answer(self, frame: StepFrame, decision: FloorDecision) -> PreparedAnswer:
        """The answer the floor judged the turn on (and checked the voice of): a read that finished after that
        judgement must not replace it. Without one, the streaming words are answered."""
        if decision.resume and self.turn.unsaid:
            return self.answers.resume(self.turn.unsaid)
        ready = frame.ready
        if ready is None:
            read = self.reader.turn_read()
            ready = read.answer if read is not None else None
        if ready is not None:
            return ready
        t = self.turn
        heard = " ".join(f"{t.carry} {t.partial}".split())
        return self.answers.answer_for(heard, self.persona.loaded, self.rng, self.game_state, t.previous_topic,
                                       t.after_interrupt, t.unsaid)

    def _respond(self, frame: StepFrame, decision: FloorDecision) -> None:
        """Start the prepared answer. A projected one (``frame.projected``) leaves the turn open until the next step
        shows the player is done (``SettleProjection``)."""
        projected: ProjectedStart | None = frame.projected
        lead = starts_in = 0.0
        if projected is not None:
            answer, lead, starts_in = projected.answer, projected.lead_in, projected.starts_in
            c = self.hearing_config
            self.speaking.projected = ProjectedAnswer(
                starts_in=starts_in, loud_db=max(self.hearing.peak_db - c.loud_range_db, c.silence_db))
        else:
            answer = self._answer(frame, decision)
        before = self.turn.snapshot()
        self.reader.take()
        if projected is None:
            self.reset_turn()
        self.stretch.judged = True
        self.turn.answered()
        if answer.choice is None and answer.reaction is None:
            return
        self._start(frame, answer, before, lead, starts_in)

    def _start(self, frame: StepFrame, answer: PreparedAnswer, before: TurnSnapshot, lead: float,
               starts_in: float) -> None:
        events = frame.events
        if answer.heard:  # a false interruption's resume answers no words
            events.append(ev.Transcript(text=answer.heard, final=True))
        if answer.sentiment is not None:
            self.feelings.update(0.0, text_sentiment=answer.sentiment)
        if answer.emotion:
            self.feelings.update(0.0, line_tags=[answer.emotion])
        line_id = self.speaker.new_line_id()
        # A "resume" has neither: the NPC goes on with its line, and speech_start says what it says.
        if answer.reaction == "interrupted":
            events.append(ev.Bark(offset=0.0, kind="interrupted", line_id=line_id, text=answer.text))
        elif answer.choice is not None:
            self.speaking.onset = AnswerOnset(line_id, frame.end_s + starts_in, answer.heard, before)
            self.turn.previous_topic = answer.choice.topic
            events.append(ev.Response(offset=round(lead, 3), topic=answer.choice.topic, text=answer.text,
                                      confidence=round(answer.choice.similarity, 3), heard=answer.heard))
        self.clock.settle(answer.first)  # simulated clock: the voice's time is charged to this step
        self.speaker.start_line(line_id, answer.text, answer.first, events, frame.index, lead)
