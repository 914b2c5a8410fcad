"""The player's tone as the recogniser heard it: a linear read of Whisper's pooled encoder states.

A sure Whisper read of the player's turn (``AsrModels.read``) encodes the audio anyway; ``Read.voice`` keeps
the mean and spread of the encoder states over the turn. Whisper's encoder was trained on far more voices,
rooms and microphones than any emotion corpus, so how a voice sounds survives in those states better than in
our prosody statistics, and a plain softmax over them (no hidden layer: it must not learn RAVDESS's actors
and studio) reads held-out actors better than the prosody MLP does. ``PlayerTone.with_voice`` mixes the two
for a turn's final verdict (``ToneCalibration.voice_share``).

Trained by ``python -m npc_voice.train.emotion`` with the prosody model, on the same rows and class weights;
stored as ``models/emotion/voice_tone.npz``. It belongs to the recogniser whose states it reads
(``recogniser``): with another one (``--asr base``, Moonshine) the tone reader uses prosody alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE = "voice_tone.npz"


@dataclass(frozen=True)
class VoiceToneModel:
    """Standardise, then one linear layer: category logits (softmax) and a high-arousal logit (sigmoid)."""

    mean: np.ndarray  # (d,)
    std: np.ndarray  # (d,)
    weight: np.ndarray  # (d, classes + 1): the last column is arousal
    bias: np.ndarray  # (classes + 1,)
    recogniser: str  # whose encoder states it reads (``features.asr.RECOGNISERS``)

    @property
    def width(self) -> int:
        return int(self.mean.size)

    def predict(self, voice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Category probabilities ``(n, classes)`` and P(high arousal) ``(n,)`` for pooled states ``(n, d)``."""
        v = np.atleast_2d(np.asarray(voice, dtype=np.float32))
        out = ((v - self.mean) / self.std) @ self.weight + self.bias
        z = np.exp(out[:, :-1] - out[:, :-1].max(axis=1, keepdims=True))
        return (z / z.sum(axis=1, keepdims=True)).astype(np.float32), (1.0 / (1.0 + np.exp(-out[:, -1]))).astype(
            np.float32)

    def reads(self, voice: np.ndarray | None, recogniser: str) -> bool:
        """These states are ones this model can read (same recogniser, same width)."""
        return voice is not None and recogniser == self.recogniser and np.asarray(voice).shape[-1] == self.width

    def save(self, folder: Path) -> None:
        np.savez(folder / FILE, mean=self.mean, std=self.std, weight=self.weight, bias=self.bias,
                 recogniser=np.array(self.recogniser))

    @classmethod
    def load(cls, folder: Path) -> VoiceToneModel | None:
        """The model in ``folder``, or None if it has none (a prosody-only model)."""
        path = folder / FILE
        if not path.exists():
            return None
        with np.load(path) as f:
            return cls(f["mean"].astype(np.float32), f["std"].astype(np.float32), f["weight"].astype(np.float32),
                       f["bias"].astype(np.float32), str(f["recogniser"]))


def mix(prosody: tuple[np.ndarray, float], voice: tuple[np.ndarray, float], share: float
        ) -> tuple[np.ndarray, float]:
    """The two readings' category probabilities and P(high arousal), mixed with ``share`` for the voice read."""
    probs = (1.0 - share) * np.asarray(prosody[0], dtype=np.float64) + share * np.asarray(voice[0], dtype=np.float64)
    return probs, (1.0 - share) * float(prosody[1]) + share * float(voice[1])
