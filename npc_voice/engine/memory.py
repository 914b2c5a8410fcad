"""The conversation's memory: what the NPC remembers of the player it talks to, kept up to date turn by turn.

The record is read once, when the session opens (on the sidecar's open path, never in a step). From then on the
session holds it as an immutable snapshot (``npc_voice.memory.Memory``): the step thread swaps in a new one when
something happens, and the look-ahead threads choosing an answer read whichever snapshot they got, with no lock.
Every change also goes to the store as a delta, queued for its writer thread (``MemoryStore.save`` never waits).

When a change is saved: a visit at once; an answered turn (with the facts it stated, the NPC's feeling) when the
answer's line ends, said whole or cut, so an answer withdrawn at its onset (the player was going on) is never
recorded; how the conversation ended when the player leaves or the session closes. A kill -9 therefore loses at
most the turn being answered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from npc_voice.config import MemoryConfig
from npc_voice.memory.facts import stated_facts
from npc_voice.memory.record import Memory, Turn
from npc_voice.memory.store import Change, MemoryStore, MemoryStoreError

log = logging.getLogger(__name__)

FAREWELL_TOPIC = "farewell"  # the persona topic of a player saying goodbye (every shipped persona has one)


@dataclass(frozen=True)
class _Answer:
    """An answer begun and not yet ended: recorded in the snapshot, saved when its line ends."""

    line_id: str
    turn: Turn
    facts: dict[str, str]
    before: Memory  # the snapshot before it, if it is withdrawn
    feeling: str
    regard: float


class ConversationMemory:
    """One session's memory of its player. ``player`` None: the game did not name them; the NPC then remembers
    only within this conversation (nothing is written)."""

    def __init__(self, config: MemoryConfig, store: MemoryStore | None, player: str | None, npc: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.config, self.clock = config, clock
        self.problem: str | None = None  # why the memory file could not be used (told to the game once)
        self.store = store if player else None
        self.view = Memory(player or "", npc)
        if self.store is not None and player:
            try:
                self.view = self.store.load(player, npc)
            except (MemoryStoreError, TimeoutError) as exc:
                self.problem = f"the NPC cannot remember this player: {exc}"
                log.error("memory: %s", self.problem)
                self.store = None
        self._answer: _Answer | None = None
        self._visited = False  # a visit was counted in this session
        self._talked = False  # turns were answered since the last ending was recorded
        self._cut = False  # the last answer was cut off

    def for_words(self, heard: str) -> Memory:
        """What the NPC remembers, with the facts these words state ("I'm Aria"): the answer to them may use it."""
        facts = stated_facts(heard)
        return self.view.with_facts(facts) if facts else self.view

    # ------------------------------------------------------------------ the step thread

    def arrived(self) -> None:
        """The player came within earshot: a new visit if they were away ``visit_gap_s``."""
        now = self.clock()
        last = self.view.last_seen
        if last is None or now - last >= self.config.visit_gap_s:
            self.view = self.view.with_visit(now)
            self._save(Change(self.view.player, self.view.npc, seen=now, visit=True))
        else:
            self.view = self.view.seen(now)
        self._visited = True

    def answered(self, line_id: str, heard: str, topic: str, said: str, feeling: str, valence: float) -> None:
        """The NPC began to answer the player: remembered now, saved when the line ends."""
        self._save_answer(completed=True)  # an answer still open (the line ran on) is done by now
        if not self._visited:  # talking without having been cued near: this is a visit too
            self.arrived()
        now = self.clock()
        before = self.view
        facts = stated_facts(heard)
        turn = Turn(now, heard, topic, said)
        self.view = self.view.with_facts(facts).with_turn(turn).with_feeling(
            feeling, valence, self.config.regard_weight)
        self._answer = _Answer(line_id, turn, facts, before, feeling, self.view.regard)
        self._talked = True

    def line_ended(self, line_id: str, completed: bool) -> None:
        if self._answer is not None and self._answer.line_id == line_id:
            self._cut = not completed
            self._save_answer(completed)

    def withdrawn(self, line_id: str) -> None:
        """The answer stopped at its onset: the player was going on with their turn. As if never given."""
        if self._answer is not None and self._answer.line_id == line_id:
            self.view = self._answer.before
            self._answer = None

    def left(self, npc_speaking: bool) -> None:
        """The player walked off (or the game closed the session): how the conversation ended, if there was one."""
        self._save_answer(completed=not npc_speaking)
        self._visited = False
        if not self._talked:
            return
        self._talked = False
        last = self.view.turns[-1].topic if self.view.turns else None
        if last == FAREWELL_TOPIC and not npc_speaking:
            how = "goodbye"
        elif npc_speaking or self._cut:
            how = "walked_off"
        else:
            how = "left"
        now = self.clock()
        self.view = self.view.with_ending(how).seen(now)
        self._save(Change(self.view.player, self.view.npc, seen=now, ended=how))

    def close(self, npc_speaking: bool) -> None:
        self.left(npc_speaking)

    # ------------------------------------------------------------------ saving

    def _save_answer(self, completed: bool) -> None:
        answer, self._answer = self._answer, None
        if answer is None:
            return
        turn = Turn(answer.turn.at, answer.turn.heard, answer.turn.topic, answer.turn.said, completed)
        if not completed:
            self.view = self._mark_cut(turn)
        self._save(Change(self.view.player, self.view.npc, seen=turn.at, turn=turn, facts=answer.facts,
                          feeling=answer.feeling, regard=answer.regard))

    def _mark_cut(self, turn: Turn) -> Memory:
        turns = tuple(turn if t.at == turn.at else t for t in self.view.turns)
        return replace(self.view, turns=turns)

    def _save(self, change: Change) -> None:
        if self.store is not None:
            self.store.save(change)
