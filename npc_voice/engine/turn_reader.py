"""The turn reader: the player's turn read accurately (Whisper) in the background, and the answer to it.

While the player talks, the words so far are read whenever a reading thread is idle (predictive: when the
turn ends, the last such read usually holds all of it). Once the stretch fades or ends, an answer needs a
read that covers every voiced frame: if the prepared one does not, a new one starts at once. A read the
player talked past still runs to its end; while it does, a fading stretch starts no second one, so a
session has at most two running. A whole-turn read that fits no topic is read a second time in the quiet
that follows; a read that stopped inside its last word is finished by the streaming words.
"""

from __future__ import annotations

import logging
import random
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from npc_voice.config import ReadingConfig
from npc_voice.engine.answers import AnswerBuilder, PreparedAnswer
from npc_voice.engine.clock import Clock
from npc_voice.engine.resources import EngineResources, LoadedPersona
from npc_voice.engine.state import HearingState, PersonaRef, TurnState
from npc_voice.features.asr import StreamingRecognizer
from npc_voice.features.words import finish_cut_word, looks_incomplete
from npc_voice.model.topics import UNHEARD_FIT

log = logging.getLogger(__name__)


def has_result(future: Future[Any] | None) -> bool:
    """The future finished with a result: not still running, not cancelled, not failed."""
    return future is not None and future.done() and not future.cancelled() and future.exception() is None


@dataclass(frozen=True)
class TurnRead:
    """A read of the turn's audio, submitted."""

    future: Future[PreparedAnswer]
    covers: float  # session audio time up to which it reads
    started: float  # clock time it was submitted


@dataclass(frozen=True)
class FinishedRead:
    """A read of the turn that finished, and its answer."""

    covers: float
    answer: PreparedAnswer


@dataclass(frozen=True)
class SecondRead:
    """A turn read again in the quiet after a first read that fit nothing."""

    first: PreparedAnswer
    future: Future[PreparedAnswer]


@dataclass(frozen=True)
class HeardVoice:
    """The recogniser's encoder states of the turn's audio up to ``covers`` (``Read.voice``): the tone verdict's
    best evidence."""

    covers: float
    voice: np.ndarray
    recogniser: str


@dataclass(frozen=True)
class FinishedWords:
    """A read finished by the streaming words (``finish_cut_word``), remembered for the words it was made of."""

    read: str
    streaming: str
    better: PreparedAnswer | None


class TurnReader:
    """Keeps an accurate read of the player's turn, and the answer to it, ready for the floor."""

    def __init__(self, config: ReadingConfig, resources: EngineResources, recognizer: StreamingRecognizer,
                 answers: AnswerBuilder, persona: PersonaRef, game_state: dict[str, Any], turn: TurnState,
                 hearing: HearingState, clock: Clock) -> None:
        self.config, self.resources, self.recognizer, self.answers = config, resources, recognizer, answers
        self.persona, self.game_state, self.turn, self.hearing, self.clock = persona, game_state, turn, hearing, clock
        self.prepared: TurnRead | None = None  # the read the answer is to come from
        self.reading: Future[PreparedAnswer] | None = None  # the last read started, wanted or not
        self.latest: FinishedRead | None = None  # the newest finished read of the turn
        self.again: SecondRead | None = None
        self.finished: FinishedWords | None = None
        self.heard: HeardVoice | None = None  # the voice of the newest finished read (set on the worker thread)
        self.read_s = config.read_time_s  # how long this session's reads take, start to answer (moving average)

    # ----------------------------------------------------------------------------------------- what is read

    def covers(self) -> bool:
        """The prepared read is of the whole turn so far."""
        return self.prepared is not None and self.reads_whole_turn(self.prepared.covers)

    def reads_whole_turn(self, covers: float) -> bool:
        """A read of the audio up to ``covers`` holds the whole turn so far: up to where the voice last ended."""
        return min(self.hearing.voiced_end_s, self.hearing.loud_end_s) <= covers + self.config.cover_slack_s

    def ready_answer(self, settle: bool = False) -> PreparedAnswer | None:
        """The prepared answer if it is of the whole turn so far and done (``settle``: on the simulated clock,
        wait for it)."""
        if not self.covers():
            return None
        assert self.prepared is not None
        if settle:
            self.clock.settle(self.prepared.future)
        try:
            return self.prepared.future.result(timeout=0)
        except TimeoutError:
            return None
        except Exception:  # a failed read must not end the conversation
            log.exception("preparing the answer failed; using the streaming transcript")
            self.prepared = None
            return None

    def turn_read(self) -> FinishedRead | None:
        """A finished read of the whole turn so far: the prepared read, or else the newest finished one if the
        player's voice had ended when it was taken (a read started after that only reads the same words with
        more silence, and may still be running)."""
        ready = self.ready_answer() if self.prepared is not None and self.prepared.future.done() else None
        if ready is not None:
            assert self.prepared is not None
            return FinishedRead(self.prepared.covers, ready)
        self.keep_finished()
        return self.latest if self.latest is not None and self.reads_whole_turn(self.latest.covers) else None

    def keep_finished(self) -> None:
        """Remember the newest finished read of the turn: a newer one may still be running when it ends."""
        read = self.prepared
        if read is not None and has_result(read.future):
            self.latest = FinishedRead(read.covers, read.future.result())

    # ------------------------------------------------------------------------------------------- reading

    def read_ahead(self, now_s: float, predictive: bool = True) -> None:
        """Start the read the turn needs now (the step's recognition, while the NPC is silent); ``now_s``: the
        session time at the end of this chunk; ``predictive``: reads while the player talks are on (the step's
        load level). The stretch fades when silero hears it fade, or when the voice has been quiet
        ``quiet_fade_s`` by its loudness (silero hears it late)."""
        h, c = self.hearing, self.config
        fading = h.in_speech and (h.below >= c.fading_frames or h.quiet_for(now_s) >= c.quiet_fade_s)
        if h.in_speech and not fading:
            if (predictive and self.turn.speech_s >= c.predict_after_s
                    and (self.prepared is None or self.prepared.future.done())):
                self.keep_finished()  # the read it replaces may be the newest the projection gets
                self.submit(now_s, spare=True)
            return
        if self.covers():
            self.read_again(now_s)
            return
        if fading and self.reading is not None and not self.reading.done():
            return
        self.keep_finished()
        if self.prepared is not None:
            self.prepared.future.cancel()  # only if still queued; a finished read's answer and voice stay in latest
        self.submit(now_s, spare=False)

    def submit(self, now_s: float, spare: bool) -> Future[PreparedAnswer] | None:
        """A read of all the audio up to this chunk's end (``now_s``); ``spare``: only on an idle reader."""
        args = self._read_args()
        read = self.resources.read_ahead(*args) if spare else self.resources.read(*args)
        if read is not None:
            started = self.clock.now()
            self.prepared = TurnRead(read, now_s, started)
            self.reading = read
            read.add_done_callback(lambda f: self._timed(f, started, now_s))
        return read

    def read_whole_turn(self, now_s: float) -> Future[PreparedAnswer] | None:
        """The read of the whole turn up to now, started if the prepared one does not cover it (the simulated
        clock waits for it before a projection)."""
        if not self.covers():
            self.keep_finished()
            self.submit(now_s, spare=False)
        return self.prepared.future if self.prepared is not None else None

    def read_again(self, now_s: float) -> None:
        """A whole-turn read that fits nothing (below ``UNHEARD_FIT``) holds the floor open for the long silence
        anyway. Once ``read_again_after_s`` of it has passed, the turn is read again on an idle reader, its
        readings pooled with the first read's: where the audio is cut changes what tiny.en hears in an unusual
        voice ("any pleats for seal?", then "...for sale?"). Offline, on four held-out case sets, this turned
        5 of 47 such turns to the right topic and none away from it."""
        read = self.prepared
        if read is None or not has_result(read.future):
            return
        answer = read.future.result()
        if (answer.choice is None or answer.reaction is not None or answer.choice.similarity >= UNHEARD_FIT
                or (self.again is not None and self.again.first is answer)
                or self.hearing.quiet_for(now_s) < self.config.read_again_after_s):
            return
        again = self.resources.read_ahead(*self._read_args(), answer.readings)
        if again is not None:
            self.again = SecondRead(answer, again)

    def answer_to_start(self, answer: PreparedAnswer | None) -> PreparedAnswer | None:
        """The answer to start: the second read of ``answer``'s turn if it is done (settled on the simulated
        clock). Only the answer changes, never when it starts: the wait was judged on the first read."""
        again = self.again
        if answer is None or again is None or again.first is not answer:
            return answer
        self.clock.settle(again.future)
        return again.future.result() if has_result(again.future) else answer

    def read_due(self) -> bool:
        """Real time: the read of the whole turn is running and due within the step's wait."""
        return (self.covers() and self.prepared is not None and not self.prepared.future.done()
                and self.clock.due_by_deadline(self.prepared.started + self.read_s))

    def await_read(self) -> bool:
        """Real time, if the read of the whole turn is due: wait for it and its first sentence's voice until the
        step's wait is over. False if there was nothing to wait for."""
        if not self.read_due():
            return False
        assert self.prepared is not None
        self.clock.by_deadline(self.prepared.future)
        if has_result(self.prepared.future):
            self.clock.by_deadline(self.prepared.future.result().first)
        return True

    def finished_by_streaming(self, answer: PreparedAnswer, sure_fit: float) -> PreparedAnswer:
        """A read made before the voice ended may stop inside the last word and misread it ("Tell me about your
        four."), or just before it ("Can I get a new sword from"): the streaming words have heard the whole word.
        Where they agree with the read (``finish_cut_word``) and the finished words fit a topic better (or, if
        the read ended unfinished, end finished and fit as well or clearly), they are the answer's words."""
        cut_short = looks_incomplete(answer.heard)
        if answer.choice is None or (answer.choice.similarity >= sure_fit and not cut_short):
            return answer
        t = self.turn
        if self.finished is None or (self.finished.read, self.finished.streaming) != (answer.heard, t.partial):
            text = finish_cut_word(answer.heard, t.partial)
            better = None if text is None else self.answers.answer_for(
                text, self.persona.loaded, random.Random(t.seed), self.game_state, t.previous_topic,
                t.after_interrupt, t.unsaid)
            fit = answer.choice.similarity
            new_fit = better.choice.similarity if better is not None and better.choice is not None else -1.0
            if cut_short:
                good = text is not None and not looks_incomplete(text) and new_fit >= min(fit, sure_fit)
            else:
                good = new_fit > fit
            self.finished = FinishedWords(answer.heard, t.partial, better if good else None)
        return self.finished.better or answer

    def voice_of_turn(self) -> HeardVoice | None:
        """The voice of a finished read that holds the whole turn so far, if there is one."""
        heard = self.heard
        return heard if heard is not None and self.reads_whole_turn(heard.covers) else None

    # -------------------------------------------------------------------------------------- turn boundaries

    def take(self) -> None:
        """The answer starts: a newer read still queued is not needed (a running or finished one stays), and
        ending the turn must not cancel the answer's voice."""
        if self.prepared is not None:
            self.prepared.future.cancel()
        self.prepared = None

    def reset(self) -> None:
        """A new turn: forget its reads (a second read still queued is cancelled, and so is the prepared read
        with its voice)."""
        self.latest = self.finished = None
        if self.again is not None:
            self.again.future.cancel()  # only if still queued
            self.again = None

    def drop_prepared(self) -> None:
        if self.prepared is not None:
            future = self.prepared.future
            if not future.cancel() and future.done() and future.exception() is None:
                first = future.result().first
                if first is not None:
                    first.cancel()  # its voice is not needed either
            self.prepared = None

    # ---------------------------------------------------------------------------------------- worker side

    def _read_args(self) -> tuple[Any, ...]:
        """``prepare`` and its arguments for a read of the turn's audio so far."""
        t = self.turn
        return (self.prepare, self.recognizer.audio(), t.partial, self.persona.loaded, t.seed,
                dict(self.game_state),  # a copy: the step thread keeps updating the live one
                t.previous_topic, t.after_interrupt, t.unsaid, t.carry)

    def _timed(self, read: Future[PreparedAnswer], started: float, covers: float) -> None:
        """Worker thread: fold a finished read's time into the session's average (``read_due``); keep its voice."""
        if not read.cancelled():
            self.read_s += 0.3 * (self.clock.now() - started - self.read_s)
        if has_result(read) and read.result().voice is not None:
            self.heard = HeardVoice(covers, read.result().voice, self.resources.asr.recogniser)

    def prepare(self, audio: np.ndarray, fast: str, loaded: LoadedPersona, seed: float, state: dict[str, Any],
                previous: str | None, after_interrupt: bool, unsaid: str, carry: str,
                earlier: tuple[tuple[str, float], ...] = ()) -> PreparedAnswer:
        """Worker thread: accurate transcript, topic, line; the first sentence's voice follows on a worker.
        The read is primed with the persona's topic words: Whisper then hears "forge" and "longsword" where an
        unusual voice leaves it unsure (tiny.en misreads them as "forward", "long zone"); of its best readings,
        the persona's topics pick the one to answer, or pocketsphinx's words (``fast``) when no reading fits a
        topic and they do (``TopicMatcher.streaming_instead``). ``carry``: the turn's words before a pause the NPC
        yielded in, which these go on. ``earlier``: the readings of a first read of the same turn."""
        best: dict[str, float] = {}
        whisper = self.resources.asr.read(audio, prompt=loaded.prompt)
        for text, score in (*earlier, *whisper.readings):
            best[text] = max(score, best.get(text, score))
        readings = tuple(sorted(best.items(), key=lambda r: -r[1]))
        read = loaded.matcher.pick_reading(list(readings)) if readings else fast
        model = self.resources.clarity
        clarity = model.p_clear(whisper) if model is not None and readings else None

        def answer(words: str, sure: float | None) -> PreparedAnswer:
            heard = " ".join(f"{carry} {words}".split())
            return self.answers.answer_for(heard, loaded, random.Random(seed), state, previous, after_interrupt,
                                           unsaid, clarity=sure)

        prepared = answer(read, clarity)
        if read != fast and prepared.choice is not None and loaded.matcher.streaming_instead(
                prepared.choice.similarity, fast):
            prepared = answer(fast, None)  # pocketsphinx's words: Whisper's confidence does not speak for them
        return replace(prepared, readings=readings, voice=whisper.voice)
