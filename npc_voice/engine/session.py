"""The micro-turn engine: one conversation's state and its step per 200 ms chunk.

A step takes the player's microphone chunk and what the loudspeaker played meanwhile, and returns
the next 200 ms of NPC audio plus events. Inside, the data path runs in order:

    echo cancelling -> voice activity -> streaming recognition -> floor decision -> speech out -> events

Recognition advances every chunk. While the player talks, their turn so far is read accurately in the
background whenever a reading thread is idle, and the answer to those words is chosen and its first
sentence synthesised; when the speech fades, a read that covers all of it is made if there is none. So
when the floor policy decides the turn is over, the transcript is usually ready in that same step and
the answer's voice with it. Memory stays flat: the only growing buffers (turn audio, transcript) are
bounded and reset at every turn.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
from concurrent.futures import Future, wait
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from npc_voice import events as ev
from npc_voice.audio.echo import EchoCanceller
from npc_voice.audio.format import CHUNK_SAMPLES, CHUNK_SECONDS, SAMPLE_RATE, silence
from npc_voice.engine.resources import EngineResources, LoadedPersona
from npc_voice.features.asr import StreamingRecognizer
from npc_voice.features.vad import VoiceActivity
from npc_voice.model.duplex import DuplexModel, DuplexPolicy, DuplexState
from npc_voice.model.emotion import NpcFeelings, PlayerTone, ToneEstimate
from npc_voice.model.endpoint import EndOfTurn
from npc_voice.model.sentiment import TextSentiment, analyse
from npc_voice.model.topics import UNHEARD_FIT, TopicChoice
from npc_voice.model.turntaking import (
    Action,
    BaselineTurnPolicy,
    FloorObservation,
    finish_cut_word,
    heard_cue,
    is_backchannel,
    is_own_words,
    looks_incomplete,
    strip_discourse,
)
from npc_voice.speech.stream import LineStream, Synthesized
from npc_voice.speech.tts import VoiceSettings, split_sentences

log = logging.getLogger(__name__)

FRAME_S = 512 / SAMPLE_RATE
SPEECH_ON = 0.5
SPEECH_OFF = 0.3
HANGOVER_FRAMES = 3  # ~100 ms below SPEECH_OFF before a stretch of speech ends
FADING_FRAMES = 2  # a chunk ending this many frames below SPEECH_OFF starts the accurate read early
MAX_TURN_S = 20.0  # a turn longer than this is answered anyway
# Output above the expected residual echo by this much (dB) means someone else is talking: a stricter
# bar to start a stretch of player speech over the NPC than to keep one going.
ECHO_EXCESS_START_DB = 6.0
ECHO_EXCESS_HOLD_DB = 2.0
ECHO_REMOVED_DB = 3.0  # mic louder than the canceller's output by more than this: there was echo to remove
PREROLL_CHUNKS = 1  # audio before the onset given to the recogniser
PREDICT_AFTER_S = 0.4  # a turn is read ahead once it holds this much speech
# Where the voice really ended: the voice-activity model hears it stop 30-130 ms late, so the end is the
# last 10 ms block of its stretch within LOUD_RANGE_DB of the stretch's loudest (and above SILENCE_DB).
# A read covers the turn if that end is no later than COVER_SLACK_S after the read's audio.
LOUD_BLOCK = 160
LOUD_RANGE_DB = 25.0
SILENCE_DB = -55.0
COVER_SLACK_S = 0.05
QUIET_FADE_S = 0.08
# An answer started in the chunk where the player's voice ended (``BaselineTurnPolicy.project``) yields if
# their voice comes back before its first sound can have reached their microphone (so it cannot be the
# NPC's echo): up to this long after the answer's start in the next chunk. Only voice that comes back for
# YIELD_VOICE_S in that time, or is still loud at its end, is the player going on: a shorter sound that
# falls quiet again is the release of the turn's last stop ("gate|t"), whose closure passed for the end.
YIELD_SLACK_S = 0.02
YIELD_VOICE_S = 0.08
# In real time a step whose turn has just ended may wait for the read of all of it (started a chunk ago,
# when the voice faded) and its first sentence's voice, if they are due within READ_WAIT_S of the step's
# start: the answer then starts inside the next chunk, as soon as it is known, not a whole chunk later.
# The reply is that much later (still well before the sidecar counts it late); the NPC is silent then, so
# the player's jitter buffer only stretches a silence. A read is due READ_TIME_S after it was started at
# first, then after the session's recent reads' time.
READ_WAIT_S = 0.11
READ_TIME_S = 0.2
# A read that misses more than this of the turn's voice may have cut its last word (``_finished_by_streaming``).
CUT_WORD_S = 0.03
# Speech over the NPC this long is read accurately, again every STRETCH_REREAD_S while it goes on, so
# the floor policy can tell a slow "mmm-hmmm" from an interruption; a read older than STRETCH_STALE_S
# of speech no longer speaks for the stretch.
STRETCH_READ_AFTER_S = 0.3
STRETCH_REREAD_S = 0.2
STRETCH_STALE_S = 0.4
# A turn whose read fits nothing waits the policy's long silence before the NPC asks again; once the voice
# has been quiet this long it is read a second time, with that much more of the quiet (``_read_again``).
READ_AGAIN_AFTER_S = 0.45
ECHO_WORDS_S = 2.5  # a read of speech over the NPC is compared with the NPC's words of this last stretch
STRETCH_JOIN_S = 0.5  # a stretch of speech that starts this soon after the last one goes on with it
# A stretch that begins within this of the answer's first sound began before the player can have taken the
# answer in: they were going on with their turn (``BaselineTurnPolicy.goes_on``).
ONSET_OVERLAP_S = 0.4
# Temperament at work. A quiet NPC with the player near says an idle bark after IDLE_AFTER_S seconds,
# scaled from a terse persona (talkativeness 0) to a chatty one (1) and varied by a third either way.
IDLE_AFTER_S = (40.0, 12.0)
# The NPC's own "mm-hm": offered in a pause of a player who has said at least this much since the last
# one and whose words so far need more, with probability ``backchannel_rate`` per such pause.
OWN_BACKCHANNEL_AFTER_S = 2.5
OWN_BACKCHANNEL_PAUSE_S = (0.15, 0.6)
HOLD_FLOOR_MIN_S = 0.2  # a cut-in this long that the NPC does not yield to gets its "let me finish"
Cue = Literal["greeting", "farewell"]


def _has_result(future: Future[Any]) -> bool:
    """The future finished with a result: not still running, not cancelled, not failed."""
    return future.done() and not future.cancelled() and future.exception() is None


@dataclass(frozen=True)
class PreparedAnswer:
    """An answer made ready in the background while the player pauses."""

    heard: str
    choice: TopicChoice | None
    text: str
    first: Future[Synthesized] | None  # the first sentence's voice, synthesised after the words are read
    sentiment: TextSentiment | None = None
    emotion: str | None = None  # the line's emotion tag from the persona file
    # Not an answer to a topic: "interrupted" (the player only cut in, "wait...", and said nothing more:
    # "Hm? Go on.") or "resume" (the cut-in was only "mm-hm": the NPC takes its line up again).
    reaction: Literal["interrupted", "resume"] | None = None
    readings: tuple[tuple[str, float], ...] = ()  # Whisper's best readings the words were picked from


@dataclass(frozen=True)
class _Projected:
    """An answer started before the silence was heard: the step after decides whether it stands."""

    starts_in: float  # seconds into the next microphone chunk at which the answer's first sound plays
    loud_db: float  # a block this loud is the player's voice


@dataclass(frozen=True)
class _Onset:
    """An answer just begun: if the player turns out to have been going on with their turn, the NPC yields
    and the turn's words so far (``heard``) open the rest of it; the turn state is put back as it was."""

    line_id: str
    sound_s: float  # session audio time at which its first sound plays
    heard: str
    previous_topic: str | None
    after_interrupt: bool
    unsaid: str


@dataclass(frozen=True)
class PreparedBark:
    """A bark or reaction synthesised in the background, spoken when the floor is free."""

    kind: str
    text: str
    first: Synthesized


@dataclass
class StepResult:
    """The reply to one microphone chunk."""

    pcm: np.ndarray
    events: list[ev.Event] = field(default_factory=list)
    compute_ms: float = 0.0  # the step's own work; a real-time wait for the turn's read is idle, not counted


class Session:
    """One NPC conversation."""

    def __init__(
        self,
        resources: EngineResources,
        persona_id: str,
        npc_id: str,
        state: dict[str, Any] | None = None,
        seed: int | None = None,
        simulated_clock: bool = False,
        floor_events: bool = False,
    ) -> None:
        """``simulated_clock``: chunks arrive faster than real time (a bench), so a due answer waits for
        its look-ahead work in the step, where the step's measured time charges it to the simulated clock.
        ``floor_events``: every step reports the duplex model's probabilities and the action (``ev.Floor``)."""
        self.res = resources
        self._prepare_wait = None if simulated_clock else 0.0
        self.persona_id, self.npc_id = persona_id, npc_id
        self.loaded: LoadedPersona = resources.persona(persona_id)
        self._persona_problem: tuple[float | None, str] | None = None  # the broken edit last reported
        self.game_state: dict[str, Any] = dict(state or {})
        # The floor policy: the rule baseline, or the learned duplex model with NPC_VOICE_POLICY=duplex (not
        # the default yet: on the dev bench it stops for interruptions sooner but talks over the player and
        # through fewer backchannels; see docs/duplex.md).
        self._duplex: DuplexState | None = None
        self.policy: BaselineTurnPolicy | DuplexPolicy = BaselineTurnPolicy.for_patience(
            self.loaded.persona.temperament.patience
        )
        if EndOfTurn.available():  # answer a turn in the chunk its voice ends when the prosody says it is over
            prosody = EndOfTurn.shared()
            self.policy = replace(self.policy, project_p_end=prosody.threshold, project_hold_p=prosody.hold_threshold)
        # The duplex model runs in every session: its player head tells the player's voice over the NPC
        # from the NPC's own echo for the rules, and its heads go out in ``floor`` events when asked.
        if DuplexModel.available():
            self._duplex = DuplexModel.shared().session()
            if os.environ.get("NPC_VOICE_POLICY", "baseline") == "duplex":
                self.policy = DuplexPolicy()
        else:
            log.warning("no duplex weights in models/duplex (python -m npc_voice.train.duplex): no echo check "
                        "by the model, no floor events")
        self._floor_events = floor_events and self._duplex is not None
        self._model_ran = False  # the duplex model ran in this step (before its call: in the last one)
        self._stretch_player_p = 0.0  # the duplex model's highest P(player) over the current stretch
        self._line_step = 0  # the step at which the current line started
        self._rng = random.Random(seed)
        self._aec = EchoCanceller()
        self._vad = VoiceActivity()
        self._asr = StreamingRecognizer(resources.asr, self.loaded.lm)
        self._line_ids = itertools.count(1)
        self._tone = PlayerTone()
        self.feelings = NpcFeelings(self.loaded.persona.temperament)
        self._line: LineStream | None = None
        # player speech tracking (frame resolution)
        self._in_speech = False
        self._below = 0
        self._speech_s = 0.0
        self._silence_s = 0.0
        self._turn_speech_s = 0.0
        self._prev_chunk = silence()
        self._partial = ""
        self._prepared: Future[PreparedAnswer] | None = None
        self._prepared_covers = 0.0  # the session audio time up to which the prepared answer was read
        self._prepared_at = 0.0  # when it was started (perf_counter)
        self._read_s = READ_TIME_S  # how long this session's reads take, start to answer (a moving average)
        self._step_t0 = 0.0  # when the step now running began (perf_counter)
        self._waited_s = 0.0  # ... and how long it has waited for a read (idle: not compute)
        self._reading: Future[PreparedAnswer] | None = None  # the last read started, wanted or not
        self._latest: tuple[float, PreparedAnswer] | None = None  # the newest finished read: (covers, answer)
        self._again: tuple[PreparedAnswer, Future[PreparedAnswer]] | None = None  # (a read, its second read)
        self._p_end: tuple[float, float] | None = None  # (voice end, the prosody model's P(complete) there)
        self._projected: _Projected | None = None
        # the last read finished by the streaming words: ((read, streaming words), the answer to them, if better)
        self._finished: tuple[tuple[str, str], PreparedAnswer | None] | None = None
        self._obs: FloorObservation | None = None  # what the floor policy saw last
        self._heard_s = 0.0  # session audio time at the end of the last voice-activity frame
        self._voiced_end_s = 0.0  # ... and at the end of the last frame taken for the player's voice
        self._loud_end_s = 0.0  # session audio time at the end of the last loud block of a stretch
        self._stretch_peak_db = SILENCE_DB
        self._turn_seed = self._rng.random()  # every read of one turn picks the same line for the same topic
        self._voice_lock = threading.Lock()
        self._voiced: tuple[str, Future[Synthesized]] | None = None  # the last sentence voiced ahead
        self._stretch_read: tuple[float, Future[str]] | None = None  # (speech read, its read) over the NPC
        self._stretch_heard: tuple[float, str] | None = None  # the latest finished read of that stretch
        self._stretch_handled = True
        self.steps = 0
        # temperament at work: barks, reactions, the NPC's own backchannels, follow-up topics
        self._previous_topic: str | None = None
        self._after_interrupt = False  # the player's current turn began by cutting the NPC off
        self._unsaid = ""  # what the NPC had still to say when it was cut off
        self._held_line: str | None = None  # the line in which the NPC already said "let me finish"
        self._stretch_held = False  # the player's current stretch is a cut-in the NPC talked through
        self._onset: _Onset | None = None  # the answer now playing, while a stretch over it may go on the turn
        self._stretch_at_onset = False  # the player's current stretch began with the answer's first sound
        self._carry = ""  # the words of a turn the NPC yielded in, which the rest of the turn goes on
        self._near = False  # the game cued the player's approach (and not yet their leaving)
        self._quiet_s = 0.0
        self._idle_after_s = self._next_idle_after()
        self._bark: Future[PreparedBark | None] | None = None
        self._aside: LineStream | None = None  # the NPC's own "mm-hm", over the player's turn
        self._own_backchannel: Future[PreparedBark | None] | None = None
        self._backchannel_mark_s = 0.0  # the player's turn speech when the NPC last said "mm-hm"

    # ------------------------------------------------------------------ public

    def step(
        self, mic: np.ndarray, played: np.ndarray | None, state: dict[str, Any] | None = None, cue: Cue | None = None
    ) -> StepResult:
        """Advance the conversation by one 200 ms chunk. ``cue``: the player just came within earshot
        (``greeting``) or left it (``farewell``)."""
        t0 = self._step_t0 = time.perf_counter()
        self._waited_s = 0.0
        if state:
            self.game_state.update(state)
        events: list[ev.Event] = []
        self._refresh_persona(events)
        if cue is not None:
            self._cued(cue)
        clean = self._aec.process(mic, played)
        probs = raw_probs = self._vad.process(clean)
        echo = self._aec.stats
        needed = ECHO_EXCESS_HOLD_DB if self._in_speech else ECHO_EXCESS_START_DB
        mostly_echo = echo.mic_db - echo.out_db > ECHO_REMOVED_DB  # the canceller took most of the mic away
        if echo.ref_active and mostly_echo and echo.residual_excess_db < needed:
            # Residual echo of the NPC's own voice can look like speech to the VAD; the player talking
            # over it leaves far more than the canceller expects, so only that counts as speech. When the
            # canceller removed little (a headset: no echo at all), what the mic hears is the player.
            probs = np.minimum(probs, SPEECH_OFF * 0.5)
        was_speaking = self._in_speech
        quiet_before = 0.0 if was_speaking else self._silence_s
        started = self._track_speech(probs)
        self._track_loudness(clean, was_speaking, started)
        if self._projected is not None:
            self._settle_projection(clean, started, events)
        self._recognise(clean, started, events)
        self._hear_tone(clean, ended=was_speaking and not self._in_speech, events=events)

        learned = self._model_on()
        if learned and not self._model_ran and self.steps:
            # back from an overload pause: a fresh window, not one that joins chunks seconds apart
            self._duplex = DuplexModel.shared().session()
        self._model_ran = learned
        if learned:
            elapsed = (self.steps - self._line_step) * CHUNK_SECONDS if self._line is not None else 0.0
            out = self._duplex.step(mic, clean, played, raw_probs, echo, self._line is not None, elapsed,
                                    self._partial)
            if started and quiet_before >= STRETCH_JOIN_S:
                self._stretch_player_p = out.player
            elif started or was_speaking or self._in_speech:  # "Oh, | I see": one voice, two stretches
                self._stretch_player_p = max(self._stretch_player_p, out.player)
        read = self._turn_read()
        ready = read[1] if read is not None else None
        # the accurate words are in: judge the turn on them and on how well they fit a topic
        action = self._decide(ready)
        if action is Action.RESPOND and self._prepared is not None and ready is None:
            # Judge the end of the turn on the accurate words ("I would like to buy" is not over; the
            # streaming words are too often misheard to answer on). In real time the step does not block on
            # them: it waits only for a read due within READ_WAIT_S, else listens another chunk.
            self._await_read()
            ready = self._ready_answer(wait=self._prepare_wait)
            action = self._decide(ready) if ready is not None else Action.LISTEN
        if action is Action.RESPOND:
            ready = self._read_twice(ready)
        if action is Action.RESPOND and not self._voice_ready(ready):
            action = Action.LISTEN
        projected = self._projection() if action is Action.LISTEN else None
        if projected is not None:
            action = Action.RESPOND
        self._temperament(action, events)
        npc_speaking = self._line is not None
        pcm = self._act(action, events, projected, ready)
        if self._floor_events and learned:
            # "backchannel" only in the step that tells the game of one; otherwise the NPC just goes on
            told = action is not Action.BACKCHANNEL or any(isinstance(e, ev.Backchannel) for e in events)
            events.append(self._floor(action if told else Action.CONTINUE, npc_speaking))
        self._prev_chunk = clean
        self.steps += 1
        return StepResult(pcm=pcm, events=events, compute_ms=(time.perf_counter() - t0 - self._waited_s) * 1000)

    def _floor(self, action: Action, npc_speaking: bool) -> ev.Floor:
        """The duplex model's heads for this chunk, the prosody's verdict on the turn's last voice end (while
        the player is quiet after it) and the action the policy took."""
        out = self._duplex.last
        p_end = self._p_end[1] if (self._p_end is not None and self._p_end[0] == self._loud_end_s
                                   and not self._in_speech and self._turn_speech_s > 0) else None
        return ev.Floor(
            action=action.value, p_yield=round(out.shift, 3), p_yield_soon=round(out.soon, 3),
            p_player=round(out.player, 3),
            p_backchannel=round(out.backchannel, 3) if npc_speaking else None,
            p_interrupt=round(out.interrupt, 3) if npc_speaking else None,
            p_end=None if p_end is None else round(p_end, 3),
        )

    def _hear_tone(self, clean: np.ndarray, ended: bool, events: list[ev.Event]) -> None:
        """The player's tone from this chunk; the NPC's feelings follow it (events when they change)."""
        estimate: ToneEstimate | None = self._tone.step(clean, self._in_speech)
        if ended:
            estimate = self._tone.end_of_speech() or estimate
        player_event = self._tone.event_for(estimate)
        if player_event is not None:
            events.append(player_event)
        self.feelings.update(CHUNK_SECONDS, player_tone=estimate, game_state=self.game_state)
        npc_event = self.feelings.event()
        if npc_event is not None:
            events.append(npc_event)

    def _decide(self, answer: PreparedAnswer | None) -> Action:
        """The floor decision on the accurate words of ``answer`` if there is one, else the streaming words."""
        accurate = answer is not None
        obs = self._observe(answer)
        if isinstance(self.policy, DuplexPolicy):
            state = self._duplex
            return self.policy.decide(state.last if state else None, obs, accurate, state.previous if state else None)
        return self.policy.decide(obs, accurate)

    def _observe(self, answer: PreparedAnswer | None) -> FloorObservation:
        stretch = self._stretch_words() if self._over_npc() else None
        self._obs = FloorObservation(
            npc_speaking=self._line is not None,
            in_speech=self._in_speech,
            speech_s=self._speech_s,
            silence_s=self._silence_s,
            turn_speech_s=self._turn_speech_s,
            words=answer.heard if answer is not None else self._partial,
            partial=self._partial,
            fit=answer.choice.similarity if answer is not None and answer.choice is not None else None,
            margin=answer.choice.margin if answer is not None and answer.choice is not None else None,
            stretch_words=stretch,
            stretch_is_echo=self._stretch_is_echo(stretch),
            stretch_read_pending=self._stretch_read is not None and not self._stretch_read[1].done(),
            stretch_player_p=self._player_p(),
            stretch_at_onset=self._stretch_at_onset,
        )
        return self._obs

    def _model_on(self) -> bool:
        """The duplex model runs in this step. Under overload the sidecar turns it off while the NPC listens
        (the rules decide the floor without it), but never while the NPC speaks: there its player head is
        what tells the NPC's own echo from the player (without it an echo misheard as words stops the line)."""
        return self._duplex is not None and (
            self.res.learned or self._line is not None or isinstance(self.policy, DuplexPolicy)
        )

    def _heard_player(self) -> bool:
        """The stretch over the NPC that just ended was the player's voice, not the NPC's echo or noise."""
        policy = self.policy
        return not isinstance(policy, BaselineTurnPolicy) or self._obs is None or policy.heard_player(self._obs)

    def _over_npc(self) -> bool:
        """The player speaks over the NPC, or such a stretch has just ended and is not yet judged."""
        return self._line is not None and (self._in_speech or not self._stretch_handled)

    def _stretch_is_echo(self, read: str | None) -> bool:
        """Speech over the NPC whose accurate read, or streaming words, are mostly the NPC's own words of
        the last seconds: its voice leaking past the echo canceller (Whisper misreads echo as often as
        pocketsphinx does, so either may be the one that matches; under overload only the latter runs)."""
        if not self._over_npc():
            return False
        said = self._line.recent_words(ECHO_WORDS_S)
        return (read is not None and is_own_words(read, said)) or is_own_words(self._partial, said)

    def close(self) -> None:
        if self._line is not None:
            self._line.cancel()
        for fut in (self._bark, self._own_backchannel):
            if fut is not None:
                fut.cancel()
        self._reset_turn()

    # ------------------------------------------------------------------ hearing

    def _refresh_persona(self, events: list[ev.Event]) -> None:
        """Pick up an edited persona file between turns; tell the game once when it reloads or breaks."""
        if self._line is not None or self._turn_speech_s > 0:
            return
        try:
            loaded = self.res.current(self.persona_id)
            problem = self.res.persona_problem(self.persona_id)
        except (KeyError, ValueError) as exc:  # file gone, or broken with no good version in this process
            loaded, problem = self.loaded, (None, str(exc.args[0] if isinstance(exc, KeyError) else exc))
        if problem is not None and problem != self._persona_problem:
            log.warning("persona %s: keeping the last good version: %s", self.persona_id, problem[1])
            events.append(ev.Notice(code="persona_error", message=problem[1]))
        self._persona_problem = problem
        if loaded.mtime != self.loaded.mtime:
            self.loaded = loaded
            self._asr = StreamingRecognizer(self.res.asr, loaded.lm)
            events.append(ev.Notice(code="persona_reloaded",
                                    message=f"{self.persona_id}: now using {loaded.persona.source} as edited"))

    def _track_speech(self, probs: np.ndarray) -> bool:
        """Update speech/silence durations from per-frame VAD; True if a stretch began in this chunk."""
        started = False
        for p in probs:
            self._heard_s += FRAME_S
            if self._in_speech:
                if p < SPEECH_OFF:
                    self._below += 1
                    if self._below >= HANGOVER_FRAMES:
                        self._in_speech = False
                        self._silence_s = self._below * FRAME_S
                        self._below = 0
                        continue
                else:
                    self._below = 0
                    self._voiced_end_s = self._heard_s
                self._speech_s += FRAME_S
                self._turn_speech_s += FRAME_S
            else:
                if p >= SPEECH_ON:
                    self._in_speech = True
                    started = True
                    self._voiced_end_s = self._heard_s
                    self._speech_s = FRAME_S
                    self._turn_speech_s += FRAME_S
                    self._silence_s = 0.0
                    self._stretch_handled = self._line is None  # only speech over the NPC is a backchannel
                    self._stretch_held = False
                    self._stretch_read = self._stretch_heard = None
                    onset = self._onset
                    self._stretch_at_onset = (onset is not None and self._line is not None
                                              and self._line.line_id == onset.line_id
                                              and self._heard_s - onset.sound_s <= ONSET_OVERLAP_S)
                else:
                    self._silence_s += FRAME_S
        return started

    def _track_loudness(self, clean: np.ndarray, was_speaking: bool, started: bool) -> None:
        """Where in this chunk the player's voice was last loud, while a stretch of speech runs or ends."""
        if started:  # until a block of the new stretch is loud, the voice-activity end stands
            self._stretch_peak_db, self._loud_end_s = SILENCE_DB, float("inf")
        if not (was_speaking or self._in_speech):
            return
        db = _block_db(clean)
        self._stretch_peak_db = max(self._stretch_peak_db, float(db.max()))
        loud = np.flatnonzero(db >= max(self._stretch_peak_db - LOUD_RANGE_DB, SILENCE_DB))
        if loud.size:
            self._loud_end_s = self.steps * CHUNK_SECONDS + (loud[-1] + 1) * LOUD_BLOCK / SAMPLE_RATE

    def _recognise(self, clean: np.ndarray, started: bool, events: list[ev.Event]) -> None:
        """Stream the chunk into the recogniser; keep the accurate reads of the player's speech going."""
        if started and not self._asr.in_utterance:
            self._asr.start(preroll=self._prev_chunk)
        if not self._asr.in_utterance:
            return
        partial = self._asr.feed(clean)
        if partial and partial != self._partial:
            self._partial = partial
            events.append(ev.Transcript(text=partial, final=False))
        if self._line is not None and self._in_speech and self._speech_s >= STRETCH_READ_AFTER_S:
            self._read_stretch()
        if self._line is None:
            self._read_ahead()

    def _settle_projection(self, clean: np.ndarray, started: bool, events: list[ev.Event]) -> None:
        """The step after an answer was started early: if the player's voice came back before its first sound
        could reach them ("My sword is broken, | can you fix it?") and went on (``YIELD_VOICE_S``), yield:
        stop at once, the turn is still theirs. Otherwise the answer stands and the turn is over; the
        voice-activity model's late frames of it are not a new stretch of speech over the NPC."""
        projected, self._projected = self._projected, None
        heard = clean[: int((projected.starts_in + YIELD_SLACK_S) * SAMPLE_RATE) // LOUD_BLOCK * LOUD_BLOCK]
        loud = _block_db(heard) >= projected.loud_db  # at least YIELD_SLACK_S of blocks
        if self._line is not None and (loud[-1] or loud.sum() * LOUD_BLOCK >= YIELD_VOICE_S * SAMPLE_RATE):
            line, self._line = self._line, None
            line.cancel()
            events.append(ev.Interrupted(offset=0.0, line_id=line.line_id, heard=self._partial))
            events.append(ev.SpeechEnd(offset=0.0, line_id=line.line_id, completed=False))
            self._restore_turn()
            self._stretch_handled = True
            return
        self._reset_turn()
        if self._in_speech and not started:
            self._in_speech, self._below = False, 0
            self._silence_s = max(0.0, (self.steps + 1) * CHUNK_SECONDS - self._loud_end_s)

    def _projection(self) -> tuple[PreparedAnswer, float, float] | None:
        """The answer to start now, its lead-in and when its first sound plays (both seconds after the
        chunk's end), if the turn has just ended and the policy projects it complete
        (``BaselineTurnPolicy.project``): on the covering read if there is one, else on the newest read,
        which misses at most the turn's last moments. In real time the lead-in is what is left of the
        policy's once the step's own time has passed: the reply's audio plays when it arrives."""
        policy = self.policy
        if (not isinstance(policy, BaselineTurnPolicy) or self._line is not None
                or self._turn_speech_s < policy.min_turn_speech_s):
            return None
        now = (self.steps + 1) * CHUNK_SECONDS
        gap = now - self._loud_end_s
        if not policy.project_min_gap_s <= gap < now:
            return None
        if self._prepare_wait is None:  # simulated clock: the turn is read up to now, charged to this step
            if not self._covers(self._prepared):
                self._keep_finished_read()
                self._submit_read(spare=False)
            wait([self._prepared])
        projected = self._project(gap)
        if projected is None and self._await_read():  # nearly done: wait for it rather than a chunk
            projected = self._project(gap)
        if projected is None:
            return None
        answer, lead = projected
        if self._prepare_wait is None:
            return answer, lead, lead
        if answer.first is not None and not answer.first.done():
            # Not waited for: the next chunk decides again, with 200 ms more of the player heard (a voice
            # gap inside a sentence, "Can I get a new sword | from you?", has ended by then), in a reply
            # that can carry the answer's first sound.
            return None
        # Real time: the reply leaves this long after the chunk's end, and its audio plays from then on.
        late = time.perf_counter() - self._step_t0
        return answer, max(0.0, lead - late), max(lead, late)

    def _project(self, gap: float) -> tuple[PreparedAnswer, float] | None:
        """``_projection`` on the reads finished so far."""
        read = self._turn_read() or self._latest
        if read is None:
            return None
        covers, answer = read
        unread = max(0.0, self._loud_end_s - covers)
        if unread > CUT_WORD_S:
            answer = self._finished_by_streaming(answer)
        if EndOfTurn.available() and (self._p_end is None or self._p_end[0] != self._loud_end_s):
            audio = self._asr.audio()
            self._p_end = (self._loud_end_s, EndOfTurn.shared().p_end(audio, len(audio) - round(gap * SAMPLE_RATE)))
        obs = FloorObservation(
            npc_speaking=False, in_speech=self._in_speech, speech_s=self._speech_s, silence_s=self._silence_s,
            turn_speech_s=self._turn_speech_s, words=answer.heard, partial=self._partial,
            fit=answer.choice.similarity if answer.choice is not None else None,
            margin=answer.choice.margin if answer.choice is not None else None,
            voice_gap_s=gap, unread_s=unread,
            p_end=self._p_end[1] if self._p_end is not None else None,
        )
        lead = self.policy.project(obs)
        return None if lead is None else (answer, lead)

    def _read_due(self) -> bool:
        """Real time: the read of the whole turn is running and due within the step's wait (``READ_WAIT_S``)."""
        return (self._prepare_wait is not None and self._covers(self._prepared) and not self._prepared.done()
                and self._prepared_at + self._read_s <= self._step_t0 + READ_WAIT_S)

    def _await_read(self) -> bool:
        """Real time, if the read of the whole turn is due (``_read_due``): wait, until ``READ_WAIT_S`` after the
        step began, for it and its first sentence's voice. False if there was nothing to wait for."""
        if not self._read_due():
            return False
        t0 = time.perf_counter()
        wait([self._prepared], timeout=max(0.0, self._step_t0 + READ_WAIT_S - t0))
        self._waited_s += time.perf_counter() - t0
        if _has_result(self._prepared):
            self._voice_by_deadline(self._prepared.result().first)
        return True

    def _voice_by_deadline(self, first: Future[Synthesized] | None) -> bool:
        """Real time: wait, until ``READ_WAIT_S`` after the step began, for an answer's first sentence's voice;
        True if it is ready (or there is none to wait for)."""
        if first is None or first.done():
            return True
        t0 = time.perf_counter()
        wait([first], timeout=max(0.0, self._step_t0 + READ_WAIT_S - t0))
        self._waited_s += time.perf_counter() - t0
        return first.done()

    def _voice_ready(self, answer: PreparedAnswer | None) -> bool:
        """Real time: the answer the step chose, which ``_respond`` will start, has its first sentence's voice
        (``_voice_by_deadline``). The events that start an answer say its sound starts in their reply; on a busy
        voice thread the line would pad that reply with silence instead, so the answer waits a chunk."""
        return answer is None or self._prepare_wait is None or self._voice_by_deadline(answer.first)

    def _finished_by_streaming(self, answer: PreparedAnswer) -> PreparedAnswer:
        """A read made before the voice ended may stop inside the last word and misread it ("Tell me about your
        four."), or just before it ("Can I get a new sword from"): the streaming words have heard the whole
        word. Where they agree with the read (``finish_cut_word``) and the finished words fit a topic better
        (or, if the read ended unfinished, end finished and fit as well or clearly), they are the answer's words."""
        policy = self.policy
        cut_short = looks_incomplete(answer.heard)
        if answer.choice is None or (answer.choice.similarity >= policy.sure_fit and not cut_short):
            return answer
        key = (answer.heard, self._partial)
        if self._finished is None or self._finished[0] != key:
            text = finish_cut_word(answer.heard, self._partial)
            better = None if text is None else self._answer_for(
                text, self.loaded, random.Random(self._turn_seed), self.game_state, self._previous_topic,
                self._after_interrupt, self._unsaid)
            fit, new_fit = answer.choice.similarity, better.choice.similarity if better and better.choice else -1.0
            if cut_short:
                good = text is not None and not looks_incomplete(text) and new_fit >= min(fit, policy.sure_fit)
            else:
                good = new_fit > fit
            better = better if good else None
            self._finished = (key, better)
        return self._finished[1] or answer

    def _turn_read(self) -> tuple[float, PreparedAnswer] | None:
        """A finished accurate read of the whole turn so far, as (the audio time it covers, its answer): the
        prepared read, or else the newest finished one if the player's voice had ended when it was taken (a
        read started after that only reads the same words with more silence, and may still be running)."""
        ready = self._ready_answer() if self._prepared is not None and self._prepared.done() else None
        if ready is not None:
            return self._prepared_covers, ready
        self._keep_finished_read()
        return self._latest if self._latest is not None and self._reads_whole_turn(self._latest[0]) else None

    def _keep_finished_read(self) -> None:
        """Remember the newest finished read of the turn: a newer one may still be running when it ends."""
        read = self._prepared
        if read is not None and _has_result(read):
            self._latest = (self._prepared_covers, read.result())

    def _read_ahead(self) -> None:
        """Keep an accurate read of the player's turn, and the answer to it, ready for the floor decision.

        While they talk, the words so far are read whenever a reading thread is idle (predictive: when the
        turn ends, the last such read usually holds all of it). Once the stretch fades (the voice-activity
        hangover has begun) or has ended, the answer needs a read that covers every voiced frame: if the
        prepared one does not, a new one starts at once. A read the player talked past still runs to its
        end; while it does, a fading stretch starts no second one (an ended stretch always does), so a
        session has at most two running. The stretch fades when the voice-activity model hears it fade, or
        when the voice has been quiet for ``QUIET_FADE_S`` by its loudness (the model hears it late)."""
        quiet = (self.steps + 1) * CHUNK_SECONDS - self._loud_end_s >= QUIET_FADE_S
        fading = self._in_speech and (self._below >= FADING_FRAMES or quiet)
        if self._in_speech and not fading:
            if self._turn_speech_s >= PREDICT_AFTER_S and (self._prepared is None or self._prepared.done()):
                self._keep_finished_read()  # the read it replaces may be the newest the projection gets
                self._submit_read(spare=True)
            return
        if self._covers(self._prepared):
            self._read_again()
            return
        if fading and self._reading is not None and not self._reading.done():
            return
        self._keep_finished_read()
        if self._prepared is not None:
            self._prepared.cancel()  # only if still queued; a finished read's answer and voice stay in _latest
        self._submit_read(spare=False)

    def _read_args(self) -> tuple[Any, ...]:
        """``_prepare`` and its arguments for a read of the turn's audio so far."""
        return (self._prepare, self._asr.audio(), self._partial, self.loaded, self._turn_seed,
                dict(self.game_state),  # a copy: the step thread keeps updating the live one
                self._previous_topic, self._after_interrupt, self._unsaid, self._carry)

    def _submit_read(self, spare: bool) -> None:
        args = self._read_args()
        read = self.res.read_ahead(*args) if spare else self.res.read(*args)
        if read is not None:
            self._prepared = self._reading = read
            self._prepared_covers = (self.steps + 1) * CHUNK_SECONDS  # all the audio up to this chunk's end
            self._prepared_at = started = time.perf_counter()
            read.add_done_callback(lambda f: self._timed_read(f, started))

    def _read_again(self) -> None:
        """A whole-turn read that fits nothing (below ``UNHEARD_FIT``) holds the floor open for the policy's long
        silence anyway. Once ``READ_AGAIN_AFTER_S`` of it has passed, the turn is read again on an idle reading
        thread, its readings pooled with the first read's: where the audio is cut changes what tiny.en hears
        in an unusual voice ("any pleats for seal?", then "...for sale?"). Offline, on four held-out case
        sets, this turned 5 of 47 such turns to the right topic and none away from it."""
        read = self._prepared
        if not _has_result(read):
            return
        answer = read.result()
        if (answer.choice is None or answer.reaction is not None or answer.choice.similarity >= UNHEARD_FIT
                or (self._again is not None and self._again[0] is answer)
                or (self.steps + 1) * CHUNK_SECONDS - self._loud_end_s < READ_AGAIN_AFTER_S):
            return
        args = self._read_args()
        again = self.res.read_ahead(*args, answer.readings)
        if again is not None:
            self._again = (answer, again)

    def _read_twice(self, answer: PreparedAnswer | None) -> PreparedAnswer | None:
        """The answer to start: the second read of ``answer``'s turn (``_read_again``) if it is done (waited for on
        the simulated clock). Only the answer changes, never when it starts: the wait was judged on the first
        read, so a pause's first half that reads better the second time is not answered sooner."""
        again = self._again
        if answer is None or again is None or again[0] is not answer:
            return answer
        if self._prepare_wait is None:
            wait([again[1]])
        return again[1].result() if _has_result(again[1]) else answer

    def _timed_read(self, read: Future[PreparedAnswer], started: float) -> None:
        """Worker thread: fold a finished read's time into the session's average (``_read_due``)."""
        if not read.cancelled():
            self._read_s += 0.3 * (time.perf_counter() - started - self._read_s)

    def _covers(self, read: Future[PreparedAnswer] | None) -> bool:
        """True if ``read`` (the prepared read) is of the whole turn so far."""
        return read is not None and self._reads_whole_turn(self._prepared_covers)

    def _reads_whole_turn(self, covers: float) -> bool:
        """A read of the audio up to ``covers`` holds the whole turn so far: up to where the voice last ended."""
        return min(self._voiced_end_s, self._loud_end_s) <= covers + COVER_SLACK_S

    def _read_stretch(self, more: bool = True) -> None:
        """Keep an accurate read of the player's speech over the NPC going, one at a time, each on the audio
        so far: it tells a backchannel said slowly from an interruption. ``more``: the stretch goes on, read
        it again once it has ``STRETCH_REREAD_S`` more speech, or at once if the last read heard nothing (a
        read that ends inside a word, "Sorry, st|", may be no speech to Whisper); else, once it has ended,
        one last read of all of it if the last one missed its end ("...stop"). Those two extra reads only
        for a stretch the duplex model hears as the player (the rules act on no other's words once it has
        ended, and the reads share one worker with every session's turns) that did not begin with the
        answer: the answer's own echo begins there too, and each read is a chance to misread it as the
        player going on (``BaselineTurnPolicy.goes_on``)."""
        if self._stretch_read is not None:
            covered, read = self._stretch_read
            if not read.done():
                return
            heard = read.exception() is None and bool(read.result().strip())  # an empty read says nothing
            if heard:
                self._stretch_heard = (covered, read.result())
            extra = self._extra_reads()
            soon = self._speech_s - covered < STRETCH_REREAD_S and (heard or not extra)
            if self._speech_s <= covered or (soon if more else not extra):
                return
        self._stretch_read = (self._speech_s, self.res.read(self.res.asr.transcribe, self._asr.audio()))

    def _player_p(self) -> float | None:
        """The duplex model's highest P(player) over the current stretch, if it runs in this step."""
        return self._stretch_player_p if self._model_ran else None

    def _extra_reads(self) -> bool:
        """The current stretch over the NPC earns ``_read_stretch``'s extra reads."""
        policy = self.policy
        heard = not isinstance(policy, BaselineTurnPolicy) or policy.hears_player(self._player_p())
        return heard and not self._stretch_at_onset

    def _stretch_words(self) -> str | None:
        """The latest read of the speech over the NPC, if it is recent enough to speak for it."""
        if self._stretch_read is not None and self._prepare_wait is None:
            self._stretch_read[1].exception()  # simulated clock: wait for the read, charged to this step
        if (self._stretch_read[1].done() if self._stretch_read is not None
                else self._speech_s >= STRETCH_READ_AFTER_S and self._extra_reads()):
            self._read_stretch(more=self._in_speech)  # take a finished read in (and start the next one)
        if self._stretch_heard is None or self._speech_s - self._stretch_heard[0] > STRETCH_STALE_S:
            return None
        return self._stretch_heard[1]

    def _prepare(self, audio: np.ndarray, fast: str, loaded: LoadedPersona, seed: float, state: dict[str, Any],
                 previous: str | None, after_interrupt: bool, unsaid: str, carry: str,
                 earlier: tuple[tuple[str, float], ...] = ()) -> PreparedAnswer:
        """Worker thread: accurate transcript, topic, line; the first sentence's voice follows on a worker.
        The read is primed with the persona's topic words: Whisper then hears "forge" and "longsword" where
        an unusual voice leaves it unsure (tiny.en misreads them as "forward", "long zone"); of its best
        readings, the persona's topics pick the one to answer, or pocketsphinx's words (``fast``) when no
        reading fits a topic and they do (``TopicMatcher.streaming_instead``). ``carry``: the turn's words
        before a pause the NPC yielded in, which these go on. ``earlier``: the readings of a first read of the
        same turn, which these compete with (``_read_again``)."""
        best: dict[str, float] = {}
        for text, score in (*earlier, *self.res.asr.readings(audio, prompt=loaded.prompt)):
            best[text] = max(score, best.get(text, score))
        readings = tuple(sorted(best.items(), key=lambda r: -r[1]))
        read = loaded.matcher.pick_reading(list(readings)) if readings else fast

        def answer(words: str) -> PreparedAnswer:
            heard = " ".join(f"{carry} {words}".split())
            return self._answer_for(heard, loaded, random.Random(seed), state, previous, after_interrupt, unsaid)

        prepared = answer(read)
        if read != fast and prepared.choice is not None and loaded.matcher.streaming_instead(
                prepared.choice.similarity, fast):
            prepared = answer(fast)
        return replace(prepared, readings=readings)

    def _answer_for(self, heard: str, loaded: LoadedPersona, rng: random.Random, state: dict[str, Any],
                    previous: str | None, after_interrupt: bool, unsaid: str = "") -> PreparedAnswer:
        """The answer to ``heard``; the previous answer's follow-ups win near-ties. A turn that only cut
        the NPC off ("wait, hold on") gets the persona's ``interrupted`` reaction: it asks them to go on;
        one that was only "mm-hm" after all (taken for an interruption) lets it take up its line again."""
        if not heard:
            return PreparedAnswer(heard="", choice=None, text="", first=None)
        if after_interrupt and unsaid and is_backchannel(heard):
            return PreparedAnswer(heard=heard, choice=None, text=unsaid, first=self._voice_ahead(unsaid),
                                  reaction="resume")
        if after_interrupt and not strip_discourse(heard):
            reaction = loaded.persona.reaction("interrupted", state, rng)
            if reaction is not None:
                return PreparedAnswer(heard=heard, choice=None, text=reaction.text, emotion=reaction.emotion,
                                      first=self._voice_ahead(reaction.text), reaction="interrupted")
        choice, _ = loaded.matcher.match_after(heard, previous)
        line = loaded.persona.choose_line(choice.topic, state, rng)
        text = line.text
        return PreparedAnswer(heard=heard, choice=choice, text=text, first=self._voice_ahead(text),
                              sentiment=analyse(heard), emotion=line.emotion)

    def _voice_ahead(self, text: str) -> Future[Synthesized]:
        """The line's first sentence synthesised on the voice thread: the floor decision needs only the words.
        Successive reads of one turn mostly choose the same line: its voice is made once."""
        first = split_sentences(text)[0]
        with self._voice_lock:
            if self._voiced is not None and self._voiced[0] == first and not self._voiced[1].cancelled():
                return self._voiced[1]
            voice = self.res.voices.submit(self._synth, first)
            self._voiced = (first, voice)
            return voice

    def _ready_answer(self, wait: float = 0.0) -> PreparedAnswer | None:
        """The prepared answer if it is of the whole turn so far and done (waiting up to ``wait`` s for it)."""
        if not self._covers(self._prepared):
            return None
        try:
            return self._prepared.result(timeout=wait)
        except TimeoutError:
            return None
        except Exception:  # a failed second pass must not end the conversation
            log.exception("preparing the answer failed; using the streaming transcript")
            self._prepared = None
            return None

    def _drop_prepared(self) -> None:
        if self._prepared is not None:
            if not self._prepared.cancel() and self._prepared.done() and self._prepared.exception() is None:
                first = self._prepared.result().first
                if first is not None:
                    first.cancel()  # its voice is not needed either
            self._prepared = None

    def _reset_turn(self) -> None:
        self._turn_speech_s = 0.0
        self._latest = self._p_end = self._finished = None
        if self._again is not None:
            self._again[1].cancel()  # only if still queued
            self._again = None
        self._turn_seed = self._rng.random()
        with self._voice_lock:
            self._voiced = None  # the next turn's voice follows the NPC's feelings then
        self._backchannel_mark_s = 0.0
        self._partial = ""
        self._drop_prepared()
        if self._asr.in_utterance:
            self._asr.finish(accurate=False)

    # ------------------------------------------------------------------ acting

    def _voice(self) -> VoiceSettings:
        """The persona's voice, shifted by what the NPC feels now."""
        return self.loaded.persona.voice.settings(self.feelings.voice_shift())  # scaled by emotion_shift

    def _synth(self, text: str) -> Synthesized:
        utt = self.res.tts.synthesize(text, self._voice())
        return utt.audio, utt.words, utt.visemes

    def _act(self, action: Action, events: list[ev.Event],
             projected: tuple[PreparedAnswer, float, float] | None = None,
             ready: PreparedAnswer | None = None) -> np.ndarray:
        if action is Action.RESPOND or (self._line is None and self._turn_speech_s > MAX_TURN_S):
            self._respond(events, projected, ready)
        elif action is Action.INTERRUPTED and self._line is not None:
            line = self._line
            if self._stretch_at_onset:  # the player was going on with their turn: it goes on from its words
                self._carry = self._restore_turn()
            else:
                self._unsaid, self._after_interrupt = line.unsaid(), True
            line.cancel()
            self._line = None
            events.append(ev.Interrupted(offset=0.0, line_id=line.line_id, heard=self._partial))
            events.append(ev.SpeechEnd(offset=0.0, line_id=line.line_id, completed=False))
            self._stretch_handled = True
        elif action is Action.BACKCHANNEL and not self._stretch_handled:
            self._stretch_handled = True
            if not self._stretch_held and self._heard_player():
                events.append(ev.Backchannel(heard=self._partial))
            self._stretch_held = False
            self._reset_turn()
        return self._speak(events)

    def _respond(self, events: list[ev.Event], projected: tuple[PreparedAnswer, float, float] | None = None,
                 ready: PreparedAnswer | None = None) -> None:
        """Start the prepared answer; if the accurate pass is late, wait a little, then answer without it.
        ``projected``: the answer to a turn projected over, its lead-in and when its first sound plays (s,
        after the chunk's end): the turn stays open until the next step shows the player is done. ``ready``:
        the read's answer the step judged the turn on (and checked the voice of); a read that finishes after
        that judgement must not replace it."""
        lead = starts_in = 0.0
        if projected is not None:
            answer, lead, starts_in = projected
            self._projected = _Projected(
                starts_in=starts_in, loud_db=max(self._stretch_peak_db - LOUD_RANGE_DB, SILENCE_DB))
        else:
            if ready is None:
                read = self._turn_read()
                ready = read[1] if read is not None else None
            answer = ready
            if answer is None:
                heard = " ".join(f"{self._carry} {self._partial}".split())
                answer = self._answer_for(heard, self.loaded, self._rng, self.game_state, self._previous_topic,
                                          self._after_interrupt, self._unsaid)
        before = (self._previous_topic, self._after_interrupt, self._unsaid)
        if self._prepared is not None:
            self._prepared.cancel()  # a newer read still queued is not needed (a running or finished one stays)
        self._prepared = None  # taken: resetting the turn must not cancel its voice
        if projected is None:
            self._reset_turn()
        self._stretch_handled = True
        self._after_interrupt, self._unsaid, self._carry = False, "", ""
        if answer.choice is None and answer.reaction is None:
            return
        events.append(ev.Transcript(text=answer.heard, final=True))
        if answer.sentiment is not None:
            self.feelings.update(0.0, text_sentiment=answer.sentiment)
        if answer.emotion:
            self.feelings.update(0.0, line_tags=[answer.emotion])
        line_id = self._new_line_id()
        # A "resume" has neither: the NPC goes on with its line, and speech_start says what it says.
        if answer.reaction == "interrupted":
            events.append(ev.Bark(offset=0.0, kind="interrupted", line_id=line_id, text=answer.text))
        elif answer.choice is not None:
            self._onset = _Onset(line_id, (self.steps + 1) * CHUNK_SECONDS + starts_in, answer.heard, *before)
            self._previous_topic = answer.choice.topic
            events.append(ev.Response(offset=round(lead, 3), topic=answer.choice.topic, text=answer.text,
                                      confidence=round(answer.choice.similarity, 3), heard=answer.heard))
        if answer.first is not None and self._prepare_wait is None:
            answer.first.result()  # simulated clock: the voice's time is charged to this step, as a wait would be
        self._start_line(line_id, answer.text, answer.first, events, lead)

    def _restore_turn(self) -> str:
        """Yielding at the answer's onset: the turn state goes back to what it was before the answer; returns
        the words the answer was to."""
        onset, self._onset = self._onset, None
        if onset is None:
            return ""
        self._previous_topic, self._after_interrupt = onset.previous_topic, onset.after_interrupt
        self._unsaid = onset.unsaid
        return onset.heard

    def _new_line_id(self) -> str:
        return f"{self.npc_id}-{next(self._line_ids)}"

    def _start_line(self, line_id: str, text: str, first: Synthesized | Future[Synthesized] | None,
                    events: list[ev.Event], lead_in: float = 0.0) -> None:
        self._line = LineStream(line_id, text, self._synth, self.res.voices, first=first, lead_in=lead_in)
        self._line_step = self.steps
        self._aside = None
        self._stretch_player_p = 0.0  # the player's voice before the line does not speak for what comes over it
        events.append(ev.SpeechStart(offset=round(lead_in, 3), line_id=line_id, text=text))

    # ------------------------------------------------------------------ temperament

    def _cued(self, cue: Cue) -> None:
        """The game says the player came near or left: greet them (a terse NPC not always), or see them off."""
        temper = self.loaded.persona.temperament
        self._drop_bark()
        self._quiet_s = 0.0
        self._near = cue == "greeting"
        if cue == "greeting" and self._rng.random() < 0.5 + 0.5 * temper.talkativeness:
            self._queue_bark("greeting")
        elif cue == "farewell" and self._line is None:
            self._queue_bark("farewell")

    def _temperament(self, action: Action, events: list[ev.Event]) -> None:
        """What the persona's temperament adds to the floor decision: it holds the floor against a cut-in it
        does not yield to, says its own "mm-hm" in the player's pauses, and barks when the floor is free."""
        if self._line is not None:
            self._quiet_s = 0.0
            # A cut-in it does not yield to, heard while it lasts or as it ends ("wait" is often only
            # recognised once said): "Let me finish."
            cut_in = (self._speech_s >= HOLD_FLOOR_MIN_S and not self._stretch_handled and not self._stretch_held
                      and self._obs is not None and heard_cue(self._obs) and self._heard_player())
            if cut_in and action in (Action.CONTINUE, Action.BACKCHANNEL) and self._held_line != self._line.line_id:
                self._hold_floor(events)
            return
        if self._in_speech or (self._turn_speech_s > 0 and self._silence_s < 1.5) or action is Action.RESPOND:
            self._quiet_s = 0.0
            self._drop_bark()  # the player has the floor: a greeting that waited is stale now
            if action is Action.LISTEN:
                self._offer_backchannel(events)
            return
        self._quiet_s += CHUNK_SECONDS
        if self._near and self._bark is None and self._quiet_s >= self._idle_after_s:
            self._queue_bark("idle")
            self._quiet_s = 0.0
            self._idle_after_s = self._next_idle_after()
        if self._bark is not None and self._bark.done():
            bark = self._bark.result()
            self._bark = None
            if bark is not None:
                line_id = self._new_line_id()
                events.append(ev.Bark(offset=0.0, kind=bark.kind, line_id=line_id, text=bark.text))  # type: ignore[arg-type]
                self._start_line(line_id, bark.text, bark.first, events)

    def _hold_floor(self, events: list[ev.Event]) -> None:
        """An impatient NPC does not yield to a cut-in: "Let me finish." and it takes up its sentence again."""
        assert self._line is not None
        self._held_line = self._line.line_id
        line = self.loaded.persona.reaction("holds_floor", self.game_state, self._rng)
        if line is None:
            return
        self._line.interject(self._synth(line.text))
        self._stretch_held = True  # the cut-in was answered; when it ends it is dropped, not a backchannel
        events.append(ev.Bark(offset=0.0, kind="holds_floor", line_id=self._line.line_id, text=line.text))

    def _offer_backchannel(self, events: list[ev.Event]) -> None:
        """The NPC's own "mm-hm" in a pause of a player who is not done: the accurate words so far need more
        ("...and then I went to the"). Never after words that may end the turn, where it would sound like
        the start of an answer (the streaming words are too often misheard to judge that)."""
        rate = self.loaded.persona.temperament.backchannel_rate
        if rate <= 0 or not self.loaded.persona.reactions.get("backchannel"):
            return
        if self._own_backchannel is None:  # synthesised ahead: a pause is over before a synthesis would be
            self._own_backchannel = self.res.voices.submit(
                self._bark_line, "backchannel", self.loaded, dict(self.game_state), self._rng.random())
        lo, hi = OWN_BACKCHANNEL_PAUSE_S
        if (self._aside is not None or self._in_speech or not lo <= self._silence_s < hi
                or self._turn_speech_s - self._backchannel_mark_s < OWN_BACKCHANNEL_AFTER_S):
            return
        read = self._ready_answer(wait=self._prepare_wait)
        if read is None or not looks_incomplete(read.heard):
            return
        self._backchannel_mark_s = self._turn_speech_s  # one chance per pause, taken or not
        if self._rng.random() >= rate or not self._own_backchannel.done():
            return
        bark = self._own_backchannel.result()
        self._own_backchannel = None
        if bark is not None:
            line_id = self._new_line_id()
            self._aside = LineStream(line_id, bark.text, self._synth, self.res.voices, first=bark.first)
            events.append(ev.Bark(offset=0.0, kind="backchannel", line_id=line_id, text=bark.text))

    def _queue_bark(self, kind: str) -> None:
        self._bark = self.res.voices.submit(
            self._bark_line, kind, self.loaded, dict(self.game_state), self._rng.random())

    def _drop_bark(self) -> None:
        if self._bark is not None:
            self._bark.cancel()
            self._bark = None

    def _bark_line(self, kind: str, loaded: LoadedPersona, state: dict[str, Any], seed: float) -> PreparedBark | None:
        """Worker thread: a bark (greeting, idle, farewell) or reaction line, its first sentence synthesised."""
        persona, rng = loaded.persona, random.Random(seed)
        line = persona.bark(kind, state, rng) if kind in persona.barks else persona.reaction(kind, state, rng)
        if line is None:
            return None
        return PreparedBark(kind=kind, text=line.text, first=self._synth(split_sentences(line.text)[0]))

    def _next_idle_after(self) -> float:
        terse, chatty = IDLE_AFTER_S
        t = self.loaded.persona.temperament.talkativeness
        return (terse + (chatty - terse) * t) * self._rng.uniform(0.67, 1.33)

    def _speak(self, events: list[ev.Event]) -> np.ndarray:
        stream = self._line or self._aside
        if stream is None:
            return silence()
        chunk = stream.next_chunk()
        if chunk.words:
            events.append(ev.Words(offset=0.0, words=chunk.words))
        if chunk.visemes:
            events.append(ev.Visemes(offset=0.0, visemes=chunk.visemes))
        if chunk.finished and stream is self._aside:
            self._aside = None  # an aside has no speech_start/speech_end: the floor stayed with the player
        elif chunk.finished:
            end = float(np.flatnonzero(chunk.pcm).max() + 1) / SAMPLE_RATE if chunk.pcm.any() else 0.0
            events.append(ev.SpeechEnd(offset=round(end, 3), line_id=stream.line_id, completed=True))
            self._line = None
        assert len(chunk.pcm) == CHUNK_SAMPLES
        return chunk.pcm


def _block_db(pcm: np.ndarray) -> np.ndarray:
    """Level (dBFS) of each LOUD_BLOCK of int16 ``pcm``."""
    blocks = pcm.astype(np.float32).reshape(-1, LOUD_BLOCK) / 32768.0
    return 10.0 * np.log10(np.mean(blocks * blocks, axis=1) + 1e-10)
