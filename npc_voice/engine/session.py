"""The micro-turn engine: one conversation's state and its step per 200 ms chunk.

A step takes the player's microphone chunk and what the loudspeaker played meanwhile, and returns
the next 200 ms of NPC audio plus events. Inside, the data path runs in order:

    echo cancelling -> voice activity -> streaming recognition -> floor decision -> speech out -> events

Recognition advances every chunk; at the first silent chunk after speech an accurate second pass is
started in the background, so when the floor policy decides the turn is over the transcript and
the answer's first sentence are ready in that same step. Memory stays flat: the only growing
buffers (turn audio, transcript) are bounded and reset at every turn.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from npc_voice import events as ev
from npc_voice.audio.echo import EchoCanceller
from npc_voice.audio.format import CHUNK_SAMPLES, CHUNK_SECONDS, SAMPLE_RATE, silence
from npc_voice.engine.resources import EngineResources, LoadedPersona
from npc_voice.features.asr import StreamingRecognizer
from npc_voice.features.vad import VoiceActivity
from npc_voice.model.turntaking import Action, BaselineTurnPolicy, FloorObservation, is_backchannel
from npc_voice.persona.loader import FALLBACK
from npc_voice.speech.stream import LineStream
from npc_voice.speech.tts import VoiceSettings

log = logging.getLogger(__name__)

FRAME_S = 512 / SAMPLE_RATE
SPEECH_ON = 0.5
SPEECH_OFF = 0.3
HANGOVER_FRAMES = 3  # ~100 ms below SPEECH_OFF before a stretch of speech ends
MAX_TURN_S = 20.0  # a turn longer than this is answered anyway
PREROLL_CHUNKS = 1  # audio before the onset given to the recogniser


@dataclass
class StepResult:
    """The reply to one microphone chunk."""

    pcm: np.ndarray
    events: list[ev.Event] = field(default_factory=list)
    compute_ms: float = 0.0


class Session:
    """One NPC conversation."""

    def __init__(
        self,
        resources: EngineResources,
        persona_id: str,
        npc_id: str,
        state: dict[str, Any] | None = None,
        seed: int | None = None,
    ) -> None:
        self.res = resources
        self.persona_id, self.npc_id = persona_id, npc_id
        self.loaded: LoadedPersona = resources.persona(persona_id)
        self.game_state: dict[str, Any] = dict(state or {})
        self.policy = BaselineTurnPolicy()
        self._rng = random.Random(seed)
        self._aec = EchoCanceller()
        self._vad = VoiceActivity(resources.vad)
        self._asr = StreamingRecognizer(resources.asr, self.loaded.lm)
        self._line_ids = itertools.count(1)
        self._line: LineStream | None = None
        # player speech tracking (frame resolution)
        self._in_speech = False
        self._below = 0
        self._speech_s = 0.0
        self._silence_s = 0.0
        self._turn_speech_s = 0.0
        self._turn_audio: list[np.ndarray] = []
        self._prev_chunk = silence()
        self._partial = ""
        self._final: Future[str] | None = None
        self._final_len = 0
        self._stretch_handled = False
        self._interrupted_turn = False
        self.steps = 0

    # ------------------------------------------------------------------ public

    def step(
        self, mic: np.ndarray, played: np.ndarray | None, state: dict[str, Any] | None = None
    ) -> StepResult:
        """Advance the conversation by one 200 ms chunk."""
        t0 = time.perf_counter()
        if state:
            self.game_state.update(state)
        self._refresh_persona()
        events: list[ev.Event] = []
        clean = self._aec.process(mic, played)
        probs = self._vad.process(clean)
        started = self._track_speech(probs)
        self._recognise(clean, started, events)

        obs = FloorObservation(
            npc_speaking=self._line is not None,
            in_speech=self._in_speech,
            speech_s=self._speech_s,
            silence_s=self._silence_s,
            turn_speech_s=self._turn_speech_s,
            words=self._partial,
        )
        action = self.policy.decide(obs)
        pcm = self._act(action, events)
        self._prev_chunk = clean
        self.steps += 1
        return StepResult(pcm=pcm, events=events, compute_ms=(time.perf_counter() - t0) * 1000)

    def close(self) -> None:
        if self._line is not None:
            self._line.cancel()
        self._asr.close()

    # ------------------------------------------------------------------ hearing

    def _refresh_persona(self) -> None:
        """Pick up an edited persona file between turns."""
        if self._line is not None or self._turn_speech_s > 0:
            return
        try:
            loaded = self.res.persona(self.persona_id)
        except (KeyError, ValueError) as exc:
            log.warning("persona %s: keeping the last good version: %s", self.persona_id, exc)
            return
        if loaded is not self.loaded:
            self.loaded = loaded
            self._asr.set_language_model(loaded.lm)

    def _track_speech(self, probs: np.ndarray) -> bool:
        """Update speech/silence durations from per-frame VAD; True if a stretch began in this chunk."""
        started = False
        for p in probs:
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
                self._speech_s += FRAME_S
                self._turn_speech_s += FRAME_S
            else:
                if p >= SPEECH_ON:
                    self._in_speech = True
                    started = True
                    self._speech_s = FRAME_S
                    self._turn_speech_s += FRAME_S
                    self._silence_s = 0.0
                    self._stretch_handled = False
                else:
                    self._silence_s += FRAME_S
        return started

    def _recognise(self, clean: np.ndarray, started: bool, events: list[ev.Event]) -> None:
        """Stream the chunk into the recogniser; start the accurate pass at the first silent chunk."""
        active = self._turn_speech_s > 0
        if started and not self._asr.active:
            self._asr.start()
            self._turn_audio = [self._prev_chunk]
            self._asr.feed(self._prev_chunk)
        if not active or not self._asr.active:
            return
        self._turn_audio.append(clean)
        max_chunks = int(MAX_TURN_S / CHUNK_SECONDS)
        if len(self._turn_audio) > max_chunks:
            self._turn_audio = self._turn_audio[-max_chunks:]
        partial = self._asr.feed(clean)
        if partial != self._partial and partial:
            self._partial = partial
            events.append(ev.Transcript(text=partial, final=False))
        if not self._in_speech and self._final is None and self._line is None:
            audio = np.concatenate(self._turn_audio)
            self._final = self._asr.submit_final(audio)
            self._final_len = len(self._turn_audio)
        elif self._in_speech and self._final is not None:
            self._final.cancel()
            self._final = None

    def _final_text(self) -> str:
        """Best transcript of the finished turn: the accurate pass if ready, else the streaming one."""
        text = ""
        if self._final is not None:
            try:
                text = self._final.result(timeout=0.1)
            except Exception as exc:  # noqa: BLE001 - a failed second pass falls back to the streaming text
                log.debug("second pass unavailable: %s", exc)
        streaming = self._asr.finish()
        return " ".join((text or streaming or self._partial).split())

    def _reset_turn(self) -> None:
        self._turn_speech_s = 0.0
        self._turn_audio = []
        self._partial = ""
        self._final = None
        if self._asr.active:
            self._asr.finish()

    # ------------------------------------------------------------------ acting

    def _voice(self) -> VoiceSettings:
        v = self.loaded.persona.voice
        return VoiceSettings(
            voice=v.voice, pitch=v.pitch, rate=v.rate, volume=v.volume, pitch_range=v.pitch_range
        )

    def _synth(self, text: str) -> tuple[np.ndarray, list[tuple[float, str]], list[tuple[float, str]]]:
        utt = self.res.tts.synthesize(text, self._voice())
        return utt.audio, utt.words, utt.visemes

    def _start_line(self, text: str) -> str:
        line_id = f"{self.npc_id}-{next(self._line_ids)}"
        self._line = LineStream(line_id, text, self._synth, self.res.workers)
        return line_id

    def _act(self, action: Action, events: list[ev.Event]) -> np.ndarray:
        if action is Action.RESPOND or (self._line is None and self._turn_speech_s > MAX_TURN_S):
            self._respond(events)
        elif action is Action.INTERRUPTED and self._line is not None:
            line = self._line
            line.cancel()
            self._line = None
            events.append(ev.Interrupted(offset=0.0, line_id=line.line_id, heard=self._partial))
            events.append(ev.SpeechEnd(offset=0.0, line_id=line.line_id, completed=False))
            self._interrupted_turn = True
        elif action is Action.BACKCHANNEL and not self._stretch_handled:
            self._stretch_handled = True
            events.append(ev.Backchannel(heard=self._partial))
            if is_backchannel(self._partial) or self._speech_s <= self.policy.backchannel_max_s:
                self._reset_turn()
        return self._speak(events)

    def _respond(self, events: list[ev.Event]) -> None:
        heard = self._final_text()
        self._reset_turn()
        self._interrupted_turn = False
        if not heard:
            return
        events.append(ev.Transcript(text=heard, final=True))
        choice = self.loaded.matcher.match(heard)
        topic = self.loaded.persona.topics.get(choice.topic) or self.loaded.persona.topics[FALLBACK]
        text = self._rng.choice(topic.lines)
        line_id = self._start_line(text)
        events.append(
            ev.Response(
                offset=0.0, topic=choice.topic, text=text, confidence=round(choice.similarity, 3), heard=heard
            )
        )
        events.append(ev.SpeechStart(offset=0.0, line_id=line_id, text=text))

    def _speak(self, events: list[ev.Event]) -> np.ndarray:
        if self._line is None:
            return silence()
        chunk = self._line.next_chunk()
        if chunk.words:
            events.append(ev.Words(offset=0.0, words=chunk.words))
        if chunk.visemes:
            events.append(ev.Visemes(offset=0.0, visemes=chunk.visemes))
        if chunk.finished:
            end = float(np.flatnonzero(chunk.pcm).max() + 1) / SAMPLE_RATE if chunk.pcm.any() else 0.0
            events.append(ev.SpeechEnd(offset=round(end, 3), line_id=self._line.line_id, completed=True))
            self._line = None
        assert len(chunk.pcm) == CHUNK_SAMPLES
        return chunk.pcm
