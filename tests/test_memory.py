"""What an NPC remembers of a player: the facts they state, a bounded record, conditions and {player_name} in lines,
the session keeping it turn by turn, and the SQLite file (WAL, versioned, safe under concurrent writers)."""

from __future__ import annotations

import json
import multiprocessing
import random
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from npc_voice import events as ev
from npc_voice.audio.format import CHUNK_SAMPLES
from npc_voice.cli import main
from npc_voice.config import EngineConfig, MemoryConfig
from npc_voice.engine.context import EngineParts
from npc_voice.engine.memory import ConversationMemory
from npc_voice.engine.session import Session
from npc_voice.memory import Change, Memory, MemoryStore, MemoryStoreError, Turn, stated_facts
from npc_voice.memory.record import MAX_RECORD_BYTES, MAX_TOPICS, RECENT_TURNS, text_bytes
from npc_voice.memory.store import APPLICATION_ID, MIGRATIONS, schema_version
from npc_voice.persona.loader import PersonaError, load_persona
from tests.fakes import (
    FakeAccurateByLevel,
    FakeCanceller,
    FakeHeads,
    FakeLoaded,
    FakeMatcher,
    FakeRecognizer,
    FakeResources,
    FakeVAD,
)

BLACKSMITH = Path(__file__).resolve().parents[1] / "assets" / "personas" / "blacksmith.yaml"


# ---------------------------------------------------------------------------------------------- facts, record


@pytest.mark.parametrize(("words", "name"), [
    ("My name is Clara.", "Clara"),
    ("my name is clara", "Clara"),
    ("Hi, I'm Aria, and I need a sword.", "Aria"),
    ("Call me Robin Hood.", "Robin Hood"),
    ("The name's Bond.", "Bond"),
    ("I am Tom.", "Tom"),
    ("I'm sorry.", None),
    ("I'm looking for a sword.", None),
    ("I'm English.", None),
    ("My name is not important.", None),
    ("Call me when it is ready.", None),
    ("I would like to buy a sword.", None),
])
def test_the_player_states_their_name_and_nothing_else_passes_for_one(words: str, name: str | None) -> None:
    assert stated_facts(words) == ({"player_name": name} if name else {})


def test_a_record_stays_within_its_bound_however_long_they_play() -> None:
    memory = Memory("a" * 128, "n" * 128)
    rng = random.Random(0)
    for k in range(2000):
        heard = "ü" * rng.randint(0, 400)  # 2-byte characters, longer than the caps
        memory = memory.with_turn(Turn(float(k), heard, f"topic_{k % 100:03d}" * 6, "€" * rng.randint(0, 600)))
        memory = memory.with_facts({f"fact_{k % 40}": "x" * 100})
    assert len(memory.turns) == RECENT_TURNS and len(memory.topics) == MAX_TOPICS and len(memory.facts) == 16
    assert sum(t.count for t in memory.topics.values()) <= 2000
    assert text_bytes(memory) <= MAX_RECORD_BYTES
    assert MAX_RECORD_BYTES <= 36 * 1024  # the bound the docs state (35,340 bytes)


# ---------------------------------------------------------------------------------------------- conditions


def test_lines_test_what_the_npc_remembers_and_say_the_players_name(tmp_path: Path) -> None:
    smith = load_persona(BLACKSMITH)
    rng = random.Random(3)
    stranger = Memory("p", "smith")
    assert {smith.choose_line("buy_sword", {}, rng, stranger).text for _ in range(30)} == {
        "A fine longsword, forty gold. Balanced it myself.",
        "I have a good steel sword for forty gold, or a short blade for twenty five gold."}
    asked = stranger.with_turn(Turn(1.0, "a sword?", "buy_sword", "..."))
    again = smith.choose_line("buy_sword", {"has_longsword": False}, rng, asked)
    assert again.text.startswith("As I said, forty gold") and [a.kind for a in again.actions] == ["offer"]
    assert smith.choose_line("buy_sword", {"has_longsword": False}, rng, None).text != again.text  # no memory
    named = asked.with_facts({"player_name": "Clara"})
    owned = smith.choose_line("buy_sword", {"has_longsword": True}, rng, named)
    assert owned.text == "You already have one of my longswords, Clara. Keep it oiled and it will outlive us both."
    # a greeting that remembers: by name once known, "back again" on a later visit
    assert smith.bark("greeting", {}, rng, stranger.with_visit(1.0)).text == "Mind the sparks!"
    by_name = smith.bark("greeting", {}, rng, named.with_visit(1.0))
    assert by_name.text == "Clara! Mind the sparks, the forge is hot today."
    back = named.with_visit(1.0).with_visit(9000.0)
    assert smith.bark("greeting", {}, rng, back).text == "Back again, Clara? Mind the sparks!"
    away = replace(stranger.with_visit(1.0).with_visit(9000.0), last_ended="walked_off")
    assert smith.bark("greeting", {}, rng, away).text == "Ran off mid-sentence last time, eh? Mind the sparks."


def test_persona_check_reports_memory_conditions_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("""id: t
name: T
topics:
  buy:
    examples: [I want a sword., Sell me a blade.]
    lines:
      - text: Again?
        when: {asked_before: bye}
      - text: Hello, {player_name}.
        when: {knows: name, visits: "about two", last_ended: yelled, regard: "> 5"}
  fallback:
    lines: ["Eh?"]
""")
    with pytest.raises(PersonaError) as err:
        load_persona(path)
    got = {(p.line, p.what.split(" in ")[0]) for p in err.value.problems}
    assert (8, "condition 'asked_before: bye'") in got
    assert (10, "condition 'knows: name'") in got
    assert (10, "condition 'visits: about two'") in got
    assert (10, "condition 'last_ended: yelled'") in got
    assert (10, "condition 'regard: > 5'") in got
    assert "did you mean 'buy'?" in str(err.value)


# ---------------------------------------------------------------------------------------------- the session


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_a_turn_is_saved_when_its_line_ends_and_forgotten_if_withdrawn(tmp_path: Path) -> None:
    store, clock = MemoryStore(tmp_path / "m.sqlite3"), Clock()
    memory = ConversationMemory(MemoryConfig(), store, "p1", "smith", clock)
    memory.arrived()
    memory.answered("smith-1", "My name is Clara.", "about_self", "Well met, Clara.", "happy", 0.6)
    assert memory.view.knows("player_name") and memory.view.asked("about_self") == 1  # at once, for the next answer
    store.flush()
    assert store.load("p1", "smith").asked("about_self") == 0  # not yet saved: the answer may still be withdrawn
    memory.line_ended("smith-1", completed=True)
    clock.t += 5
    memory.answered("smith-2", "How much for a sword?", "buy_sword", "Forty gold.", "neutral", 0.0)
    memory.withdrawn("smith-2")  # the player was going on with their turn
    assert memory.view.asked("buy_sword") == 0
    memory.answered("smith-3", "How much for a sword, and a shield?", "prices", "Forty and thirty.", "neutral", 0.0)
    memory.line_ended("smith-3", completed=False)  # cut off
    memory.left(npc_speaking=False)
    store.flush()
    saved = store.load("p1", "smith")
    assert [(t.topic, t.completed) for t in saved.turns] == [("about_self", True), ("prices", False)]
    assert saved.facts == {"player_name": "Clara"} and saved.visits == 1 and saved.last_ended == "walked_off"
    assert saved.regard == pytest.approx(memory.view.regard) and saved.feeling == "neutral"
    clock.t += 30  # back within the visit gap: the same visit
    again = ConversationMemory(MemoryConfig(), store, "p1", "smith", clock)
    again.arrived()
    assert again.view.visits == 1
    again.close(npc_speaking=False)
    clock.t += MemoryConfig().visit_gap_s  # a later session, no cue first: its first turn begins a visit
    later = ConversationMemory(MemoryConfig(), store, "p1", "smith", clock)
    later.answered("smith-1", "Goodbye.", "farewell", "Safe roads.", "calm", 0.2)
    later.line_ended("smith-1", completed=True)
    later.close(npc_speaking=False)
    store.flush()
    assert store.load("p1", "smith").visits == 2 and store.load("p1", "smith").last_ended == "goodbye"
    store.close()


SAID = {3000: "My name is Clara.", 2000: "How much for a sword?"}


def remembering_session(resources: FakeResources, player: str | None, mic: list[int],
                        cue: dict[int, str]) -> list[ev.Event]:
    """A session on fakes with the real blacksmith persona; the player says ``SAID`` by microphone level."""
    said = [SAID[level] for k, level in enumerate(mic) if level and (k == 0 or mic[k - 1] != level)]
    parts = EngineParts(vad=lambda: FakeVAD([0.9 if level else 0.0 for level in mic]), canceller=FakeCanceller,
                        recognizer=lambda asr, lm: FakeRecognizer(*[[w.lower()] for w in said]),
                        heads=lambda: FakeHeads(0.9), use_endpoint=False, sentiment=lambda text: None)
    resources.asr = FakeAccurateByLevel(SAID)
    session = Session(resources, "blacksmith", "smith", seed=1, simulated_clock=True, parts=parts,  # type: ignore[arg-type]
                      config=EngineConfig(), player=player, state={"has_longsword": False})
    events = [e for k, level in enumerate(mic)
              for e in session.step(np.full(CHUNK_SAMPLES, level, np.int16), None, cue=cue.get(k)).events]
    session.close()
    return events


def test_the_npc_remembers_a_named_player_across_sessions_and_greets_them_by_name(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "memory.sqlite3")
    brom = load_persona(BLACKSMITH)
    brom = replace(brom, temperament=replace(brom.temperament, talkativeness=1.0))  # chatty: he always greets
    smith = FakeLoaded(brom, FakeMatcher({"name": "about_self", "sword": "buy_sword"}))
    resources = FakeResources(memory=store, loaded=smith)
    name, sword = [0, 3000, 3000, 3000, 3000] + [0] * 30, [0, 2000, 2000, 2000, 2000] + [0] * 30
    first = remembering_session(resources, "p1", [0] * 20 + name + sword, {0: "greeting"})
    said = [e.text for e in first if isinstance(e, ev.Response)]
    assert said[0] == "Well met, Clara. I am Brom Ironhand, smith of this village for twenty years."
    assert "forty gold" in said[1] and not said[1].startswith("As I said")
    store.flush()
    assert store.load("p1", "smith").facts == {"player_name": "Clara"}
    second = remembering_session(resources, "p1", [0] * 20 + sword, {0: "greeting"})
    (greeting,) = [e for e in second if isinstance(e, ev.Bark)]
    assert greeting.text == "Clara! Mind the sparks, the forge is hot today."
    (answer,) = [e for e in second if isinstance(e, ev.Response)]
    assert answer.text == "As I said, forty gold for the longsword, and worth every coin."
    # a player the game did not name is remembered only within the session, and nothing is written
    third = remembering_session(resources, None, [0] * 20 + sword, {0: "greeting"})
    assert [e.text for e in third if isinstance(e, ev.Bark)] == ["Mind the sparks!"]
    store.flush()
    assert store.players() == ["p1"]
    store.close()


# ---------------------------------------------------------------------------------------------- the file


def test_the_file_is_wal_versioned_ours_and_refused_when_not(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    store = MemoryStore(path)
    store.save(Change("p", "smith", seen=1.0, visit=True, facts={"player_name": "Clara"}))
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == schema_version() == len(MIGRATIONS)
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    db.execute(f"PRAGMA user_version = {schema_version() + 1}")  # as a newer npc-voice would leave it
    db.close()
    with pytest.raises(MemoryStoreError, match="newer npc-voice"):
        MemoryStore(path).load("p", "smith")
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE notes (x)").connection.commit()
    with pytest.raises(MemoryStoreError, match="another program"):
        MemoryStore(other).load("p", "smith")
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(MemoryStoreError, match="not an npc-voice memory file"):
        MemoryStore(junk).load("p", "smith")
    assert junk.read_bytes() == b"this is not a database at all" * 100  # never overwritten


def test_a_file_from_an_older_version_is_migrated_in_place_keeping_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    old = MemoryStore(path)
    old.save(Change("p", "smith", turn=Turn(5.0, "hello", "greeting", "Well met"), facts={"player_name": "Clara"}))
    old.close()

    def v2(db: sqlite3.Connection) -> None:  # what a next version might add
        db.execute("ALTER TABLE npc_memory ADD COLUMN nickname TEXT")

    new = MemoryStore(path, migrations=[*MIGRATIONS, v2])
    kept = new.load("p", "smith")
    assert kept.facts == {"player_name": "Clara"} and [t.heard for t in kept.turns] == ["hello"]
    new.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1
    assert "nickname" in [row[1] for row in db.execute("PRAGMA table_info(npc_memory)")]


def _other_process_writes(path: str, n: int) -> None:
    store = MemoryStore(path)
    for k in range(n):
        store.save(Change("elsewhere", "guard", turn=Turn(float(k), f"q{k}", "news", "a")))
    store.close()


def test_the_file_stays_valid_under_8_concurrent_sessions_writing(tmp_path: Path) -> None:
    """Eight sessions of one sidecar (threads sharing its store) and a second process on the same file, at once."""
    path = tmp_path / "memory.sqlite3"
    store = MemoryStore(path)
    turns = 60
    other = multiprocessing.get_context("spawn").Process(target=_other_process_writes, args=(str(path), turns))
    other.start()
    start = threading.Barrier(8)

    names = ["Ann", "Ben", "Cora", "Dan", "Eva", "Finn", "Gus", "Hal"]

    def session(n: int) -> None:
        memory = ConversationMemory(MemoryConfig(), store, f"player{n % 4}", f"npc{n}")
        start.wait()
        memory.arrived()
        for k in range(turns):
            memory.answered(f"l{k}", f"question {k} my name is {names[n]}", f"topic{k % 5}", "answer", "calm", 0.1)
            memory.line_ended(f"l{k}", completed=True)
        memory.close(npc_speaking=False)

    threads = [threading.Thread(target=session, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.join(60)
    assert other.exitcode == 0
    store.flush()
    assert store.integrity() == "ok" and store.failed == 0
    for n in range(8):
        record = store.load(f"player{n % 4}", f"npc{n}")
        assert sum(t.count for t in record.topics.values()) == turns  # every turn counted, none lost or doubled
        assert len(record.turns) == RECENT_TURNS and record.facts == {"player_name": names[n]}
    assert sum(t.count for t in store.load("elsewhere", "guard").topics.values()) == turns
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_memory_show_and_forget_for_designers_and_players(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    store = MemoryStore(path)
    for npc in ("smith", "guard"):
        store.save(Change("clara", npc, seen=1.0, visit=True, facts={"player_name": "Clara"},
                          turn=Turn(2.0, "Hello!", "greeting", "Well met.")))
    store.save(Change("bob", "smith", seen=1.0, visit=True))
    store.close()
    runner = CliRunner()
    shown = runner.invoke(main, ["memory", "show", "clara", "smith", "--db", str(path), "--json"])
    assert shown.exit_code == 0, shown.output
    (record,) = json.loads(shown.output)
    assert record["facts"] == {"player_name": "Clara"} and record["topics"]["greeting"]["count"] == 1
    text = runner.invoke(main, ["memory", "show", "clara", "--db", str(path)])
    assert "guard remembers clara" in text.output and "smith remembers clara" in text.output
    gone = runner.invoke(main, ["memory", "forget", "clara", "--db", str(path)])
    assert gone.exit_code == 0 and "2 NPC record(s)" in gone.output
    none = runner.invoke(main, ["memory", "show", "clara", "--db", str(path)])
    assert none.exit_code != 0 and "remembers nothing" in none.output
    assert MemoryStore(path).players() == ["bob"]
    missing = runner.invoke(main, ["memory", "show", "clara", "--db", str(tmp_path / "nope.sqlite3")])
    assert missing.exit_code != 0 and "no memory file" in missing.output


def test_a_memory_file_that_cannot_be_used_is_told_to_the_game_and_the_session_goes_on(tmp_path: Path) -> None:
    junk = tmp_path / "memory.sqlite3"
    junk.write_bytes(b"not a database" * 100)
    resources = FakeResources(memory=MemoryStore(junk))
    session = Session(resources, "smith", "smith", seed=1, simulated_clock=True, player="p1",  # type: ignore[arg-type]
                      parts=EngineParts(vad=lambda: FakeVAD([]), canceller=FakeCanceller,
                                        recognizer=lambda asr, lm: FakeRecognizer(), use_heads=False,
                                        use_endpoint=False, sentiment=lambda text: None))
    steps = [session.step(np.zeros(CHUNK_SAMPLES, np.int16), None).events for _ in range(3)]
    notices = [e for step in steps for e in step if isinstance(e, ev.Notice)]
    assert [n.code for n in notices] == ["memory_error"] and "not an npc-voice memory file" in notices[0].message
    assert session.memory.player == "p1" and session.memory.visits == 0  # remembered within the session only
    session.close()
    assert junk.read_bytes() == b"not a database" * 100
