"""P(the accurate recogniser heard the player right), from how sure it was of its own read.

Why: words that fit no topic mean two different things. Heard clearly ("How do computers work?"), they are a
question the persona has no answer for: it should say so in character, at the normal gap. Misheard ("I knew can
fall in formation about Cambridge"), they are noise to the persona: "say that again". The topic fit cannot tell
the two apart; the recogniser's own confidence can. Five figures of one read feed a logistic model:

- the mean log probability per token of the best reading (the beam's own score),
- the mean and the lowest log probability of its tokens, teacher-forced (``Whisper.align``): a single token the
  model hesitated over ("fall in" for "looking") drags the lowest one down where the mean hides it,
- how far the best reading's score stands above the second's, and how many words the two share: a beam torn
  between "Below there." and "Hello there." did not hear clearly.

The weights are fitted per recogniser by ``python -m npc_voice.train.clarity`` (``models/clarity/``, seconds). A
recogniser without token probabilities (Moonshine) has no model: the engine then falls back to waiting.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from npc_voice.data import model_dir
from npc_voice.features.asr import Read
from npc_voice.features.words import words_of

MODEL_DIR = model_dir("clarity")  # package data: models/clarity in the repository
FEATURES = ("score", "token_mean", "token_min", "margin", "agreement")
NO_SECOND = 1.0  # the score margin of a read with only one reading: as sure as beams get


def agreement(a: str, b: str) -> float:
    """1 - the word error rate between two readings (1: the same words)."""
    x, y = words_of(a), words_of(b)
    if not x and not y:
        return 1.0
    row = list(range(len(y) + 1))
    for i, w in enumerate(x, 1):
        prev, row[0] = row[0], i
        for j, v in enumerate(y, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (w != v))
    return 1.0 - row[-1] / max(len(x), len(y))


def features(read: Read) -> dict[str, float] | None:
    """The five figures of ``read`` (None: no readings, or no token probabilities to judge by)."""
    if not read.readings or not read.token_probs:
        return None
    logs = [math.log(max(p, 1e-6)) for p in read.token_probs]
    best = read.readings[0]
    second = read.readings[1] if len(read.readings) > 1 else None
    return {
        "score": best[1],
        "token_mean": sum(logs) / len(logs),
        "token_min": min(logs),
        "margin": best[1] - second[1] if second is not None else NO_SECOND,
        "agreement": agreement(best[0], second[0]) if second is not None else 1.0,
    }


@dataclass(frozen=True)
class Clarity:
    """A logistic model over ``FEATURES``: P(the best reading has at most one word in five wrong)."""

    recogniser: str
    weights: dict[str, float]
    bias: float
    report: str = ""

    def p_clear(self, read: Read) -> float | None:
        f = features(read)
        if f is None:
            return None
        z = self.bias + sum(self.weights[k] * f[k] for k in FEATURES)
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    @staticmethod
    def path(recogniser: str) -> Path:
        return MODEL_DIR / f"{recogniser}.json"

    @classmethod
    def load(cls, recogniser: str) -> Clarity | None:
        """The fitted model for ``recogniser``, or None if there is none (``python -m npc_voice.train.clarity``)."""
        path = cls.path(recogniser)
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(recogniser, {k: float(data["weights"][k]) for k in FEATURES}, float(data["bias"]),
                   data.get("report", ""))

    def save(self) -> Path:
        path = self.path(self.recogniser)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"recogniser": self.recogniser, "weights": self.weights, "bias": self.bias,
                                    "report": self.report}, indent=1) + "\n")
        return path
