"""Topic bench: how well a persona's examples let the matcher understand wordings it has never seen.

Why: an answer is only as relevant as the topic the player's words are matched to, and a persona with a
few examples per topic leaves common wordings ("Catch you later, smith.") to fall back on "say that again",
which also cuts short the long answer a backchannel or an echo case needs. Texts are written, not heard, so
this measures the persona and the matcher without the recogniser; ``bench duplex`` measures them together.

The texts are the held-out case decks (``bench.cases``: every topic in new wordings, whole turns split by a
pause, interruptions with their cue words) and the off-topic sentences of the ASR bench. None is a persona
example. The first halves of the split turns are fragments: a fit at or above the floor policy's
``unsure_fit`` makes a fragment that Whisper reads as a finished sentence a candidate to be answered inside
the player's pause, and one above ``sure_fit`` may be answered as soon as the voice stops. The first sentences
of two-sentence wordings ("I bent my spear. | Can you straighten it?") are preambles: at ``sure_fit`` the NPC
may answer in the short gap before the second.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from npc_voice.bench.asr_wer import OFF_TOPIC
from npc_voice.bench.cases import ALSO, INTERRUPTIONS, PHRASES, SPLITS
from npc_voice.config import ListeningConfig
from npc_voice.features.embed import Embedder
from npc_voice.model.topics import TopicMatcher
from npc_voice.persona.loader import FALLBACK, load_persona
from npc_voice.speech.tts import split_sentences


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """One text, the topics that would be a right answer to it, and what the matcher chose."""

    text: str
    wanted: list[str]
    topic: str
    similarity: float

    @property
    def right(self) -> bool:
        return self.topic in self.wanted


@dataclass(kw_only=True)
class TopicReport:
    """Accuracy per text set, and how close the unfinished first halves of split turns come to a topic."""

    persona: str
    examples: int
    sets: dict[str, list[Outcome]] = field(default_factory=dict)
    fragments: list[Outcome] = field(default_factory=list)
    preambles: list[Outcome] = field(default_factory=list)

    def summary(self) -> dict[str, float | int]:
        policy = ListeningConfig()
        out: dict[str, float | int] = {"examples": self.examples}
        for name, outcomes in self.sets.items():
            out[f"{name}_accuracy"] = round(sum(o.right for o in outcomes) / len(outcomes), 3)
        out["fragments"] = len(self.fragments)
        out["fragments_at_unsure_fit"] = sum(o.similarity >= policy.unsure_fit for o in self.fragments)
        out["fragments_at_sure_fit"] = sum(o.similarity >= policy.sure_fit for o in self.fragments)
        out["preambles"] = len(self.preambles)
        out["preambles_at_sure_fit"] = sum(o.similarity >= policy.sure_fit for o in self.preambles)
        return out

    def misses(self) -> list[Outcome]:
        return [o for outcomes in self.sets.values() for o in outcomes if not o.right]

    def to_json(self) -> dict:
        return {
            "summary": self.summary(),
            "sets": {k: [asdict(o) for o in v] for k, v in self.sets.items()},
            "fragments": [asdict(o) for o in self.fragments],
            "preambles": [asdict(o) for o in self.preambles],
        }


def held_out_texts() -> dict[str, list[tuple[str, list[str]]]]:
    """The bench's text sets as (text, acceptable topics)."""
    wordings = [(p, [topic, *ALSO.get(p, [])]) for topic, phrases in PHRASES.items() for p in phrases]
    whole = [(f"{head} {tail}", topics) for head, tail, topics in SPLITS]
    corrections = [(text, topics) for text, topics, _ in INTERRUPTIONS]
    off = [(text.capitalize() + ".", [FALLBACK]) for text in OFF_TOPIC]
    return {"wordings": wordings, "split_turns": whole, "interruptions": corrections, "off_topic": off}


def preambles() -> list[tuple[str, list[str]]]:
    """The first sentence of every held-out wording that has two, with the wording's topics."""
    out = []
    for topic, phrases in PHRASES.items():
        for p in phrases:
            first, *rest = split_sentences(p)
            if rest:
                out.append((first, [topic, *ALSO.get(p, [])]))
    return out


def run_topics(persona_path: Path, embedder: Embedder | None = None) -> TopicReport:
    """Match every held-out text with the persona's own matcher."""
    persona = load_persona(persona_path)
    matcher = TopicMatcher(persona, embedder or Embedder.shared())

    def outcome(text: str, wanted: list[str]) -> Outcome:
        choice = matcher.match(text)
        return Outcome(text=text, wanted=wanted, topic=choice.topic, similarity=round(choice.similarity, 3))

    report = TopicReport(persona=persona.id, examples=sum(len(t.examples) for t in persona.topics.values()))
    for name, texts in held_out_texts().items():
        report.sets[name] = [outcome(text, wanted) for text, wanted in texts]
    report.fragments = [outcome(head, topics) for head, _, topics in SPLITS]
    report.preambles = [outcome(text, topics) for text, topics in preambles()]
    return report
