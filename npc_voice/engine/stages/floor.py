from __future__ import annotations

from dataclasses import replace
from typing import Protocol

import numpy as np

from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.config import ReadingConfig
from npc_voice.engine.answers import PreparedAnswer
from npc_voice.engine.clock import Clock
from npc_voice.engine.frame import ProjectedStart, StepFrame
from npc_voice.engine.stages.addressee import AddresseeEvidence
from npc_voice.engine.state import HearingState, SpeakingState, StretchState, TurnState, VoiceEnd
from npc_voice.engine.stretch_reader import StretchReader
from npc_voice.engine.turn_reader import TurnReader
from npc_voice.features.asr import StreamingRecognizer
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation
from npc_voice.floor.strategies import StrategySet


class EndpointProsody(Protocol):
    """The prosody model's P(the turn is complete) where the voice ended (``model/endpoint.py``)."""

    def p_end(self, audio: np.ndarray, end: int) -> float: ...


class Floor:
    """Decide the floor: build the observation, let the strategy set's rules decide, then the gates that judge
    the decision again on what the step can still learn, in this order:

    1. ``gate.awaiting_read``: a turn judged over on the streaming words is judged again on the accurate read of
       all of it ("I would like to buy" is not over); in real time the step waits only for a read due within
       ``read_wait_s``, else listens another chunk.
    2. the second read (``TurnReader.answer_to_start``) may change the answer, never when it starts.
    3. ``gate.voice_not_ready``: an answer starts only in a reply that carries its first sound.
    4. ``listening.projection``: while listening, the turn may be answered in the chunk the voice ends.
    """

    def __init__(self, config: ReadingConfig, strategy: StrategySet, clock: Clock, recognizer: StreamingRecognizer,
                 endpoint: EndpointProsody | None, reader: TurnReader, stretch_reader: StretchReader,
                 hearing: HearingState, turn: TurnState, stretch: StretchState, speaking: SpeakingState,
                 addressee: AddresseeEvidence | None = None) -> None:
        self.config, self.strategy, self.clock, self.recognizer, self.endpoint = (
            config, strategy, clock, recognizer, endpoint)
        self.addressee = addressee
        self.reader, self.stretch_reader = reader, stretch_reader
        self.hearing, self.turn, self.stretch, self.speaking = hearing, turn, stretch, speaking

    def run(self, frame: StepFrame) -> None:
        read = self.reader.turn_read()
        ready = read.answer if read is not None else None
        decision = self._decide(frame, ready)  # the accurate words, if in: judged on them and on their fit
        if decision.action is Action.RESPOND and self.reader.prepared is not None and ready is None:
            self.reader.await_read()
            ready = self.reader.ready_answer(settle=True)
            decision = self._decide(frame, ready) if ready is not None else decision.overruled(
                Action.LISTEN, "gate.awaiting_read", f"{decision.rule} on the streaming words; the read is not in")
        if decision.action is Action.RESPOND:
            ready = self.reader.answer_to_start(ready)
            if ready is not None and not self.clock.by_deadline(ready.first):
                decision = decision.overruled(Action.LISTEN, "gate.voice_not_ready",
                                              f"{decision.rule}, but the answer's voice is not ready")
        if decision.action is Action.LISTEN:
            projected = self._projection(frame)
            if projected is not None:
                frame.projected, decision = projected
        frame.decision, frame.ready = decision, ready

    def observe(self, frame: StepFrame, answer: PreparedAnswer | None) -> FloorObservation:
        """The observation the rules decide on: the accurate words of ``answer`` if there is one, else the
        streaming words."""
        h, t, s = self.hearing, self.turn, self.stretch
        stretch_words = self.stretch_reader.words() if self.stretch_reader.over_npc() else None
        choice = answer.choice if answer is not None else None
        return FloorObservation(
            npc_speaking=self.speaking.line is not None,
            in_speech=h.in_speech,
            speech_s=h.speech_s,
            silence_s=h.silence_s,
            turn_speech_s=t.speech_s,
            words=answer.heard if answer is not None else t.partial,
            words_accurate=answer is not None,
            partial=t.partial,
            fit=choice.similarity if choice is not None else None,
            margin=choice.margin if choice is not None else None,
            stretch_words=stretch_words,
            stretch_is_echo=self.stretch_reader.is_echo(stretch_words),
            stretch_read_pending=self.stretch_reader.pending(),
            stretch_judged=s.judged,
            stretch_player_p=s.heard_p(),
            stretch_at_onset=s.at_onset,
            model=frame.heads,
            model_previous=frame.heads_previous,
            p_complete=frame.p_complete,
            line_cut_off=t.after_interrupt and bool(t.unsaid),
            p_end=t.voice_end.p_end if t.voice_end is not None and t.voice_end.at_s == h.loud_end_s else None,
            clarity=answer.clarity if answer is not None else None,
            understood=answer.understood if answer is not None else None,
            addressee=self.addressee.evidence() if self.addressee is not None else None,
        )

    def _decide(self, frame: StepFrame, answer: PreparedAnswer | None) -> FloorDecision:
        frame.observation = self.observe(frame, answer)
        return self.strategy.decide(frame.observation)

    def _projection(self, frame: StepFrame) -> tuple[ProjectedStart, FloorDecision] | None:
        """The answer to start now if the turn has just ended and the strategy projects it complete: on the
        covering read if there is one, else on the newest read, which misses at most the turn's last moments.
        In real time the lead-in is what is left of the rule's once the step's own time has passed."""
        rule = self.strategy.projection
        if rule is None or self.speaking.line is not None or self.turn.speech_s < rule.listening.min_turn_speech_s:
            return None
        now = frame.end_s
        gap = self.hearing.quiet_for(now)
        if not rule.config.min_gap_s <= gap < now:
            return None
        self.clock.settle_now(lambda: self.reader.read_whole_turn(now))  # simulated: the turn is read up to now
        found = self._project(gap)
        if found is None and self.reader.await_read():  # nearly done: wait for it rather than a chunk
            found = self._project(gap)
        if found is None:
            return None
        answer, decision = found
        timing = self.clock.lead_in(decision.lead_in or 0.0, answer.first)
        if timing is None:
            return None
        lead_in, starts_in = timing
        return ProjectedStart(answer, lead_in, starts_in), replace(decision, lead_in=lead_in)

    def _project(self, gap: float) -> tuple[PreparedAnswer, FloorDecision] | None:
        """``_projection`` on the reads finished so far."""
        rule = self.strategy.projection
        assert rule is not None
        read = self.reader.turn_read() or self.reader.latest
        if read is None:
            return None
        h, t = self.hearing, self.turn
        answer = read.answer
        unread = max(0.0, h.loud_end_s - read.covers)
        if unread > self.config.cut_word_s:
            answer = self.reader.finished_by_streaming(answer, rule.listening.sure_fit)
        if self.endpoint is not None and (t.voice_end is None or t.voice_end.at_s != h.loud_end_s):
            audio = self.recognizer.audio()
            t.voice_end = VoiceEnd(h.loud_end_s, self.endpoint.p_end(audio, len(audio) - round(gap * SAMPLE_RATE)))
        choice = answer.choice
        obs = FloorObservation(
            npc_speaking=False, in_speech=h.in_speech, speech_s=h.speech_s, silence_s=h.silence_s,
            turn_speech_s=t.speech_s, words=answer.heard, partial=t.partial,
            fit=choice.similarity if choice is not None else None,
            margin=choice.margin if choice is not None else None,
            voice_gap_s=gap, unread_s=unread, p_end=t.voice_end.p_end if t.voice_end is not None else None,
            clarity=answer.clarity, understood=answer.understood,
            addressee=self.addressee.evidence() if self.addressee is not None else None,
        )
        decision = rule.decide(obs)
        return None if decision is None else (answer, decision)
