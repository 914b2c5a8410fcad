"""Who the player's speech is for: the evidence the floor's ``not_addressed`` rules judge, and the player's voice
profile they judge it against."""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Executor, Future

import numpy as np

from npc_voice.config import AddresseeConfig
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.stages.speech_tracking import block_db
from npc_voice.engine.state import MAX_LEVEL_FRAMES, AddresseeState, HearingState, TurnState
from npc_voice.features.asr import StreamingRecognizer
from npc_voice.floor.decision import Action
from npc_voice.floor.evidence import not_addressed
from npc_voice.floor.observation import Addressee

FRAME = 160  # 10 ms
WINDOW = 512  # 32 ms Hann windows every 10 ms: a syllable's fall, not the ripple of single pitch periods
LOUD_RANGE_DB = 30.0  # frames this far below the loudest are not voice (levels, drops, the embedding's audio)
QUIET_FRAMES = 300  # the room's noise: its level over the last 3 s without voice
_HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)).astype(np.float32)


def frame_levels(tail: np.ndarray, chunk: np.ndarray) -> np.ndarray:
    """Level (dB re full scale of a windowed frame) of each 10 ms step of ``chunk``, each frame a 32 ms Hann window
    ending there (``tail``: the ``WINDOW - FRAME`` samples before the chunk)."""
    x = np.concatenate([tail, chunk]).astype(np.float32) / 32768.0
    n = len(chunk) // FRAME
    idx = np.arange(WINDOW)[None, :] + FRAME * np.arange(n)[:, None]
    energy = np.sum((x[idx] * _HANN) ** 2, axis=1) / np.sum(_HANN**2)
    return 10 * np.log10(energy + 1e-10)


def level_and_fall(levels: list[float]) -> tuple[float | None, float | None]:
    """The loud frames' level (90th percentile, dBFS) and how fast the voice falls: the 90th percentile of the
    drops from one 10 ms step to the next (32 ms windows, ``frame_levels``) among frames within ``LOUD_RANGE_DB``
    of the loudest (a gap between chunks, nan, is not a drop). A dry voice near the microphone drops 4-8 dB a
    step at the end of a syllable; reverberation holds the energy up: a voice metres off or across a hall, or a
    TV in the room, drops 2-3 dB."""
    x = np.array(levels, dtype=np.float64)
    ok = np.isfinite(x)
    if ok.sum() < 10:
        return None, None
    top = float(np.max(x[ok]))
    level = float(np.percentile(x[ok], 90))
    a, b = x[:-1], x[1:]
    pair = np.isfinite(a) & np.isfinite(b) & (a >= top - LOUD_RANGE_DB)
    drops = (a - b)[pair & (b < a)]
    return level, (float(np.percentile(drops, 90)) if drops.size >= 5 else None)


def tilt(clean: np.ndarray) -> float | None:
    """2-5 kHz over 0.3-1 kHz energy of a chunk (dB): a voice far off, or out of a small loudspeaker, is duller."""
    spec = np.abs(np.fft.rfft(clean.astype(np.float32))) ** 2
    f = np.fft.rfftfreq(len(clean), 1 / 16000)
    low, high = spec[(f >= 300) & (f < 1000)].sum(), spec[(f >= 2000) & (f < 5000)].sum()
    return None if low <= 0 else float(10 * np.log10(high / low + 1e-12))


class AddresseeEvidence:
    """Gather, while the player speaks, what says whether the speech is for the NPC: what the game says (the
    ``mic`` message's ``attention``; the push-to-talk key), the voice's 10 ms levels, and once a stretch fades
    with enough speech in it, its speaker embedding (on the speaker thread, ~0.1 s) against the player's profile.
    A stretch that begins over the NPC is judged on its own."""

    def __init__(self, config: AddresseeConfig, state: AddresseeState, hearing: HearingState, turn: TurnState,
                 recognizer: StreamingRecognizer, npc_speaking: Callable[[], bool],
                 embed: Callable[[np.ndarray], np.ndarray] | None, executor: Executor | None) -> None:
        self.config, self.state, self.hearing, self.turn, self.recognizer = config, state, hearing, turn, recognizer
        self.npc_speaking, self.embed, self.executor = npc_speaking, embed, executor
        self.tilts: list[float] = []
        self.tail = np.zeros(WINDOW - FRAME, np.int16)  # the last samples of the chunk before
        self.quiet: list[float] = []  # 10 ms levels of the last quiet chunks (the room's noise)

    def run(self, frame: StepFrame) -> None:
        s, h = self.state, self.hearing
        if frame.attention is not None:
            s.attention = frame.attention
        if frame.started and self.npc_speaking():
            s.reset()  # speech over the NPC: judged on its own
            self.tilts = []
        assert frame.clean is not None
        tail, self.tail = self.tail, frame.clean[-(WINDOW - FRAME) :]
        voiced = frame.started or frame.was_speaking or h.in_speech
        if not voiced:
            # the room between voices: its level is what the voice's falls are measured against
            self.quiet = [*self.quiet, *frame_levels(tail, frame.clean).tolist()][-QUIET_FRAMES:]
            return
        s.away = s.away or s.attention.away
        s.key_held = s.key_held or bool(frame.talking)
        s.levels += [math.nan, *frame_levels(tail, frame.clean).tolist()]
        del s.levels[:-MAX_LEVEL_FRAMES]
        s.speech_s = h.speech_s if self.npc_speaking() else self.turn.speech_s
        t = tilt(frame.clean)
        if t is not None:
            self.tilts.append(t)
        fading = not h.in_speech or h.below >= 1 or h.quiet_for(frame.end_s) >= 0.08
        if (fading and self.embed is not None and self.executor is not None
                and s.speech_s >= self.config.profile_speech_s and s.speech_s - s.embedded_s >= 0.3):
            if s.embedding is not None:
                s.embedding.cancel()
            voice = self._voice(self.recognizer.audio())
            s.embedding, s.embedded_s = self.executor.submit(self.embed, voice), s.speech_s

    @staticmethod
    def _voice(audio: np.ndarray) -> np.ndarray:
        """The audio's voiced 10 ms blocks only: pauses and room noise say nothing of who speaks."""
        n = len(audio) // FRAME * FRAME
        if n == 0:
            return audio
        blocks = audio[:n].reshape(-1, FRAME)
        db = block_db(audio[:n], FRAME)
        return blocks[db >= db.max() - LOUD_RANGE_DB].reshape(-1)

    def evidence(self) -> Addressee:
        """What the floor judges: the turn's (or stretch's) evidence so far."""
        s = self.state
        level, fall = level_and_fall(s.levels)
        similarity = None
        voice = s.voice()
        if voice is not None and s.embedding is not None and s.embedding.done() and not s.embedding.cancelled() \
                and s.embedding.exception() is None:
            similarity = float(np.dot(voice, s.embedding.result()))
        noise = float(np.median(self.quiet)) if len(self.quiet) >= 20 else None
        return Addressee(
            away=s.away, key_up=s.push_to_talk and not s.key_held, speech_s=s.speech_s, level_db=level,
            snr_db=None if level is None or noise is None else level - noise,
            player_level_db=float(np.median(s.profile_levels)) if s.profile_levels else None, fall_db=fall,
            tilt_db=float(np.median(self.tilts)) if self.tilts else None, voice_similarity=similarity)


class PlayerProfile:
    """The player's voice, learnt from the turns the NPC answers that were addressed to it: the first
    ``profile_turns`` such turns' speaker embeddings and levels. Runs after the floor decided, before the answer
    starts (which ends the turn)."""

    def __init__(self, config: AddresseeConfig, state: AddresseeState, gather: AddresseeEvidence) -> None:
        self.config, self.state, self.gather = config, state, gather
        self.pending: list[tuple[Future[np.ndarray], float | None]] = []  # an answered turn's embedding, level

    def run(self, frame: StepFrame) -> None:
        s, c = self.state, self.config
        for future, level in [p for p in self.pending if p[0].done()]:
            self.pending.remove((future, level))
            if not future.cancelled() and future.exception() is None and len(s.profile) < c.profile_turns:
                s.profile.append(future.result())
                if level is not None:
                    s.profile_levels.append(level)
        if frame.decision.action is not Action.RESPOND or s.folded or len(s.profile) >= c.profile_turns:
            return
        evidence = self.gather.evidence()
        if s.embedding is None or not_addressed(evidence, c) is not None:
            return
        s.folded = True
        self.pending.append((s.embedding, evidence.level_db))
        s.embedding = None  # the turn's reset must not cancel it
