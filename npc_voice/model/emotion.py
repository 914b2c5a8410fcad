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

MODEL_DIR = model_dir("emotion")  # package data: models/emotion in the repository
CLASSES: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fearful", "surprised")
# Where each category sits in valence (the tone model only says how sure it is of each category).
CLASS_VALENCE = np.array([0.1, 0.8, -0.6, -0.7, -0.6, 0.3], dtype=np.float32)
BASELINE_PRIOR_WEIGHT = 1.0  # the population prior counts as this many of the player's utterances
MIN_SPEECH_S = 0.6  # no verdict on less speech than this


def n_inputs() -> int:
    """Width of the model input: features, features minus baseline, baseline confidence."""
    return len(FEATURE_NAMES) + len(BASELINE_INDEX) + 1


def model_input(feats: np.ndarray, baseline_sum: np.ndarray, baseline_n: int,
                prior: np.ndarray) -> np.ndarray:
    """The model's input vector; training and run time both build it here.

    The baseline is the mean of the player's finished utterances, shrunk towards the population
    prior, so a first utterance is judged against an average speaker and later ones against the
    player's own voice and microphone.
    """
    base = (BASELINE_PRIOR_WEIGHT * prior + baseline_sum) / (BASELINE_PRIOR_WEIGHT + baseline_n)
    conf = baseline_n / (BASELINE_PRIOR_WEIGHT + baseline_n)
    return np.concatenate([feats, feats[BASELINE_INDEX] - base, [conf]]).astype(np.float32)


class ToneNet(nn.Module):
    """Standardised input -> two hidden layers -> category logits and a high-arousal logit."""

    def __init__(self, n_in: int, hidden: int = 64, dropout: float = 0.3) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("std", torch.ones(n_in))
        self.body = nn.Sequential(
            nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout),
        )
        self.head = nn.Linear(hidden, len(CLASSES) + 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body((x - self.mean) / self.std)
        out = self.head(h)
        return out[:, :-1], out[:, -1]


class ToneModel:
    """The trained ensemble of ``ToneNet``s from ``models/emotion/``, loaded once per process."""

    _shared: ClassVar[ToneModel | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, model_dir: Path = MODEL_DIR) -> None:
        meta = json.loads((model_dir / "tone.json").read_text())
        if tuple(meta["features"]) != FEATURE_NAMES or tuple(meta["classes"]) != CLASSES:
            raise ValueError(f"{model_dir} was trained on other features or classes; retrain it")
        state = torch.load(model_dir / "tone.pt", weights_only=True)
        self.nets: list[ToneNet] = []
        for member in range(meta["members"]):
            net = ToneNet(n_inputs(), hidden=meta["hidden"])
            prefix = f"{member}."
            net.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
            net.eval()
            self.nets.append(net)
        self.prior = np.asarray(meta["baseline_prior"], dtype=np.float32)
        self.meta = meta
        # Per-chunk inference runs the same weights in numpy: a few small matmuls cost far less
        # than torch's per-op dispatch, which matters at 5 ms per chunk per session.
        self._np = [self._numpy_weights(net) for net in self.nets]

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
            h = _gelu((x - mean) / std @ w1 + b1)
            out = _gelu(h @ w2 + b2) @ w3 + b3
            z = np.exp(out[:, :-1] - out[:, :-1].max(axis=1, keepdims=True))
            probs += z / z.sum(axis=1, keepdims=True)
            high += 1.0 / (1.0 + np.exp(-out[:, -1]))
        return (probs / len(self._np)).astype(np.float32), (high / len(self._np)).astype(np.float32)


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


def estimate_from(probs: np.ndarray, p_high: float, speech_seconds: float, final: bool) -> ToneEstimate:
    """Turn model outputs into an estimate: valence from the category mix, arousal from its own head."""
    i = int(np.argmax(probs))
    return ToneEstimate(
        emotion=CLASSES[i],
        probabilities=dict(zip(CLASSES, (round(float(p), 4) for p in probs), strict=True)),
        arousal=round(float(2.0 * p_high - 1.0), 4),
        valence=round(float(probs @ CLASS_VALENCE), 4),
        intensity=round(float(np.clip(1.0 - probs[0], 0.0, 1.0)), 4),
        speech_seconds=round(speech_seconds, 2),
        final=final,
    )


class PlayerTone:
    """Per-session reading of the player's voice. Small state: the tracker's frames and baseline."""

    def __init__(self, model: ToneModel | None = None) -> None:
        self.model = model or ToneModel.shared()
        self.tracker = ProsodyTracker()
        self.changes = EmotionChange("player")
        self._in_speech = False

    def _estimate(self, feats: np.ndarray | None, final: bool, baseline_sum: np.ndarray,
                  baseline_n: int, seconds: float) -> ToneEstimate | None:
        if feats is None or seconds < MIN_SPEECH_S:
            return None
        x = model_input(feats, baseline_sum, baseline_n, self.model.prior)[None, :]
        probs, high = self.model.predict(x)
        return estimate_from(probs[0], float(high[0]), seconds, final)

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
        return self._estimate(feats, True, base_sum, base_n, seconds)

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


class NpcFeelings:
    """The NPC's emotional state over a session, as a point in pleasure-arousal-dominance space.

    Impulses (what the player said and how, the NPC's own line tags) pull the state towards a
    target by a fraction set by volatility; the resting point is the baseline mood, moved by the
    game state (``danger`` 0..1, ``relationship`` -1..1); the state decays there exponentially.
    """

    def __init__(self, temperament: Any = None) -> None:
        self.temperament = TemperamentView.of(temperament)
        self.baseline = mood_point(self.temperament.baseline_mood)
        self.state = self.baseline.copy()
        self.rest = self.baseline.copy()
        self.changes = EmotionChange("npc", min_delta=0.25, hold=1)
        self._seen: list[object] = []
        self._cares_vecs: np.ndarray | None = None

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

    def update(self, dt: float, player_tone: ToneEstimate | None = None,
               text_sentiment: TextSentiment | None = None, game_state: Mapping[str, Any] | None = None,
               line_tags: Iterable[str] | None = None) -> None:
        """Advance ``dt`` seconds; apply whatever is new. Pass an estimate or sentiment object
        (a final one, ideally) as often as you like: each object counts once."""
        game_state = game_state or {}
        danger = float(np.clip(float(game_state.get("danger", 0.0) or 0.0), 0.0, 1.0))
        relation = float(np.clip(float(game_state.get("relationship", 0.0) or 0.0), -1.0, 1.0))
        bold = self.baseline[2] > 0.2
        self.rest = self.baseline + np.array([0.3 * relation - 0.4 * danger, 0.6 * danger,
                                              (0.2 if bold else -0.5) * danger], dtype=np.float32)
        if dt > 0:
            keep = 0.5 ** (dt / self.half_life_s)
            self.state = self.rest + keep * (self.state - self.rest)

        if self._fresh(text_sentiment) and text_sentiment.tag != "neutral":  # type: ignore[union-attr]
            ts = text_sentiment
            care = self._care(ts.text)  # type: ignore[union-attr]
            weight = (0.6 + 0.3 * care) * (0.5 + 0.5 * ts.strength)  # type: ignore[union-attr]
            target = {
                "insult": PAD["angry"] if self.baseline[2] > -0.2 else PAD["sad"],
                "threat": PAD["angry"] if bold else PAD["fearful"],
                "thanks": PAD["happy"],
                "plea": (-0.15, 0.25, 0.3),
            }[ts.tag]  # type: ignore[union-attr]
            self._pull(target, weight)
        if self._fresh(player_tone) and player_tone.emotion != "neutral":  # type: ignore[union-attr]
            pt = player_tone
            # Contagion, mildly: anger puts the NPC on edge, joy warms it, fear and sadness worry it.
            target = {
                "angry": (-0.4, 0.5, 0.3), "happy": PAD["happy"], "sad": (-0.3, -0.2, 0.0),
                "fearful": (-0.3, 0.4, 0.0), "surprised": PAD["surprised"],
            }[pt.emotion]  # type: ignore[union-attr]
            self._pull(target, 0.3 * pt.intensity)  # type: ignore[union-attr]
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
