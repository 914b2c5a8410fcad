"""The memory database: one SQLite file (Python's ``sqlite3``, WAL journal) that every session of a sidecar writes.

- **Off the step.** One thread per store owns the one connection and does every read and write in order; a
  session's step only queues a ``Change`` (a few microseconds) and never waits. Opening a session reads its
  record through the same thread, on the open path, not in a step.
- **Crash-safe.** Each change is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) written as soon as it is
  queued, with ``synchronous=FULL``: a kill -9 (or a power cut) loses at most the changes not yet committed,
  which is the turn the NPC was answering; the file is never left half-written (SQLite's WAL guarantees it).
- **Concurrent.** Sessions of one sidecar share the writer thread, so their writes never contend; other
  processes on the same file (a second sidecar, ``npc-voice memory forget`` while the game runs) wait up to
  ``BUSY_TIMEOUT_S`` for the write lock. Changes are deltas (a topic asked once more, a turn added), not whole
  records, so two sessions writing one record both count.
- **Bounded.** The writer trims what a change adds to the caps of ``npc_voice.memory.record``.
- **Versioned.** ``PRAGMA user_version`` is the schema version; ``MIGRATIONS[n]`` takes a file from version n to
  n + 1 in one transaction. A file from a newer npc-voice is refused with a message, never rewritten.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npc_voice.memory.record import (
    MAX_FACTS,
    MAX_TOPICS,
    RECENT_TURNS,
    Memory,
    TopicCount,
    Turn,
    _frozen,
)

log = logging.getLogger(__name__)

APPLICATION_ID = 0x4E505643  # "NPVC" in the file header: this file is an npc-voice memory
BUSY_TIMEOUT_S = 5.0  # another process holding the write lock (a forget, a second sidecar) is waited for this long
ENV_PATH = "NPC_VOICE_MEMORY"  # where the memory file is, unless the game or --memory says


class MemoryStoreError(RuntimeError):
    """The memory file cannot be used: not ours, from a newer npc-voice, unreadable. The message says which."""


def default_path() -> Path:
    """``$NPC_VOICE_MEMORY``, else ``memory.sqlite3`` in the user's data folder (``~/.local/share/npc-voice`` on
    Linux, ``%LOCALAPPDATA%\\npc-voice`` on Windows, ``~/Library/Application Support/npc-voice`` on macOS)."""
    env = os.environ.get(ENV_PATH)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("npc-voice", appauthor=False)) / "memory.sqlite3"


# ------------------------------------------------------------------------------------------------ schema


def _v1(db: sqlite3.Connection) -> None:
    """The first schema: a row per (player, NPC), its topics, facts and recent turns."""
    _script(
        db,
        """
        CREATE TABLE npc_memory (
            player TEXT NOT NULL, npc TEXT NOT NULL,
            visits INTEGER NOT NULL DEFAULT 0,
            first_seen REAL, last_seen REAL,
            last_ended TEXT, feeling TEXT, regard REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (player, npc)
        ) WITHOUT ROWID;
        CREATE TABLE topics (
            player TEXT NOT NULL, npc TEXT NOT NULL, topic TEXT NOT NULL,
            count INTEGER NOT NULL, last_asked REAL NOT NULL,
            PRIMARY KEY (player, npc, topic)
        ) WITHOUT ROWID;
        CREATE TABLE facts (
            player TEXT NOT NULL, npc TEXT NOT NULL, fact TEXT NOT NULL,
            value TEXT NOT NULL, said_at REAL NOT NULL,
            PRIMARY KEY (player, npc, fact)
        ) WITHOUT ROWID;
        CREATE TABLE turns (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            player TEXT NOT NULL, npc TEXT NOT NULL,
            at REAL NOT NULL, heard TEXT NOT NULL, topic TEXT NOT NULL, said TEXT NOT NULL,
            completed INTEGER NOT NULL
        );
        CREATE INDEX turns_by_record ON turns (player, npc, id);
        """
    )


def _script(db: sqlite3.Connection, sql: str) -> None:
    """Run ``;``-separated statements inside the caller's transaction (``executescript`` would commit it)."""
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


# MIGRATIONS[n] takes a file from schema version n to n + 1 (version 0: a new, empty file). Append, never edit:
# files written by every released version must still open.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1]


def schema_version() -> int:
    return len(MIGRATIONS)


# ------------------------------------------------------------------------------------------------ changes


@dataclass(frozen=True)
class Change:
    """What one step changed in one record, as deltas the writer applies in one transaction."""

    player: str
    npc: str
    seen: float | None = None  # last contact
    visit: bool = False  # a new visit began
    turn: Turn | None = None  # an answered turn (its topic is counted once more)
    facts: dict[str, str] = field(default_factory=dict)
    ended: str | None = None
    feeling: str | None = None
    regard: float | None = None


@dataclass(frozen=True)
class _Job:
    run: Callable[[sqlite3.Connection], Any]
    done: Future | None = None


_STOP = object()


class MemoryStore:
    """The memory file of one sidecar (or one tool). Opens lazily: a sidecar whose sessions never name a player
    never creates the file. Thread-safe; ``save`` never blocks."""

    def __init__(self, path: Path | str | None = None, *, migrations: list[Callable] | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_path()
        self.migrations = list(MIGRATIONS if migrations is None else migrations)
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ready: Future[None] | None = None
        self._closed = False
        self.written = 0  # changes committed
        self.failed = 0  # changes that could not be written (logged)
        self.commit_ms: list[float] = []  # the last commits' times (for the bench), bounded
        self.error: str | None = None  # why the file cannot be used, once known

    # ------------------------------------------------------------------ the public calls

    def load(self, player: str, npc: str, timeout: float = 10.0) -> Memory:
        """The record of ``player`` with ``npc`` (an empty one if they never met). Raises ``MemoryStoreError``."""
        return self._call(lambda db: _read(db, player, npc), timeout)

    def save(self, change: Change) -> None:
        """Queue a change; the writer commits it within milliseconds. Never blocks, never raises."""
        if self._closed or self.error is not None:
            return
        self._start()
        self._jobs.put(_Job(lambda db: self._apply(db, change)))

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every change queued so far is committed."""
        if self._thread is not None:
            self._call(lambda db: None, timeout)

    def records(self, player: str, npc: str | None = None, timeout: float = 10.0) -> list[Memory]:
        """Every record of ``player`` (with one NPC, if given)."""
        def run(db: sqlite3.Connection) -> list[Memory]:
            rows = db.execute("SELECT npc FROM npc_memory WHERE player = ? AND (? IS NULL OR npc = ?) ORDER BY npc",
                              (player, npc, npc)).fetchall()
            return [_read(db, player, r[0]) for r in rows]

        return self._call(run, timeout)

    def players(self, timeout: float = 10.0) -> list[str]:
        return self._call(lambda db: [r[0] for r in db.execute(
            "SELECT DISTINCT player FROM npc_memory ORDER BY player")], timeout)

    def forget(self, player: str, timeout: float = 10.0) -> int:
        """Erase everything remembered of ``player`` (every NPC); returns how many records went."""
        def run(db: sqlite3.Connection) -> int:
            with _transaction(db):
                gone = db.execute("DELETE FROM npc_memory WHERE player = ?", (player,)).rowcount
                for table in ("topics", "facts", "turns"):
                    db.execute(f"DELETE FROM {table} WHERE player = ?", (player,))  # noqa: S608 - fixed names
            return gone

        return self._call(run, timeout)

    def integrity(self, timeout: float = 30.0) -> str:
        """SQLite's ``PRAGMA integrity_check``: ``"ok"`` for a sound file."""
        return self._call(lambda db: db.execute("PRAGMA integrity_check").fetchone()[0], timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued and close the file."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._jobs.put(_STOP)
            thread.join(timeout)

    # ------------------------------------------------------------------ the writer thread

    def _call(self, fn: Callable[[sqlite3.Connection], Any], timeout: float) -> Any:
        if self._closed:
            raise MemoryStoreError(f"{self.path}: the memory store is closed")
        self._start()
        done: Future = Future()
        self._jobs.put(_Job(fn, done))
        return done.result(timeout)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._ready = Future()
                self._thread = threading.Thread(target=self._run, name="npc-memory", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        try:
            db = self._open()
        except Exception as exc:  # noqa: BLE001 - every job is answered with the reason
            self.error = str(exc)
            log.error("memory: %s", exc)
            db = None
        while True:
            job = self._jobs.get()
            if job is _STOP:
                break
            if db is None:
                if job.done is not None:
                    job.done.set_exception(MemoryStoreError(self.error))
                else:
                    self.failed += 1
                continue
            try:
                result = job.run(db)
            except Exception as exc:  # noqa: BLE001 - a bad change is logged; the store goes on
                if job.done is not None:
                    job.done.set_exception(exc if isinstance(exc, MemoryStoreError) else
                                           MemoryStoreError(f"{self.path}: {exc}"))
                else:
                    self.failed += 1
                    log.error("memory: a change could not be written to %s: %s", self.path, exc)
                continue
            if job.done is not None:
                job.done.set_result(result)
        if db is not None:
            db.close()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            app = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise MemoryStoreError(f"{self.path} is not an npc-voice memory file ({exc}); move it away or "
                                   "choose another file") from exc
        if app != APPLICATION_ID and (app != 0 or version != 0 or tables):  # ours, or a new empty file
            db.close()
            raise MemoryStoreError(f"{self.path} is an SQLite file of another program; choose another file")
        if version > len(self.migrations):
            db.close()
            raise MemoryStoreError(f"{self.path} was written by a newer npc-voice (schema version {version}; this "
                                   f"one knows up to {len(self.migrations)}); upgrade npc-voice or use another file")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            log.warning("memory: %s cannot use WAL (journal mode %s): writers will wait on readers", self.path, mode)
        db.execute("PRAGMA synchronous=FULL")  # a committed turn survives a power cut too; commits are off the step
        for n in range(version, len(self.migrations)):
            with _transaction(db):
                self.migrations[n](db)
                db.execute(f"PRAGMA user_version = {n + 1}")
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            log.info("memory: %s migrated to schema version %d", self.path, n + 1)
        return db

    def _apply(self, db: sqlite3.Connection, c: Change) -> None:
        t0 = time.perf_counter()
        now = c.seen or (c.turn.at if c.turn else time.time())
        with _transaction(db):
            db.execute("INSERT INTO npc_memory (player, npc, first_seen, last_seen) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (player, npc) DO NOTHING", (c.player, c.npc, now, now))
            db.execute(
                "UPDATE npc_memory SET visits = visits + ?, last_seen = max(coalesce(last_seen, 0), ?), "
                "last_ended = coalesce(?, last_ended), feeling = coalesce(?, feeling), "
                "regard = coalesce(?, regard) WHERE player = ? AND npc = ?",
                (int(c.visit), now, c.ended, c.feeling, c.regard, c.player, c.npc))
            for fact, value in c.facts.items():
                db.execute("INSERT INTO facts VALUES (?, ?, ?, ?, ?) ON CONFLICT (player, npc, fact) DO UPDATE "
                           "SET value = excluded.value, said_at = excluded.said_at",
                           (c.player, c.npc, fact, value, now))
            if c.facts:
                db.execute("DELETE FROM facts WHERE player = ? AND npc = ? AND fact NOT IN (SELECT fact FROM facts "
                           "WHERE player = ? AND npc = ? ORDER BY said_at DESC LIMIT ?)",
                           (c.player, c.npc, c.player, c.npc, MAX_FACTS))
            if c.turn is not None:
                t = c.turn.bounded()
                db.execute("INSERT INTO turns (player, npc, at, heard, topic, said, completed) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (c.player, c.npc, t.at, t.heard, t.topic, t.said, int(t.completed)))
                db.execute("DELETE FROM turns WHERE player = ? AND npc = ? AND id NOT IN (SELECT id FROM turns "
                           "WHERE player = ? AND npc = ? ORDER BY id DESC LIMIT ?)",
                           (c.player, c.npc, c.player, c.npc, RECENT_TURNS))
                db.execute("INSERT INTO topics VALUES (?, ?, ?, 1, ?) ON CONFLICT (player, npc, topic) DO UPDATE "
                           "SET count = count + 1, last_asked = excluded.last_asked",
                           (c.player, c.npc, t.topic, t.at))
                db.execute("DELETE FROM topics WHERE player = ? AND npc = ? AND topic NOT IN (SELECT topic FROM "
                           "topics WHERE player = ? AND npc = ? ORDER BY last_asked DESC LIMIT ?)",
                           (c.player, c.npc, c.player, c.npc, MAX_TOPICS))
        self.written += 1
        self.commit_ms = [*self.commit_ms[-999:], (time.perf_counter() - t0) * 1000.0]


class _transaction:
    """``BEGIN IMMEDIATE`` (take the write lock first: no lock upgrade to deadlock on) ... ``COMMIT``, or roll
    back on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: type | None, *_: object) -> None:
        if kind is not None:
            self.db.execute("ROLLBACK")
            return
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error:
            self.db.execute("ROLLBACK")  # never leave the connection inside a transaction
            raise


def _read(db: sqlite3.Connection, player: str, npc: str) -> Memory:
    row = db.execute("SELECT visits, first_seen, last_seen, last_ended, feeling, regard FROM npc_memory "
                     "WHERE player = ? AND npc = ?", (player, npc)).fetchone()
    if row is None:
        return Memory(player, npc)
    topics = {t: TopicCount(n, at) for t, n, at in db.execute(
        "SELECT topic, count, last_asked FROM topics WHERE player = ? AND npc = ?", (player, npc))}
    facts = dict(db.execute("SELECT fact, value FROM facts WHERE player = ? AND npc = ? ORDER BY said_at",
                            (player, npc)).fetchall())
    turns = tuple(Turn(at, heard, topic, said, bool(done)) for at, heard, topic, said, done in db.execute(
        "SELECT at, heard, topic, said, completed FROM turns WHERE player = ? AND npc = ? ORDER BY id",
        (player, npc)))
    visits, first, last, ended, feeling, regard = row
    return Memory(player, npc, visits, first, last, ended, feeling, regard, _frozen(topics), _frozen(facts), turns)
