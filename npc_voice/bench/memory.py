"""What memory costs: per step, per answer, per commit, per player on disk (``npc-voice bench memory``).

- **Per step**: the two memory stages (``Recall`` before the game's cue, ``Remember`` after ``Speak``) over a
  stream of steps shaped like a conversation (an answer every ``turn_every`` steps: its ``response``,
  ``speech_start``, words and visemes; its line ending later; a greeting and a farewell cue now and then), with a
  real store on a temporary file: what the step thread pays. The store's commits run on its own thread.
- **Per answer**: choosing a line with the memory conditions and ``{player_name}`` of the shipped blacksmith
  (on the look-ahead threads, not the step), and reading the facts the words state.
- **Per commit**: the writer thread's transaction per change (``synchronous=FULL``).
- **On disk**: the file's size after many players each talking to every NPC far past every cap, per record.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npc_voice import events as ev
from npc_voice.config import MemoryConfig
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.memory import ConversationMemory
from npc_voice.engine.stages.recall import Recall
from npc_voice.engine.stages.remember import Remember
from npc_voice.engine.state import SpeakingState
from npc_voice.memory.facts import stated_facts
from npc_voice.memory.record import MAX_RECORD_BYTES, Memory, Turn, text_bytes
from npc_voice.memory.store import Change, MemoryStore
from npc_voice.model.emotion import NpcFeelings
from npc_voice.persona.loader import default_persona_dir, load_persona

QUESTIONS = ["My name is Clara.", "How much is a longsword?", "I'll take the sword.", "Tell me about the dragon.",
             "Can you fix my shield?", "Where is the castle?", "Goodbye."]


@dataclass
class Figures:
    rows: list[tuple[str, str]]

    def table(self) -> str:
        return "\n".join(f"| {k} | {v} |" for k, v in [("figure", "value"), ("---", "---"), *self.rows])


def _us(samples: list[float]) -> str:
    a = np.array(samples) * 1e6
    return f"mean {a.mean():.1f} µs, p50 {np.percentile(a, 50):.1f} µs, p99 {np.percentile(a, 99):.1f} µs"


def step_cost(steps: int, turn_every: int, folder: Path) -> tuple[list[float], MemoryStore]:
    """The step thread's time in the two memory stages, per step."""
    store = MemoryStore(folder / "steps.sqlite3")
    memory = ConversationMemory(MemoryConfig(), store, "bench-player", "smith")
    speaking = SpeakingState()
    recall, remember = Recall(memory, speaking), Remember(memory, NpcFeelings())
    rng = random.Random(0)
    times: list[float] = []
    open_line: str | None = None
    for k in range(steps):
        events: list[ev.Event] = [ev.Floor(action="listen", p_yield=0.1, p_yield_soon=0.1, p_player=0.2)]
        cue = "greeting" if k % 3000 == 0 else "farewell" if k % 3000 == 2999 else None
        if k % turn_every == 0:
            heard = rng.choice(QUESTIONS)
            open_line = f"smith-{k}"
            events += [ev.Transcript(text=heard, final=True),
                       ev.Response(offset=0.0, topic="buy_sword", text="A fine longsword, forty gold.",
                                   confidence=0.8, heard=heard),
                       ev.SpeechStart(offset=0.0, line_id=open_line, text="A fine longsword, forty gold."),
                       ev.Words(offset=0.0, words=[(0.0, "A"), (0.1, "fine")]),
                       ev.Visemes(offset=0.0, visemes=[(0.0, "aa"), (0.05, "E")])]
        elif open_line is not None and k % turn_every == turn_every // 2:
            events.append(ev.SpeechEnd(offset=0.1, line_id=open_line, completed=True))
            open_line = None
        frame = StepFrame(index=k, mic=np.zeros(0, np.int16), played=None, cue=cue, events=events)  # type: ignore[arg-type]
        t = time.perf_counter()
        recall.run(frame)
        remember.run(frame)
        times.append(time.perf_counter() - t)
    memory.close(npc_speaking=False)
    store.flush(timeout=3600)
    return times, store


def answer_cost(calls: int) -> tuple[list[float], list[float], list[float]]:
    """Choosing a buy_sword line without memory, with a remembered player, and reading the facts of the words."""
    smith = load_persona(default_persona_dir() / "blacksmith.yaml")
    rng = random.Random(1)
    memory = Memory("p", "smith").with_turn(Turn(1.0, "a sword?", "buy_sword", "forty gold")).with_facts(
        {"player_name": "Clara"})
    state = {"has_longsword": False, "gold": 100, "open_offer": "none", "quest_stage": "none"}
    plain, remembered, facts = [], [], []
    for k in range(calls):
        t = time.perf_counter()
        smith.choose_line("buy_sword", state, rng)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        smith.choose_line("buy_sword", state, rng, memory)
        remembered.append(time.perf_counter() - t)
        t = time.perf_counter()
        stated_facts(QUESTIONS[k % len(QUESTIONS)])
        facts.append(time.perf_counter() - t)
    return plain, remembered, facts


def disk(folder: Path, players: int, npcs: int, turns: int) -> tuple[int, int, float, list[float]]:
    """File size (bytes, after a checkpoint), records, the largest record's text and the commit times (ms)."""
    path = folder / "disk.sqlite3"
    store = MemoryStore(path)
    rng = random.Random(2)
    for p in range(players):
        for n in range(npcs):
            store.save(Change(f"player{p}", f"npc{n}", seen=1.0, visit=True))
            for k in range(turns):
                heard = " ".join(rng.choice(QUESTIONS) for _ in range(3))
                store.save(Change(f"player{p}", f"npc{n}", turn=Turn(float(k), heard, f"topic{k % 12}", heard * 2),
                                  facts={"player_name": "Clara"}, feeling="calm", regard=0.1))
    store.flush(timeout=3600)
    largest = max(text_bytes(m) for p in range(players) for m in store.records(f"player{p}"))
    commits = list(store.commit_ms)
    store.close()
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("VACUUM")
    db.close()
    return path.stat().st_size, players * npcs, largest, commits


def run_memory_bench(steps: int = 200_000, turn_every: int = 40, players: int = 50, npcs: int = 3,
                     turns: int = 100) -> Figures:
    with tempfile.TemporaryDirectory(prefix="npc-voice-memory-") as tmp:
        folder = Path(tmp)
        step_times, store = step_cost(steps, turn_every, folder)
        step_commits = list(store.commit_ms)
        store.close()
        plain, remembered, facts = answer_cost(20_000)
        size, records, largest, commits = disk(folder, players, npcs, turns)
    rows = [
        ("steps (one every 200 ms), an answer every", f"{steps}, {turn_every} steps ({turn_every * 0.2:.0f} s)"),
        ("Recall + Remember per step (step thread)", _us(step_times)),
        ("choose a buy_sword line, no memory (look-ahead thread)", _us(plain)),
        ("... with a remembered player (conditions, {player_name})", _us(remembered)),
        ("facts the words state, per answer", _us(facts)),
        ("commit per change (writer thread, synchronous=FULL)",
         f"p50 {statistics.median(commits + step_commits):.2f} ms, "
         f"p99 {np.percentile(commits + step_commits, 99):.2f} ms"),
        (f"file after {players} players x {npcs} NPCs x {turns} turns", f"{size / 1024:.0f} KiB, "
         f"{size / records / 1024:.1f} KiB per record"),
        ("largest record's text (bound)", f"{largest:.0f} bytes ({MAX_RECORD_BYTES} bytes)"),
    ]
    return Figures(rows)
