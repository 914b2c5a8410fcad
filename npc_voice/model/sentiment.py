"""What the player's words mean emotionally: insult, thanks, threat, plea, or nothing in particular.

Meaning, not keywords: the transcript's MiniLM embedding (the shared ``Embedder``) is compared
with anchor phrasings of each intent; the best-matching anchors (mean of the top three, so one
lucky anchor does not decide) give a similarity per tag, a softmax over them gives the tag and a
valence/arousal blend. ASR output is lower-case and unpunctuated, so anchors are written plainly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from npc_voice.features.embed import Embedder

ANCHORS: dict[str, tuple[str, ...]] = {
    "insult": (
        "you are an idiot", "you stupid fool", "you are useless", "what a pathetic excuse for a smith",
        "you are a worthless old man", "your work is garbage", "you are an ugly brute",
        "shut up you moron", "nobody likes you", "you are a fraud and a cheat", "you disgust me",
        "your swords are junk", "you are too dumb to understand",
    ),
    "thanks": (
        "thank you so much", "thanks a lot", "i really appreciate your help", "you are very kind",
        "great work, this is wonderful", "i am grateful", "you did an excellent job",
        "this is the finest blade i have ever seen", "you are the best", "much obliged, friend",
        "well done", "i love it",
    ),
    "threat": (
        "i will kill you", "give me your money or you die", "i am going to burn this place down",
        "you will regret this", "watch your back", "i will break your legs", "hand it over or else",
        "i will hurt you", "do that again and you are dead", "i'll make you pay for this",
        "one more word and i'll cut you",
    ),
    "plea": (
        "please help me", "i beg you", "please, i need this", "have mercy on me",
        "i have nowhere else to go", "please, my family is starving", "i am desperate",
        "could you please do me a favour", "i am begging you, please", "please don't hurt me",
        "help, please, i am in trouble",
    ),
    "neutral": (
        "how much does a sword cost", "what time is it", "do you sell armour", "hello there",
        "where is the inn", "tell me about yourself", "i would like to buy a shield",
        "what is the weather like", "goodbye", "can you repair my axe", "what is your name",
        "okay", "i see", "tell me more about the village", "the road was long",
    ),
}

# (valence, arousal) each intent carries, in -1..1.
TAG_AFFECT: dict[str, tuple[float, float]] = {
    "insult": (-0.7, 0.5),
    "thanks": (0.7, 0.2),
    "threat": (-0.8, 0.8),
    "plea": (-0.3, 0.5),
    "neutral": (0.0, 0.0),
}
TEMPERATURE = 0.03  # softmax temperature on cosine similarities (MiniLM cosines sit close together)
TOP_K = 3


@dataclass(frozen=True, kw_only=True)
class TextSentiment:
    """The emotional meaning of one transcript."""

    text: str
    tag: str  # insult | thanks | threat | plea | neutral
    probabilities: dict[str, float]
    valence: float  # -1..1
    arousal: float  # -1..1
    strength: float  # 0..1: how clearly the text carries its tag (0 for neutral)


class SentimentModel:
    """Anchor embeddings, computed once per process; ``analyse`` is a cached embed plus a matmul."""

    _shared: ClassVar[SentimentModel | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, embedder: Embedder | None = None) -> None:
        self._embedder = embedder or Embedder.shared()
        self.tags = tuple(ANCHORS)
        self._anchors = [self._embedder.encode(list(ANCHORS[t])) for t in self.tags]
        self._affect = np.array([TAG_AFFECT[t] for t in self.tags], dtype=np.float32)

    @classmethod
    def shared(cls) -> SentimentModel:
        """The process-wide instance."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def scores(self, vec: np.ndarray) -> np.ndarray:
        """Per-tag similarity: mean of the ``TOP_K`` best anchor cosines."""
        return np.array([np.sort(a @ vec)[-TOP_K:].mean() for a in self._anchors], dtype=np.float32)

    def analyse(self, text: str) -> TextSentiment:
        """Tag, valence and arousal of a transcript (empty text is neutral)."""
        clean = " ".join(text.lower().split())
        if not clean:
            probs = np.array([t == "neutral" for t in self.tags], dtype=np.float32)
        else:
            s = self.scores(self._embedder.encode_one(clean))
            z = np.exp((s - s.max()) / TEMPERATURE)
            probs = z / z.sum()
        i = int(np.argmax(probs))
        tag = self.tags[i]
        valence, arousal = (probs @ self._affect).tolist()
        strength = 0.0 if tag == "neutral" else float(probs[i] - probs[self.tags.index("neutral")])
        probabilities = dict(zip(self.tags, probs.tolist(), strict=True))
        return TextSentiment(text=text, tag=tag, probabilities=probabilities,
                             valence=float(valence), arousal=float(arousal), strength=max(0.0, strength))


def analyse(text: str) -> TextSentiment:
    """Sentiment of a transcript with the shared model."""
    return SentimentModel.shared().analyse(text)
