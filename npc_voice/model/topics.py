"""Which persona topic answers what the player said: nearest examples in MiniLM space.

The player's words arrive with the clutter of live speech ("wait, no, that's not what I meant. How
much is a shield?"), so the matcher scores the whole text and its last clauses and keeps the best:
a correction is answered by what it asks for, not by the words that opened it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from npc_voice.features.embed import Embedder
from npc_voice.features.words import strip_discourse, words_of
from npc_voice.persona.loader import FALLBACK, FOLLOW_UP_BONUS, Persona

# Below this cosine similarity nothing in the persona fits and the NPC asks to rephrase.
MIN_SIMILARITY = 0.42
# Choosing among the recogniser's readings: one within this mean log probability per token of the best may
# win by fitting a topic better, a cosine point counting as much as one log-probability point per token.
READING_MARGIN = 0.3
READING_FIT_WEIGHT = 1.0
READING_SETTLED = 0.7
# Whisper's reading below this fits nothing (as for the floor policy's ``unsure_fit``); streaming words
# (pocketsphinx on the persona's own LM, which knows only the persona's words) that fit a topic this well
# are answered instead: on voices tiny.en cannot read, they often still catch "fix" or "swords".
UNHEARD_FIT = 0.5
STREAMING_FIT = 0.6

_CLAUSE_SPLIT = re.compile(r"[.?!,;]+|\b(?:but|so|and then)\b")
_NOT_WANTED = re.compile(r"(?:not|rather than|instead of)\b", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class TopicChoice:
    """The topic picked for a text, how close it was, and what text decided it."""

    topic: str
    similarity: float
    focus: str
    margin: float = 0.0  # how far ``similarity`` stands above the best of every other topic
    runner_up: str | None = None  # that other topic


def focus_candidates(text: str) -> list[str]:
    """The whole text, the text without leading fillers, and its trailing clauses; without the clauses that
    say what the player does not want ("I asked about the dragon, not the forge" is about the dragon)."""
    text = " ".join(text.split())
    parts = [p.strip() for p in _CLAUSE_SPLIT.split(strip_discourse(text) or text) if p and p.strip()]
    wanted = [p for p in parts if not _NOT_WANTED.match(p)]
    if wanted and len(wanted) < len(parts):
        text, parts = " ".join(wanted), wanted
    out = [text]
    stripped = strip_discourse(text)
    if stripped and stripped != text:
        out.append(stripped)
    for i in range(1, len(parts)):
        tail = " ".join(parts[i:])
        if len(tail.split()) >= 2:
            out.append(tail)
    return list(dict.fromkeys(c for c in out if c))


def _reads_on(longer: tuple[str, ...], shorter: tuple[str, ...]) -> bool:
    """``longer`` is ``shorter`` and then words of its own, mostly new ones: more of the audio read, not Whisper
    looping over what it had read."""
    tail = longer[len(shorter) :]
    return (len(longer) > len(shorter) and longer[: len(shorter)] == shorter
            and 2 * sum(w not in shorter for w in tail) > len(tail))


class TopicMatcher:
    """Scores a text against every topic's examples; one per persona, built once per (re)load."""

    def __init__(self, persona: Persona, embedder: Embedder, min_similarity: float = MIN_SIMILARITY) -> None:
        self.persona = persona
        self._embedder = embedder
        self._min = min_similarity
        self._topic_ids: list[str] = []
        examples: list[str] = []
        for topic in persona.topics.values():
            for ex in topic.examples:
                self._topic_ids.append(topic.id)
                examples.append(ex)
        self._examples = embedder.encode(examples) if examples else np.zeros((0, 384), np.float32)

    def _similarities(self, text: str) -> tuple[list[str], np.ndarray] | None:
        """The text's focus candidates and their cosine similarity to every example (``None``: nothing to score)."""
        cands = focus_candidates(text) if text.strip() else []
        if not cands or not self._topic_ids:
            return None
        return cands, self._embedder.encode(cands) @ self._examples.T

    def _per_topic(self, sims: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        for tid, s in zip(self._topic_ids, sims.max(axis=0), strict=True):
            out[tid] = max(out.get(tid, -1.0), float(s))
        return out

    def _choice(self, text: str, scored: tuple[list[str], np.ndarray] | None) -> TopicChoice:
        if scored is None:
            return TopicChoice(topic=FALLBACK, similarity=0.0, focus=text)
        cands, sims = scored
        ci, ei = np.unravel_index(int(np.argmax(sims)), sims.shape)
        sim = float(sims[ci, ei])
        if sim < self._min:
            return TopicChoice(topic=FALLBACK, similarity=sim, focus=cands[ci])
        topic = self._topic_ids[ei]
        others = {t: s for t, s in self._per_topic(sims).items() if t != topic}
        second = max(others, key=others.__getitem__, default=None)
        return TopicChoice(topic=topic, similarity=sim, focus=cands[ci],
                           margin=sim - (others[second] if second is not None else -1.0), runner_up=second)

    def scores(self, text: str) -> dict[str, float]:
        """Best similarity per topic over the text's focus candidates."""
        scored = self._similarities(text)
        return {} if scored is None else self._per_topic(scored[1])

    def match(self, text: str) -> TopicChoice:
        """The best topic, or ``fallback`` when nothing is close enough."""
        return self._choice(text, self._similarities(text))

    def pick_reading(self, readings: list[tuple[str, float]]) -> str:
        """The reading to answer among the recogniser's best (text, mean log probability per token), best
        first: an unusual voice leaves tiny.en torn between "Below there." and "Hello there.", and what the
        persona talks about settles it. Only readings nearly as likely as the best compete, so a real
        off-topic turn stays off-topic; a best reading that already fits a topic well is taken as it is
        (no other reading is embedded: this is on the way to every answer). A reading that another near one
        goes on from is left out: Whisper sometimes ends at the first sentence of a turn with a pause in it
        ("How much would you want?" for "How much would you want? | For that longsword?"), and the words it
        dropped are often the request itself; but not one that only loops over its words ("I really like to
        hear, I really liked to hear.")."""
        near = [(text, score) for text, score in readings if score >= readings[0][1] - READING_MARGIN]
        said = [tuple(words_of(text)) for text, _ in near]
        near = [r for r, w in zip(near, said, strict=True) if not any(_reads_on(other, w) for other in said)]
        best = near[0]
        if len(near) == 1 or self.match(best[0]).similarity >= READING_SETTLED:
            return best[0]
        return max(near, key=lambda r: r[1] + READING_FIT_WEIGHT * self.match(r[0]).similarity)[0]

    def streaming_instead(self, fit: float, streaming: str) -> bool:
        """Answer the streaming words instead of a reading that fits a topic only ``fit`` well: the reading
        fits nothing (an accent tiny.en cannot read: "And it will dissolve the in stock today." for "Any good
        swords in stock today?") and they fit a topic well ("that hold swords and soft of it"). Asked only
        of readings that fit nothing, so no other answer pays for the extra embedding."""
        return fit < UNHEARD_FIT and bool(streaming.strip()) and self.match(streaming).similarity >= STREAMING_FIT

    def match_after(self, text: str, previous: str | None) -> tuple[TopicChoice, bool]:
        """The topic for ``text`` said after the NPC answered ``previous``; True if one of that topic's
        follow-ups won a near-tie (after "how much is a sword?", "and a shield?" leans to prices). The text
        is embedded once for both (this is on the way to every answer)."""
        scored = self._similarities(text)
        choice = self._choice(text, scored)
        ups = [t for t in self.persona.follow_ups(previous) if t != choice.topic]
        if not ups or scored is None:
            return choice, False
        scores = self._per_topic(scored[1])
        best = max(ups, key=lambda t: scores.get(t, -1.0))
        sim = scores.get(best, -1.0)
        if sim >= self._min and sim + FOLLOW_UP_BONUS > choice.similarity:
            return TopicChoice(topic=best, similarity=sim, focus=choice.focus), True
        return choice, False
