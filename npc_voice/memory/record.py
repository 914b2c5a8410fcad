"""What an NPC remembers of one player: a bounded record, as an immutable snapshot.

Per (player id, NPC) the record keeps the recent turns (a sliding window: what the player said, the topic, what
the NPC answered, when) and a compressed long-term record of everything older: how often each topic was asked
and when last, the facts the player stated (their name), the visits, how the last conversation ended and the
NPC's feeling toward the player. Nothing in it grows with play time: every part has a fixed cap (below), so one
(player, NPC) record holds at most ``MAX_RECORD_BYTES`` of text however long they play.

A ``Memory`` is never changed in place: each ``with_*`` returns a new one. The step thread swaps the session's
snapshot, the look-ahead threads read whichever snapshot they got, with no lock (``engine/memory.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

RECENT_TURNS = 12  # the sliding window: enough for "as I said" and a recap, small enough to write whole
MAX_TOPICS = 64  # a persona has 10-20 topics; more are dropped least recently asked first
MAX_FACTS = 16  # facts the player stated (``FACTS`` names the kinds the engine extracts)
MAX_HEARD = 200  # characters kept of what the player said in a turn (a 20 s turn is about 300)
MAX_SAID = 300  # characters kept of the NPC's answer
MAX_TOPIC_ID = 64
MAX_FACT_VALUE = 64
MAX_LABEL = 32  # an ending or a feeling label
# The most text one record can hold (UTF-8 may need up to 4 bytes a character; ids are ASCII): the bound the
# docs state, checked by a test against records filled to every cap.
MAX_RECORD_BYTES = (
    RECENT_TURNS * (4 * (MAX_HEARD + MAX_SAID) + MAX_TOPIC_ID + 8 + 1)
    + MAX_TOPICS * (MAX_TOPIC_ID + 4 + 8)
    + MAX_FACTS * (MAX_TOPIC_ID + 4 * MAX_FACT_VALUE + 8)
    + 4 * 8 + 2 * MAX_LABEL + 2 * 128
)

FACTS = ("player_name",)  # what a line may say as {player_name} and test with ``knows:``
ENDINGS = ("goodbye", "left", "walked_off")  # how a conversation ended (``last_ended:``)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (at a word when it can), whitespace collapsed."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] if " " in text[: limit - 1] else text[: limit - 1]
    return cut + "…"


@dataclass(frozen=True)
class Turn:
    """One exchange: what the player said, the topic the NPC took it for, what it answered, when."""

    at: float  # unix time the answer began
    heard: str
    topic: str
    said: str
    completed: bool = True  # False: the player cut the answer off

    def bounded(self) -> Turn:
        return Turn(self.at, clip(self.heard, MAX_HEARD), self.topic[:MAX_TOPIC_ID], clip(self.said, MAX_SAID),
                    self.completed)


@dataclass(frozen=True)
class TopicCount:
    """How often the player asked about a topic, and when last."""

    count: int
    last_at: float


def _frozen(mapping: Mapping | None = None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Memory:
    """The record one NPC keeps of one player (``player`` "" for a player the game did not name: then it lasts
    only as long as the conversation)."""

    player: str
    npc: str
    visits: int = 0
    first_seen: float | None = None
    last_seen: float | None = None
    last_ended: str | None = None  # one of ``ENDINGS``
    feeling: str | None = None  # the NPC's feeling at the end of the last turn (``npc_voice.model.emotion``)
    regard: float = 0.0  # -1..1: the NPC's warmth toward the player, a running mean of its feeling's valence
    topics: Mapping[str, TopicCount] = field(default_factory=_frozen)
    facts: Mapping[str, str] = field(default_factory=_frozen)
    turns: tuple[Turn, ...] = ()

    # ------------------------------------------------------------------ reading (conditions, placeholders)

    def asked(self, topic: str) -> int:
        """How often the player asked about ``topic`` before (0: never)."""
        got = self.topics.get(topic)
        return got.count if got else 0

    def knows(self, fact: str) -> bool:
        return bool(self.facts.get(fact))

    @property
    def named(self) -> bool:
        """Persisted: the game named the player."""
        return bool(self.player)

    # ------------------------------------------------------------------ changing (each returns a new record)

    def with_facts(self, facts: Mapping[str, str], now: float | None = None) -> Memory:
        """The player stated these facts (a new value replaces the old: "call me Ari" after "I'm Aria")."""
        if not facts:
            return self
        merged = dict(self.facts)
        for key, value in facts.items():
            merged.pop(key, None)
            merged[key[:MAX_TOPIC_ID]] = clip(value, MAX_FACT_VALUE)
        while len(merged) > MAX_FACTS:  # the oldest stated fact goes first (dicts keep insertion order)
            merged.pop(next(iter(merged)))
        return replace(self, facts=_frozen(merged))

    def with_turn(self, turn: Turn) -> Memory:
        """An answered turn: into the window, its topic counted."""
        turn = turn.bounded()
        topics = dict(self.topics)
        old = topics.get(turn.topic)
        topics[turn.topic] = TopicCount((old.count if old else 0) + 1, turn.at)
        if len(topics) > MAX_TOPICS:
            for stale in sorted(topics, key=lambda t: topics[t].last_at)[: len(topics) - MAX_TOPICS]:
                del topics[stale]
        return replace(self, topics=_frozen(topics), turns=(*self.turns, turn)[-RECENT_TURNS:],
                       last_seen=turn.at, first_seen=self.first_seen or turn.at)

    def with_feeling(self, feeling: str, valence: float, weight: float) -> Memory:
        """The NPC's feeling after a turn; ``regard`` moves ``weight`` of the way to its valence."""
        regard = min(1.0, max(-1.0, (1 - weight) * self.regard + weight * valence))
        return replace(self, feeling=feeling[:MAX_LABEL], regard=round(regard, 4))

    def with_visit(self, now: float) -> Memory:
        return replace(self, visits=self.visits + 1, last_seen=now, first_seen=self.first_seen or now)

    def seen(self, now: float) -> Memory:
        return replace(self, last_seen=now, first_seen=self.first_seen or now)

    def with_ending(self, how: str) -> Memory:
        assert how in ENDINGS, how
        return replace(self, last_ended=how)

    # ------------------------------------------------------------------ for people

    def summary(self, now: float | None = None) -> dict:
        """A plain dict for ``npc-voice memory show`` (times as ISO dates)."""
        now = time.time() if now is None else now

        def when(t: float | None) -> str | None:
            return None if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))

        return {
            "player": self.player,
            "npc": self.npc,
            "visits": self.visits,
            "first_seen": when(self.first_seen),
            "last_seen": when(self.last_seen),
            "last_ended": self.last_ended,
            "feeling": self.feeling,
            "regard": self.regard,
            "facts": dict(self.facts),
            "topics": {k: {"count": v.count, "last": when(v.last_at)}
                       for k, v in sorted(self.topics.items(), key=lambda kv: -kv[1].count)},
            "recent_turns": [{"at": when(t.at), "heard": t.heard, "topic": t.topic, "said": t.said,
                              "completed": t.completed} for t in self.turns],
        }


def text_bytes(memory: Memory) -> int:
    """The text a record holds, in UTF-8 bytes (the figure ``MAX_RECORD_BYTES`` bounds)."""

    def size(parts: Iterable[str | None]) -> int:
        return sum(len((p or "").encode()) for p in parts)

    turns = sum(size((t.heard, t.said, t.topic)) + 9 for t in memory.turns)
    topics = sum(size((k,)) + 12 for k in memory.topics)
    facts = sum(size((k, v)) + 8 for k, v in memory.facts.items())
    return turns + topics + facts + 32 + size((memory.last_ended, memory.feeling, memory.player, memory.npc))
