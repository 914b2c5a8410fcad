"""Find example utterances the topic matcher would confuse with another topic's.

Each example is left out of its own topic and matched, with the sidecar's own ``TopicMatcher`` and
MiniLM embeddings, against the rest of the persona, as if a player had said it. If another topic
scores higher (and high enough for the matcher to accept it), a player who says it will get the
wrong answer; if another topic is within ``margin``, a slightly different wording will.
Designers see the confusion before players do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from npc_voice.features.embed import Embedder
from npc_voice.model.topics import MIN_SIMILARITY, TopicMatcher, focus_candidates
from npc_voice.persona.loader import Persona, Problem

DEFAULT_MARGIN = 0.05  # cosine similarity; MiniLM paraphrases of one request differ by more than this


@dataclass(frozen=True, kw_only=True)
class Confusion:
    """An example of ``topic`` that matches ``other`` better than, or almost as well as, its own topic."""

    topic: str
    example: str
    line: int | None
    own: float  # best similarity to the rest of its own topic
    other_topic: str
    other_example: str  # the other topic's example closest to it
    other: float

    @property
    def confused(self) -> bool:
        """True if the matcher would pick the other topic outright."""
        return self.other >= self.own

    def problem(self, persona: Persona) -> Problem:
        verdict = "is matched to" if self.confused else "is almost as close to"
        return Problem(
            persona.source,
            self.line,
            f"ambiguous: example '{self.example}' of topic '{self.topic}' {verdict} topic "
            f"'{self.other_topic}' (like its example '{self.other_example}': {self.other:.2f} vs "
            f"{self.own:.2f} for its own topic)",
            f"reword it so it says what only '{self.topic}' is about, or move it to '{self.other_topic}'",
        )


def leave_one_out(persona: Persona, embedder: Embedder | None = None) -> list[tuple[str, int, float, str, float]]:
    """``(topic, example index, own score, best other topic, its score)`` for every example."""
    embedder = embedder or Embedder.shared()
    out = []
    for topic in persona.topics.values():
        if len(topic.examples) < 2:
            continue  # nothing to compare against; the loader already asks for more examples
        for i, example in enumerate(topic.examples):
            rest = replace(topic, examples=topic.examples[:i] + topic.examples[i + 1 :])
            matcher = TopicMatcher(replace(persona, topics={**persona.topics, topic.id: rest}), embedder)
            scores = matcher.scores(example)
            own = scores.pop(topic.id)
            if scores:
                other_topic = max(scores, key=scores.__getitem__)
                out.append((topic.id, i, own, other_topic, scores[other_topic]))
    return out


def find_confusions(
    persona: Persona, embedder: Embedder | None = None, margin: float = DEFAULT_MARGIN
) -> list[Confusion]:
    """Every example whose leave-one-out match is another topic, or within ``margin`` of one."""
    embedder = embedder or Embedder.shared()
    out: list[Confusion] = []
    for tid, i, own, other_topic, other in leave_one_out(persona, embedder):
        if other < own - margin or other < MIN_SIMILARITY:
            continue  # clearly its own topic, or so far from the other that the matcher says fallback
        topic = persona.topics[tid]
        example = topic.examples[i]
        candidates = embedder.encode(focus_candidates(example))
        others = persona.topics[other_topic].examples
        closest = others[int(np.argmax((candidates @ embedder.encode(list(others)).T).max(axis=0)))]
        line = topic.example_lines[i] if i < len(topic.example_lines) else topic.line
        out.append(
            Confusion(
                topic=tid,
                example=example,
                line=line,
                own=own,
                other_topic=other_topic,
                other_example=closest,
                other=other,
            )
        )
    return out
