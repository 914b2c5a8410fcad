"""Emotion in and out: the player's tone of voice, the NPC's feelings, and when to tell the game.

- ``ToneModel``: a small torch MLP over the utterance-level prosody vector (``features.prosody``)
  plus the same vector relative to the player's own session baseline; one per process.
- ``PlayerTone`` (per session): chunk in, ``ToneEstimate`` out (category, probabilities,
  arousal, valence, intensity), and a final estimate when the stretch of speech ends.
- ``NpcFeelings`` (per session): a pleasure-arousal-dominance state that rests at the persona's
  baseline mood, is pushed by the player's tone and words, the game state and the NPC's own line
  tags, and decays back; it also says how the NPC's eSpeak voice should shift.
- ``EmotionChange``: decides when an ``events.Emotion`` is due, so the game hears about changes,
  not a stream of near-identical estimates.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from scipy.special import erf
from torch import nn

from npc_voice.data import model_dir
from npc_voice.events import Emotion
from npc_voice.features.prosody import BASELINE_INDEX, FEATURE_NAMES, ProsodyTracker
from npc_voice.model.sentiment import TextSentiment
from npc_voice.model.voice_tone import VoiceToneModel, mix

MODEL_DIR = model_dir("emotion")  # package data: models/emotion in the repository
CLASSES: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fearful", "surprised")
# Where each category sits in valence (the tone model only says how sure it is of each category).
CLASS_VALENCE = np.array([0.1, 0.8, -0.6, -0.7, -0.6, 0.3], dtype=np.float32)
BASELINE_PRIOR_WEIGHT = 1.0  # the population prior counts as this many of the player's utterances
# The utterance being judged joins the player's baseline with this weight: the first turn is read against the
# speaker's own voice (half of it: the rest is the population's), not against a blank average speaker.
SELF_WEIGHT = 1.0
# Absolute level is the microphone's gain, not the player's mood (a headset at -20 dBFS read as shouting next
# to RAVDESS's studio level): it reaches the model only relative to the player's own level.
LEVEL_NAMES: tuple[str, ...] = ("loud_p90_db",)
LEVEL_INDEX = np.array([FEATURE_NAMES.index(n) for n in LEVEL_NAMES])
_LEVEL_IN_BASELINE = np.array([list(BASELINE_INDEX).index(i) for i in LEVEL_INDEX])
_ABSOLUTE_INDEX = np.array([i for i in range(len(FEATURE_NAMES)) if i not in set(LEVEL_INDEX.tolist())])
MIN_SPEECH_S = 0.6  # no verdict on less speech than this


@dataclass(frozen=True)
class ToneCalibration:
    """How the model's acted-speech probabilities become a reading of ordinary conversation."""

    # Class priors of ordinary conversation, which is mostly plain speech (neutral first, then mild happiness;
    # anger and fear are rare). The model's probabilities are re-weighted from its training priors to these
    # (Bayes' rule), instead of assuming a player is as often angry as a RAVDESS actor.
    natural_prior: tuple[float, ...] = (0.60, 0.10, 0.08, 0.06, 0.06, 0.10)
    # A category other than neutral that is less likely than this is reported as neutral: unsure means neutral,
    # not a confident wrong class (the intensity still says how far from plain the voice was). Prosody alone
    # (the running readings while the player talks): at 0.4 LibriSpeech readers were read angry in 2 turns of 12.
    unsure_below: float = 0.5
    # The same for a verdict with the voice read (``model/voice_tone.py``), which is surer where it is right:
    # held-out actors' acted anger found 0.55 at 0.5, 0.69 at 0.4 (RAVDESS folds).
    unsure_below_voice: float = 0.4
    # How much a final verdict takes from the voice read (the rest from prosody), on probabilities. Raw 4-class on
    # the RAVDESS folds: prosody 0.571, voice read 0.703, mixed at 0.7 0.736; arousal 0.812, 0.865, 0.867
    # (0.819 at 0.3: the prosody's arousal head is the weaker one).
    voice_share: float = 0.7
    # A reading of less speech than this leans towards the natural prior (linearly, fully at no speech): the
    # statistics of a word or two (a stretch still going on, a short reply) say little about a mood.
    short_s: float = 2.0

    def apply(self, probs: np.ndarray, train_prior: np.ndarray, seconds: float, novelty: float = 0.0) -> np.ndarray:
        """The model's category probabilities re-weighted to ordinary conversation; a short reading, or one of
        a voice unlike any the model was trained on (``novelty`` 0..1, ``ToneModel.novelty``), leans towards
        the natural prior: the model does not know, so it says what is usual."""
        target = np.asarray(self.natural_prior, dtype=np.float64)
        p = np.asarray(probs, dtype=np.float64) * target / np.asarray(train_prior, dtype=np.float64)
        p /= p.sum()
        short = float(np.clip(1.0 - seconds / self.short_s, 0.0, 1.0)) if self.short_s > 0 else 0.0
        unsure = 1.0 - (1.0 - short) * (1.0 - float(np.clip(novelty, 0.0, 1.0)))
        return (1.0 - unsure) * p + unsure * target


CALIBRATION = ToneCalibration()


def n_inputs() -> int:
    """Width of the model input: features but level, baseline-relative features, baseline confidence."""
    return len(_ABSOLUTE_INDEX) + len(BASELINE_INDEX) + 1


def model_input(feats: np.ndarray, baseline_sum: np.ndarray, baseline_n: int,
                prior: np.ndarray) -> np.ndarray:
    """The model's input vector; training and run time both build it here.

    The baseline is the player's own voice so far (their finished utterances and this one, at
    ``SELF_WEIGHT``), shrunk towards the population prior; level has no population prior (it is the
    microphone's), so a first utterance is at the player's own level by definition.
    """
    own_sum = baseline_sum + SELF_WEIGHT * feats[BASELINE_INDEX]
    own_n = baseline_n + SELF_WEIGHT
    base = (BASELINE_PRIOR_WEIGHT * prior + own_sum) / (BASELINE_PRIOR_WEIGHT + own_n)
    base[_LEVEL_IN_BASELINE] = own_sum[_LEVEL_IN_BASELINE] / own_n
    conf = baseline_n / (BASELINE_PRIOR_WEIGHT + baseline_n)
    return np.concatenate([feats[_ABSOLUTE_INDEX], feats[BASELINE_INDEX] - base, [conf]]).astype(np.float32)


# Standardised inputs are clipped to this many standard deviations: a voice far outside the training voices (a
# phone line's missing top band, an audiobook reader's bright microphone) must not be extrapolated into a
# confident category by the network's linear pieces.
INPUT_CLIP = 4.0


class ToneNet(nn.Module):
    """Standardised (and clipped) input -> two hidden layers -> category logits and a high-arousal logit."""

    def __init__(self, n_in: int, hidden: int = 64, dropout: float = 0.3, clip: float = INPUT_CLIP) -> None:
        super().__init__()
        self.clip = clip
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("std", torch.ones(n_in))
        self.body = nn.Sequential(
            nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout),
        )
        self.head = nn.Linear(hidden, len(CLASSES) + 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(((x - self.mean) / self.std).clamp(-self.clip, self.clip))
        out = self.head(h)
        return out[:, :-1], out[:, -1]


class ToneModel:
    """The trained ensemble of ``ToneNet``s from ``models/emotion/``, loaded once per process."""

    _shared: ClassVar[ToneModel | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, model_dir: Path = MODEL_DIR, calibration: ToneCalibration = CALIBRATION) -> None:
        meta = json.loads((model_dir / "tone.json").read_text())
        if tuple(meta["features"]) != FEATURE_NAMES or tuple(meta["classes"]) != CLASSES:
            raise ValueError(f"{model_dir} was trained on other features or classes; retrain it")
        state = torch.load(model_dir / "tone.pt", weights_only=True)
        self.nets: list[ToneNet] = []
        for member in range(meta["members"]):
            net = ToneNet(n_inputs(), hidden=meta["hidden"], clip=meta.get("clip", INPUT_CLIP))
            prefix = f"{member}."
            net.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
            net.eval()
            self.nets.append(net)
        self.prior = np.asarray(meta["baseline_prior"], dtype=np.float32)
        # The class frequencies the ensemble was trained on (what its probabilities assume).
        self.train_prior = np.asarray(meta.get("train_prior", [1.0 / len(CLASSES)] * len(CLASSES)), dtype=np.float64)
        self.calibration = calibration
        self.meta = meta
        # Per-chunk inference runs the same weights in numpy: a few small matmuls cost far less
        # than torch's per-op dispatch, which matters at 5 ms per chunk per session.
        self._np = [self._numpy_weights(net) for net in self.nets]
        self._clip = self.nets[0].clip
        nov = meta.get("novelty")
        self._novelty = None if nov is None else (
            np.asarray(nov["icov"], dtype=np.float64), float(nov["inside"]), float(nov["outside"]))
        # The read of Whisper's encoder states, trained with the ensemble (None: prosody alone).
        self.voice = VoiceToneModel.load(model_dir)

    @staticmethod
    def _numpy_weights(net: ToneNet) -> list[np.ndarray]:
        lin = [m for m in net.modules() if isinstance(m, nn.Linear)]
        out = [net.mean.numpy().copy(), net.std.numpy().copy()]
        for m in lin:
            out += [m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()]
        return out

    @classmethod
    def shared(cls) -> ToneModel:
        """The process-wide instance."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Category probabilities ``(n, len(CLASSES))`` and P(high arousal) ``(n,)`` for inputs ``(n, d)``:
        the ensemble mean of ``ToneNet.forward`` (in eval mode), computed in numpy."""
        x = np.asarray(x, dtype=np.float32)
        probs = np.zeros((x.shape[0], len(CLASSES)), dtype=np.float64)
        high = np.zeros(x.shape[0], dtype=np.float64)
        for mean, std, w1, b1, w2, b2, w3, b3 in self._np:
            h = _gelu(np.clip((x - mean) / std, -self._clip, self._clip) @ w1 + b1)
            out = _gelu(h @ w2 + b2) @ w3 + b3
            z = np.exp(out[:, :-1] - out[:, :-1].max(axis=1, keepdims=True))
            probs += z / z.sum(axis=1, keepdims=True)
            high += 1.0 / (1.0 + np.exp(-out[:, -1]))
        return (probs / len(self._np)).astype(np.float32), (high / len(self._np)).astype(np.float32)


    def standardised(self, x: np.ndarray) -> np.ndarray:
        """Inputs as the first member sees them: standardised and clipped."""
        mean, std = self._np[0][0], self._np[0][1]
        return np.clip((np.asarray(x, dtype=np.float32) - mean) / std, -self._clip, self._clip)

    def novelty(self, x: np.ndarray) -> np.ndarray:
        """0..1 per input row: 0 within the spread of the training voices, 1 far beyond it (Mahalanobis
        distance of the standardised input, between ``inside`` and ``outside`` of ``novelty_stats``)."""
        if self._novelty is None:
            return np.zeros(np.asarray(x).shape[0])
        icov, inside, outside = self._novelty
        z = self.standardised(x).astype(np.float64)
        d = np.sqrt(np.einsum("ij,jk,ik->i", z, icov, z))
        return np.clip((d - inside) / (outside - inside), 0.0, 1.0)


def novelty_stats(z: np.ndarray) -> dict[str, Any]:
    """What ``ToneModel.novelty`` needs, from the standardised, clipped training inputs ``z``."""
    cov = np.cov(z.T) + 0.1 * np.eye(z.shape[1])  # ridge: some inputs are nearly collinear
    icov = np.linalg.inv(cov)
    d = np.sqrt(np.einsum("ij,jk,ik->i", z, icov, z))
    # Held-out RAVDESS actors fall mostly inside the training rows' 90th percentile (median 5.7, 90 % at 7.0
    # against 7.5 for the training rows); real read speech reached 8-12 and was read as "surprised" or "angry"
    # with confidence. Shrinking starts there and is complete at 1.25 x the training rows' 99.9th percentile.
    return {"icov": icov.tolist(), "inside": float(np.percentile(d, 90)),
            "outside": 1.25 * float(np.percentile(d, 99.9))}


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as ``nn.GELU()``."""
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


@dataclass(frozen=True, kw_only=True)
class ToneEstimate:
    """How the player sounds over the current (or just finished) stretch of speech."""

    emotion: str  # one of CLASSES
    probabilities: dict[str, float]
    arousal: float  # -1..1, > 0 is high
    valence: float  # -1..1, > 0 is positive
    intensity: float  # 0..1: how far from plain neutral speech
    speech_seconds: float
    final: bool  # True for the verdict on a finished stretch


def estimate_from(probs: np.ndarray, p_high: float, speech_seconds: float, final: bool,
                  unsure_below: float = CALIBRATION.unsure_below) -> ToneEstimate:
    """Turn (calibrated) model outputs into an estimate: valence from the category mix, arousal from its own
    head; a category other than neutral under ``unsure_below`` is reported as neutral."""
    i = int(np.argmax(probs))
    if i != 0 and probs[i] < unsure_below:
        i = 0
    return ToneEstimate(
        emotion=CLASSES[i],
        probabilities=dict(zip(CLASSES, (round(float(p), 4) for p in probs), strict=True)),
        arousal=round(float(2.0 * p_high - 1.0), 4),
        valence=round(float(probs @ CLASS_VALENCE), 4),
        intensity=round(float(np.clip(1.0 - probs[0], 0.0, 1.0)), 4),
        speech_seconds=round(speech_seconds, 2),
        final=final,
    )


def verdict(model: ToneModel, x: np.ndarray, seconds: float, final: bool,
            voice: np.ndarray | None = None, recogniser: str | None = None) -> ToneEstimate:
    """One reading as the game is told it: the prosody ensemble on model input ``x`` (one row), mixed with the
    voice read of the recogniser's encoder states when there are any this model can read, then calibrated for
    ordinary conversation. Training's report and ``PlayerTone`` both read through here."""
    probs, high = model.predict(x[None, :])
    p, h = probs[0].astype(np.float64), float(high[0])
    cal, novelty = model.calibration, float(model.novelty(x[None, :])[0])
    vm = model.voice
    if vm is not None and voice is not None and vm.reads(voice, recogniser or vm.recogniser):
        # Novelty is the prosody statistics' distance from the voices the ensemble learned: it says how little
        # the prosody reading knows, not the voice read, so only the prosody reading leans to its priors.
        p = (1.0 - novelty) * p + novelty * model.train_prior
        vp, vh = vm.predict(voice)
        p, h = mix((p, h), (vp[0], float(vh[0])), cal.voice_share)
        return estimate_from(cal.apply(p, model.train_prior, seconds), h, seconds, final, cal.unsure_below_voice)
    return estimate_from(cal.apply(p, model.train_prior, seconds, novelty), h, seconds, final, cal.unsure_below)


class PlayerTone:
    """Per-session reading of the player's voice. Small state: the tracker's frames and baseline."""

    def __init__(self, model: ToneModel | None = None) -> None:
        self.model = model or ToneModel.shared()
        self.tracker = ProsodyTracker()
        self.changes = EmotionChange("player")
        self._in_speech = False
        self._last_final: tuple[np.ndarray, float] | None = None

    def _estimate(self, feats: np.ndarray | None, final: bool, baseline_sum: np.ndarray,
                  baseline_n: int, seconds: float) -> ToneEstimate | None:
        if feats is None or seconds < MIN_SPEECH_S:
            return None
        x = model_input(feats, baseline_sum, baseline_n, self.model.prior)
        if final:
            self._last_final = (x, seconds)
        return verdict(self.model, x, seconds, final)

    def step(self, pcm_chunk: np.ndarray, is_speech: bool) -> ToneEstimate | None:
        """Feed one 200 ms chunk; an estimate of the stretch so far while the player speaks."""
        if is_speech and not self._in_speech:
            self._in_speech = True
            self.changes.begin_segment()
        self.tracker.push(pcm_chunk, is_speech)
        if not is_speech:
            return None
        t = self.tracker
        return self._estimate(t.features(), False, t.baseline_sum, t.baseline_n, t.speech_seconds)

    def end_of_speech(self) -> ToneEstimate | None:
        """The stretch of speech is over: its final estimate (None if it was too short to judge).

        The stretch then joins the player's baseline; the verdict itself is judged against the
        baseline as it was before, so an utterance is never compared with itself.
        """
        t = self.tracker
        base_sum, base_n, seconds = t.baseline_sum.copy(), t.baseline_n, t.speech_seconds
        feats = t.end_utterance()
        self._in_speech = False
        self._last_final = None
        return self._estimate(feats, True, base_sum, base_n, seconds)

    @property
    def hears_voices(self) -> bool:
        """The model can add the recogniser's read of the voice to a final verdict (``with_voice``)."""
        return self.model.voice is not None

    def with_voice(self, voice: np.ndarray | None, recogniser: str) -> ToneEstimate | None:
        """The last stretch's final verdict again, now with the recogniser's encoder states of the turn
        (``Read.voice``); None if there was no verdict to revise (too short) or nothing it can read."""
        vm = self.model.voice
        if self._last_final is None or vm is None or not vm.reads(voice, recogniser):
            return None
        x, seconds = self._last_final
        return verdict(self.model, x, seconds, True, voice, recogniser)

    def event_for(self, estimate: ToneEstimate | None) -> Emotion | None:
        """The ``emotion`` event (who="player") this estimate warrants, if any."""
        if estimate is None:
            return None
        return self.changes.check(estimate.emotion, estimate.intensity, estimate.valence, estimate.arousal,
                                  final=estimate.final)


class EmotionChange:
    """Reports an emotion only when it changed meaningfully.

    An event is due on the first report; when the category changes and the new one has been seen
    ``hold`` times in a row (one flickering chunk is not a change); when arousal changes sign; or
    when valence, arousal or intensity moved by ``min_delta`` since the last event. A final
    verdict on a stretch of speech (``final=True``) is reported unless an equivalent event was
    already sent during that stretch, so every utterance the player makes gets its reading.
    """

    def __init__(self, who: Literal["npc", "player"], min_delta: float = 0.3, hold: int = 2) -> None:
        self.who = who
        self.min_delta = min_delta
        self.hold = hold
        self._last: tuple[str, float, float, float] | None = None
        self._candidate: str | None = None
        self._seen = 0
        self._sent_in_segment = False

    def begin_segment(self) -> None:
        """A new stretch (utterance) begins; its final verdict will be reported."""
        self._sent_in_segment = False

    def check(self, emotion: str, intensity: float, valence: float, arousal: float, *,
              final: bool = False) -> Emotion | None:
        """The event to send for this reading, or None if nothing meaningful changed."""
        if emotion == self._candidate:
            self._seen += 1
        else:
            self._candidate, self._seen = emotion, 1
        due = self._last is None or (final and not self._sent_in_segment)
        if not due:
            last_emotion, last_i, last_v, last_a = self._last  # type: ignore[misc]
            moved = max(abs(intensity - last_i), abs(valence - last_v),
                        abs(arousal - last_a)) >= self.min_delta
            flipped = (arousal > 0) != (last_a > 0)
            steady = final or self._seen >= self.hold
            due = steady and (emotion != last_emotion or flipped or moved)
        if not due:
            return None
        self._last = (emotion, intensity, valence, arousal)
        self._sent_in_segment = True
        return Emotion(who=self.who, emotion=emotion, intensity=round(float(intensity), 3),
                       valence=round(float(valence), 3), arousal=round(float(arousal), 3))


# --- The NPC's feelings --------------------------------------------------------------------------

# Pleasure (valence), arousal, dominance of each category the NPC can be in.
PAD: dict[str, tuple[float, float, float]] = {
    "calm": (0.4, -0.45, 0.2),
    "happy": (0.7, 0.4, 0.3),
    "sad": (-0.6, -0.4, -0.35),
    "angry": (-0.6, 0.6, 0.45),
    "fearful": (-0.6, 0.6, -0.5),
    "surprised": (0.2, 0.7, -0.1),
}
# Resting points of common persona moods; other words go to the nearest of these by meaning.
MOODS: dict[str, tuple[float, float, float]] = {
    "neutral": (0.0, 0.0, 0.0),
    "content": (0.3, -0.2, 0.1),
    "cheerful": (0.55, 0.3, 0.2),
    "calm": (0.25, -0.45, 0.2),
    "grumpy": (-0.35, 0.1, 0.35),
    "irritable": (-0.3, 0.3, 0.35),
    "nervous": (-0.25, 0.45, -0.4),
    "melancholic": (-0.45, -0.35, -0.25),
    "proud": (0.3, 0.1, 0.5),
    "stern": (-0.1, -0.1, 0.5),
    "timid": (-0.1, 0.15, -0.5),
}
NEUTRAL_BELOW = 0.2  # intensity under which the NPC is just "neutral"


def pad_voice_shift(valence: float, arousal: float, dominance: float) -> dict[str, int]:
    """Voice deltas for a point in PAD space, in eSpeak NG units (pitch and pitch_range 0..100, rate wpm,
    volume 0..200): arousal raises pitch, pace, loudness and melody; pleasure lifts pitch and pace a
    little; dominance is loudness. (A Piper voice maps the same units: ``npc_voice.speech.piper``.)"""
    v, a, d = valence, arousal, dominance
    return {"pitch": round(14 * a + 5 * v), "rate": round(30 * a + 5 * v),
            "volume": round(30 * a + 10 * d), "pitch_range": round(25 * a)}


# The voice levels the NPC's feelings can take: one per category ``NpcFeelings.current`` names, each the
# shift at that category's PAD point. Few and fixed, so every line can be rendered ahead in each.
VOICE_LEVELS: dict[str, dict[str, int]] = {
    "neutral": {"pitch": 0, "rate": 0, "volume": 0, "pitch_range": 0},
    **{name: pad_voice_shift(*pad) for name, pad in PAD.items()},
}


def mood_point(mood: str) -> np.ndarray:
    """PAD resting point of a baseline mood word (unknown words: the nearest known mood by meaning)."""
    key = mood.strip().lower()
    if key in MOODS:
        return np.array(MOODS[key], dtype=np.float32)
    from npc_voice.features.embed import Embedder

    names = list(MOODS)
    vecs = Embedder.shared().encode([f"a {n} mood" for n in names] + [f"a {key} mood"])
    sims = vecs[:-1] @ vecs[-1]
    best = int(np.argmax(sims))
    return np.array(MOODS[names[best]] if sims[best] > 0.5 else MOODS["neutral"], dtype=np.float32)


@dataclass(frozen=True, kw_only=True)
class TemperamentView:
    """The fields of a persona's ``temperament:`` that feelings use, with defaults."""

    baseline_mood: str = "neutral"
    volatility: float = 0.3
    cares_about: tuple[str, ...] = ()

    @classmethod
    def of(cls, temperament: Any) -> TemperamentView:
        """From a persona ``Temperament``, a plain dict, or None."""
        if temperament is None:
            return cls()
        get = temperament.get if isinstance(temperament, Mapping) else lambda k, d: getattr(temperament, k, d)
        return cls(baseline_mood=str(get("baseline_mood", "neutral") or "neutral"),
                   volatility=float(np.clip(float(get("volatility", 0.3)), 0.0, 1.0)),
                   cares_about=tuple(str(c) for c in (get("cares_about", ()) or ())))


@dataclass(frozen=True)
class EvidenceRules:
    """How much a reading of the player's tone may move the NPC: evidence before feelings.

    A tone reading is one model's guess from a few seconds of voice; on ordinary speech it is sometimes wrong
    (a polite "I would like to buy a sword." read as angry turned the smith red). So a reading moves the
    NPC fully only when the words of the same turn say the same thing, or when the same tone comes back turn
    after turn; otherwise it nudges.
    """

    # Full pull of a final tone reading, times its intensity (contagion: the NPC catches some of the mood).
    tone_weight: float = 0.5
    # Fraction of that pull a reading gets when nothing backs it (the words are neutral, or disagree):
    # one angry reading of a polite sentence moves the mood at most slightly.
    alone: float = 0.2
    # The same tone over this many turns in a row counts in full even without the words (persistence).
    persist_turns: int = 3
    # Readings below this intensity do not start or continue a run of the same tone.
    persist_min_intensity: float = 0.5
    # Final readings this close together are stretches of one turn (a pause inside a sentence), not new turns.
    same_turn_s: float = 2.0
    # A turn's words (their sentiment comes when the NPC answers, ~0.2-1 s after the turn) and its final tone
    # reading (when the voice stops) are paired within this time; a next turn's reading comes later than this.
    pair_s: float = 2.5


EVIDENCE = EvidenceRules()
# Which words back which tone: an insult or a threat in an angry voice, thanks in a happy one, a plea in a sad
# or frightened one.
AGREES: dict[str, frozenset[str]] = {
    "insult": frozenset({"angry"}), "threat": frozenset({"angry"}), "thanks": frozenset({"happy"}),
    "plea": frozenset({"sad", "fearful"}), "neutral": frozenset(),
}
# Where the player's tone alone pulls the NPC: anger puts it on edge, joy warms it, fear and sadness worry it.
CONTAGION: dict[str, tuple[float, float, float]] = {
    "angry": (-0.4, 0.5, 0.3), "happy": PAD["happy"], "sad": (-0.3, -0.2, 0.0),
    "fearful": (-0.3, 0.4, 0.0), "surprised": PAD["surprised"],
}


@dataclass
class _TurnTone:
    """The player's tone in the current turn and how much of it has moved the NPC so far."""

    emotion: str
    intensity: float
    at: float  # the NPC's clock when it was last read
    streak: int  # turns in a row with this strong tone, this one included
    applied: float = 0.0  # pull weight already spent on this turn's tone


class NpcFeelings:
    """The NPC's emotional state over a session, as a point in pleasure-arousal-dominance space.

    Impulses (what the player said and how, the NPC's own line tags) pull the state towards a
    target by a fraction set by volatility; the resting point is the baseline mood, moved by the
    game state (``danger`` 0..1, ``relationship`` -1..1); the state decays there exponentially.
    The player's tone counts as evidence only as ``EvidenceRules`` allow: a final reading of a
    stretch of speech (not the running ones), in full only when the words agree or it persists.
    """

    def __init__(self, temperament: Any = None, rules: EvidenceRules = EVIDENCE) -> None:
        self.temperament = TemperamentView.of(temperament)
        self.rules = rules
        self.baseline = mood_point(self.temperament.baseline_mood)
        self.state = self.baseline.copy()
        self.rest = self.baseline.copy()
        self.changes = EmotionChange("npc", min_delta=0.25, hold=1)
        self._seen: list[object] = []
        self._cares_vecs: np.ndarray | None = None
        self._clock = 0.0
        self._tone: _TurnTone | None = None
        self._words: tuple[TextSentiment, float] | None = None

    @property
    def half_life_s(self) -> float:
        """How fast a feeling fades: volatile characters flare up and cool down faster."""
        return 30.0 * (1.0 - 0.6 * self.temperament.volatility)

    def _pull(self, target: Iterable[float], weight: float) -> None:
        gain = float(np.clip(weight * (0.5 + 0.9 * self.temperament.volatility), 0.0, 0.9))
        self.state = self.state + gain * (np.asarray(target, dtype=np.float32) - self.state)

    def _fresh(self, obj: object | None) -> bool:
        """True once per object: the engine may pass the same estimate on several steps."""
        if obj is None or any(obj is s for s in self._seen):
            return False
        self._seen = [*self._seen[-3:], obj]
        return True

    def _care(self, text: str) -> float:
        """0..1: how much the words touch what the NPC cares about."""
        if not self.temperament.cares_about or not text.strip():
            return 0.0
        from npc_voice.features.embed import Embedder

        emb = Embedder.shared()
        if self._cares_vecs is None:
            self._cares_vecs = emb.encode(list(self.temperament.cares_about))
        sim = float((self._cares_vecs @ emb.encode_one(text.lower())).max())
        return float(np.clip((sim - 0.3) / 0.4, 0.0, 1.0))

    def _words_target(self, tag: str) -> tuple[float, float, float]:
        bold = self.baseline[2] > 0.2
        return {
            "insult": PAD["angry"] if self.baseline[2] > -0.2 else PAD["sad"],
            "threat": PAD["angry"] if bold else PAD["fearful"],
            "thanks": PAD["happy"],
            "plea": (-0.15, 0.25, 0.3),
        }[tag]

    def _hear_tone(self, estimate: ToneEstimate) -> None:
        """A final reading: the current turn's tone (a new turn unless it follows the last reading closely)."""
        r, tone = self.rules, self._tone
        if tone is not None and self._clock - tone.at <= r.same_turn_s:  # another stretch of the same turn
            tone.at = self._clock
            if estimate.emotion == tone.emotion:
                tone.intensity = max(tone.intensity, estimate.intensity)
            elif estimate.intensity > tone.intensity:  # the clearer reading of the turn wins
                tone.emotion, tone.intensity = estimate.emotion, estimate.intensity
            return
        strong = estimate.emotion != "neutral" and estimate.intensity >= r.persist_min_intensity
        go_on = tone is not None and strong and tone.emotion == estimate.emotion
        self._tone = _TurnTone(estimate.emotion, estimate.intensity, self._clock,
                               streak=tone.streak + 1 if go_on else int(strong))  # type: ignore[union-attr]

    def _apply_tone(self) -> None:
        """Move the NPC by as much of the current turn's tone as the evidence allows (and was not yet spent)."""
        tone, r = self._tone, self.rules
        if tone is None or tone.emotion not in CONTAGION:
            return
        words = self._words
        paired = words is not None and abs(words[1] - tone.at) <= r.pair_s
        agree = paired and tone.emotion in AGREES.get(words[0].tag, frozenset())  # type: ignore[index]
        persist = (tone.streak - 1) / max(r.persist_turns - 1, 1) if tone.streak >= 2 else 0.0
        share = max(r.alone, 1.0 if agree else 0.0, min(persist, 1.0))
        due = share * r.tone_weight * tone.intensity - tone.applied
        if due <= 1e-6:
            return
        # Agreeing words and voice pull together towards what the words mean; otherwise it is contagion.
        target = self._words_target(words[0].tag) if agree else CONTAGION[tone.emotion]  # type: ignore[index]
        self._pull(target, due)
        tone.applied += due

    def update(self, dt: float, player_tone: ToneEstimate | None = None,
               text_sentiment: TextSentiment | None = None, game_state: Mapping[str, Any] | None = None,
               line_tags: Iterable[str] | None = None) -> None:
        """Advance ``dt`` seconds; apply whatever is new. Pass an estimate or sentiment object as often as
        you like: each object counts once. Running (non-final) tone estimates do not move the NPC: the
        stretch's final verdict does, as far as ``EvidenceRules`` allow."""
        game_state = game_state or {}
        danger = float(np.clip(float(game_state.get("danger", 0.0) or 0.0), 0.0, 1.0))
        relation = float(np.clip(float(game_state.get("relationship", 0.0) or 0.0), -1.0, 1.0))
        bold = self.baseline[2] > 0.2
        self.rest = self.baseline + np.array([0.3 * relation - 0.4 * danger, 0.6 * danger,
                                              (0.2 if bold else -0.5) * danger], dtype=np.float32)
        if dt > 0:
            self._clock += dt
            keep = 0.5 ** (dt / self.half_life_s)
            self.state = self.rest + keep * (self.state - self.rest)

        if self._fresh(text_sentiment):
            ts = text_sentiment
            self._words = (ts, self._clock)  # type: ignore[assignment]
            if ts.tag != "neutral":  # type: ignore[union-attr]
                care = self._care(ts.text)  # type: ignore[union-attr]
                weight = (0.6 + 0.3 * care) * (0.5 + 0.5 * ts.strength)  # type: ignore[union-attr]
                self._pull(self._words_target(ts.tag), weight)  # type: ignore[union-attr]
            self._apply_tone()  # words that back the turn's tone let it count in full
        if player_tone is not None and player_tone.final and self._fresh(player_tone):
            self._hear_tone(player_tone)
            self._apply_tone()
        for tag in line_tags or ():
            if tag.lower() in PAD:
                self._pull(PAD[tag.lower()], 0.35)
        self.state = np.clip(self.state, -1.0, 1.0)

    def current(self) -> tuple[str, float, float, float]:
        """``(emotion, intensity, valence, arousal)`` now."""
        v, a, _ = (float(x) for x in self.state)
        intensity = float(np.clip(math.hypot(v, a) / 0.9, 0.0, 1.0))
        if intensity < NEUTRAL_BELOW:
            return "neutral", round(intensity, 3), round(v, 3), round(a, 3)
        names = list(PAD)
        dist = [float(np.linalg.norm(self.state - np.array(PAD[n]))) for n in names]
        return names[int(np.argmin(dist))], round(intensity, 3), round(v, 3), round(a, 3)

    def voice_shift(self) -> dict[str, int]:
        """Deltas to add to the persona voice (``VOICE_LEVELS``): the level of the feeling shown now.

        Quantised to the category ``current()`` names, so an NPC's voice takes one of a few settings
        and every line can be rendered ahead in each of them (``npc_voice.speech.ahead``)."""
        return dict(VOICE_LEVELS[self.current()[0]])

    def event(self) -> Emotion | None:
        """The ``emotion`` event (who="npc") due now, if the feeling changed meaningfully."""
        return self.changes.check(*self.current())
