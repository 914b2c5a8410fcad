"""The sidecar's front: a ZeroMQ ROUTER that routes many NPC sessions to engine workers.

One thread owns the socket and never computes: it decodes, routes and replies. The sessions run in
engine workers (``transport/workers.py``): the front's own step threads (``--procs 1``, one interpreter
lock), worker processes, one per core (``--procs N``), or Ray actors across machines (``--ray``). Each
session lives on one worker for its whole life (its state is there); a new session goes to the live
worker with the most room. The front runs at most one request at a time per session so each session's
chunks stay in order, and queues the rest. A bad message gets an ``error`` reply naming the problem; it
never touches another session, and no input can stop the loop: anything unexpected becomes an
``internal`` error reply and a log line.

Capacity: each worker says how many sessions it holds in real time (measured at its start-up, or
configured); past the live workers' total (or ``max_sessions``), a new session gets ``capacity``.

A worker that dies (kill -9, a lost machine) takes its sessions with it: each gets ``no_session`` at once
(for the chunk it was stepping, if any), which is what a client hears after a sidecar restart, so it
reopens the session (the front puts it on a live worker) and its first reply carries a ``notice``
(code ``moved``). The other workers' sessions never notice.

Overload: a reply later than ``LATE_S`` after its chunk arrived counts as late. When late replies on a
worker pile up, that worker degrades one level at a time, in the order of ``DEGRADE_ORDER`` (chosen from
the profile in ``docs/perf/README.md``), every session on it is told with a ``notice`` event (code
``degraded``), and a level is restored (``restored``) once replies are back on time; at the last level
it takes no new sessions (``capacity`` when none will). It never falls behind without saying so. A step
that shared a worker with a session being opened (loading a persona, warming the embedder: a one-off
second or so) is not judged: a game opening its villagers at start-up must not degrade or lock out the
very sessions it opens.

Security: loopback by default; any other address needs CURVE (a server key pair and a folder of
allowed client public keys), so an unknown client never gets a byte through. Every queue is bounded
and a client that goes silent loses its sessions after ``IDLE_TIMEOUT_S``.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import itertools
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from npc_voice import events as ev
from npc_voice.data import PersonaFolders
from npc_voice.features.asr import DEFAULT_RECOGNISER
from npc_voice.transport import protocol as p
from npc_voice.transport.workers import STEP_THREADS, EnginePool, EngineWorker, InprocWorkers, Request

if TYPE_CHECKING:
    from npc_voice.engine.resources import EngineResources

log = logging.getLogger(__name__)

MAX_PENDING = 16  # chunks (3.2 s) queued behind a busy session before the oldest is dropped
MAX_SESSIONS = 32
MAX_SESSIONS_PER_CLIENT = 16
IDLE_TIMEOUT_S = 30.0  # a client that sends nothing (not even a heartbeat) this long loses its sessions
STEP_WORKERS = STEP_THREADS  # per engine worker: a step may wait on its session's look-ahead work
START_TIMEOUT_S = 180.0  # the front is ready once every worker is, or after this with at least one
MOVED_MEMORY_S = 60.0  # a session lost with its worker is told ``moved`` if reopened within this
# A worker with a step out this long is hung (a deadlock, a stuck driver): it is killed, and its sessions move
# like a dead worker's. A step waits at most 0.3 s for its read and computes tens of ms; a session 3.2 s behind
# already drops chunks. An open may load a persona first: seconds on a busy machine (2.7 s here), so it gets longer.
HUNG_S = 10.0
HUNG_OPEN_S = 60.0

LATE_S = 0.15  # step runnable -> reply out; later than this leaves < 50 ms before the next chunk is due
WINDOW_S = 2.0  # late replies are counted over this much recent time
RAISE_LATE = 3  # this many late replies in the window (and over 5 % of them) degrade one level
RAISE_FRACTION = 0.05
HOLD_S = 1.0  # at least this long between two degrade steps: let the last one take effect
CALM_S = 5.0  # this long without a late reply restores one level
# ... unless the worker still holds as many sessions as when that level was needed: then undoing it would only
# make the same replies late again (the sidecar flapped between levels every 5 s at 8 and 16 sessions, each
# flap costing late replies before the level came back); it is tried again after this long on time
PROBE_S = 30.0
# What is turned off, in order, when the deadline cannot be met. Reading ahead while the player talks is
# the cheapest loss (answers come one chunk later). The learned duplex model costs every session ~3 ms
# in every step; while the NPC listens the rules decide without it (no floor events then), but it keeps
# running while the NPC speaks: without its player head only the echo canceller and the NPC's own words
# tell the NPC's echo from the player, and a loud echo misheard as words stopped the line (held-out echo-007).
# The accurate Whisper pass is the one thing a due answer waits for (up to two chunks in real time; a
# simulated-clock step blocks on it) and the most CPU per turn; a short queue then caps how far a session
# can fall behind (a stale chunk answered late is worth less than the next one on time).
DEGRADE_ORDER: tuple[tuple[str, str], ...] = (
    ("predictive_reads", "no reading ahead while the player talks: answers start a chunk later"),
    ("learned_model", "duplex model off while the NPC listens (no floor events then); it still guards against "
                      "the NPC's echo while it speaks"),
    ("accurate_pass", "accurate transcript pass off: answers come from the streaming transcript"),
    ("short_queue", "a busy session keeps only its newest chunk; older ones are dropped (overloaded); "
                    "new sessions are refused"),
)
def is_loopback(address: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on 127.0.0.0/8 or ::1."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    host = address.removeprefix("tcp://").rsplit(":", 1)[0].strip("[]")
    return host == "localhost" or host.startswith("127.") or host == "::1"


@dataclass(frozen=True)
class CurveKeys:
    """The sidecar's CURVE key pair file (``zmq.auth`` format) and the folder of allowed client public keys."""

    secret_file: Path
    clients_dir: Path


def generate_keys(folder: Path, name: str) -> tuple[Path, Path]:
    """Write a CURVE key pair ``name.key`` (public) and ``name.key_secret`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(folder), name)
    os.chmod(secret, 0o600)
    return Path(public), Path(secret)


def degraded_notice(level: int) -> ev.Notice:
    """What a session is told when the sidecar is at degrade ``level`` (1-based)."""
    return ev.Notice(code="degraded", message=f"level {level}: {DEGRADE_ORDER[level - 1][1]}")


def check_bind(address: str, allow_remote: bool, curve: CurveKeys | None) -> None:
    """Refuse a non-loopback address unless asked for explicitly and locked with CURVE."""
    if is_loopback(address):
        return
    if not allow_remote:
        raise ValueError(f"refusing to bind {address}: the sidecar binds to loopback unless told otherwise")
    if curve is None:
        raise ValueError(
            f"refusing to bind {address} without CURVE keys: on a non-loopback address anyone could "
            "connect; give a server key pair and a folder of allowed client public keys"
        )



@dataclass(eq=False)
class _Slot:
    """A session as the front sees it: who owns it, which worker runs it, whether a request is out, what waits."""

    id: int  # the session's number on its worker (never reused)
    identity: bytes
    client: bytes  # what the per-client cap counts: the CURVE key when there is one, else the connection
    session: str
    worker: EngineWorker
    opened: bool = False
    busy: bool = False  # an open or a step is out on its worker
    closed: bool = False  # closed while a request was out: the session is closed when that comes back
    last_seq: int | None = None
    stepping: int | None = None  # the seq of the chunk out on its worker
    # (chunk, its frames, chunks lost just before it, arrival time); a deque with maxlen so a flood can never grow it
    pending: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_PENDING))
    started: float = 0.0  # when the chunk now being stepped could start (see ``Sidecar._start_step``)
    sent: float = 0.0  # when the request now out went to its worker
    realtime: bool = True  # a simulated-clock session (a bench) waits in its steps by design: not counted late
    notices: list[ev.Notice] = field(default_factory=list)  # told with the session's next step reply
    opening: tuple[p.OpenSession, tuple[Any, ...]] | None = None  # the open while it runs (re-sent if its worker dies)

    @property
    def key(self) -> tuple[bytes, str]:
        return self.identity, self.session


class OverloadControl:
    """Decides the degrade level from how late replies are; pure bookkeeping, driven by the socket thread.

    Level 0 is full service; level ``k`` turns off the first ``k`` entries of ``DEGRADE_ORDER``. One
    level up when late replies pile up in the last ``WINDOW_S`` (at most one step per ``HOLD_S``), one
    level down after ``CALM_S`` without a late reply, replies or not: at the last level new sessions are
    refused, so once the sessions that overloaded it have gone no reply may ever come to calm it. Given the
    worker's ``load`` (its sessions), a level is kept while the load that needed it is still there, up to
    ``probe_s`` (``PROBE_S``) on time.
    """

    def __init__(self, late_s: float = LATE_S, max_level: int = len(DEGRADE_ORDER), calm_s: float = CALM_S,
                 probe_s: float = PROBE_S) -> None:
        self.late_s = late_s
        self.calm_s = calm_s
        self.probe_s = probe_s
        self.max_level = max_level
        self.level = 0
        self._recent: collections.deque[tuple[float, bool]] = collections.deque()
        self._last_late = -float("inf")
        self._changed = -float("inf")
        self._needed_at: dict[int, int] = {}  # level -> the load when it was raised to

    def observe(self, latency_s: float, now: float, load: int | None = None) -> int:
        """Record one reply's latency; returns the change of level (-1, 0 or +1)."""
        late = latency_s > self.late_s
        self._recent.append((now, late))
        while self._recent and self._recent[0][0] < now - WINDOW_S:
            self._recent.popleft()
        if late:
            self._last_late = now
        n_late = sum(1 for _, x in self._recent if x)
        if (
            self.level < self.max_level
            and n_late >= RAISE_LATE
            and n_late > RAISE_FRACTION * len(self._recent)
            and now - self._changed >= HOLD_S
        ):
            self.level += 1
            self._changed = now
            self._recent.clear()  # judge the new level on its own replies
            if load is not None:
                self._needed_at[self.level] = load
            return 1
        return self.calm(now, load)

    def calm(self, now: float, load: int | None = None) -> int:
        """One level down (returns -1) if nothing has been late for ``calm_s`` (and, given the ``load``, it is
        below the one that needed the level, or ``probe_s`` passed); called with every reply and by the socket
        loop's clock."""
        if self.level > 0 and now - self._last_late >= self.calm_s and now - self._changed >= self.calm_s:
            needed = self._needed_at.get(self.level)
            if load is not None and needed is not None and load >= needed and now - self._changed < self.probe_s:
                return 0
            self._needed_at.pop(self.level, None)
            self.level -= 1
            self._changed = now
            return -1
        return 0

    def off(self, what: str) -> bool:
        """True while the degrade step named ``what`` is in force."""
        names = [name for name, _ in DEGRADE_ORDER]
        return names.index(what) < self.level



@dataclass(eq=False)
class _Load:
    """The front's bookkeeping of one worker: its overload level and what it holds."""

    overload: OverloadControl
    sessions: int = 0  # slots on it: opening, open, or closed with a request still out
    opening: int = 0  # opens out on it
    open_done: float = -float("inf")  # when the last of them finished

    @classmethod
    def like(cls, control: OverloadControl) -> _Load:
        return cls(OverloadControl(late_s=control.late_s, max_level=control.max_level, calm_s=control.calm_s,
                                   probe_s=control.probe_s))


class Sidecar:
    """Serves sessions until ``stop()``; ``ready`` is set once the socket is bound and the workers are up."""

    def __init__(
        self,
        resources: EngineResources | None = None,
        address: str = p.DEFAULT_ADDRESS,
        workers: int = STEP_WORKERS,
        allow_remote: bool = False,
        curve: CurveKeys | None = None,
        max_sessions: int = MAX_SESSIONS,
        overload: OverloadControl | None = None,
        engines: EnginePool | None = None,
        hung_s: float = HUNG_S,
    ) -> None:
        """``resources``: models loaded in this process, stepped on ``workers`` threads (the in-process mode);
        or ``engines``: the workers to route to (worker processes, Ray actors). ``max_sessions``: a cap over
        all workers, on top of each one's own capacity. ``overload``: the controller's settings (one per worker).
        ``hung_s``: a worker that has held a step this long is killed (and replaced)."""
        check_bind(address, allow_remote, curve)
        if engines is None:
            if resources is None:
                raise ValueError("a sidecar needs models (resources) or engine workers (engines) to run sessions")
            engines = InprocWorkers(resources, threads=workers, capacity=max_sessions)
        self.res = resources
        self.engines = engines
        self.address = address
        self.curve = curve
        self.instance = os.urandom(16).hex()
        self.ctx = zmq.Context.instance()
        self._inproc = f"inproc://npc-voice-front-{self.instance}"
        self._slots: dict[tuple[bytes, str], _Slot] = {}  # open or opening sessions by (connection, session id)
        self._by_id: dict[int, _Slot] = {}  # every slot a worker may still answer for
        self._ids = itertools.count(1)
        self._seen: dict[bytes, float] = {}  # client connection -> last time it sent anything
        self._moved: dict[tuple[bytes, str], tuple[float, str]] = {}  # sessions lost with a worker: when, why
        control = overload or OverloadControl()
        self._control = control  # the settings every worker's controller copies
        # per worker; the first one's controller is the one given (Ray's actors appear only once started)
        self._loads = {w: _Load(control) if i == 0 else _Load.like(control) for i, w in enumerate(engines.workers)}
        self._local = threading.local()
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._router: zmq.Socket | None = None
        self.ready = threading.Event()
        self.bound_address = address
        self.step_ms: collections.deque[float] = collections.deque(maxlen=100_000)
        self.max_sessions = max_sessions
        self.hung_s = hung_s
        self._killed: dict[EngineWorker, int] = {}  # workers killed as hung: the generation killed
        self.errors: collections.Counter[str] = collections.Counter()  # error replies sent, by code
        # told of every worker coming up or being lost, with the worker (``serve_forever`` prints them)
        self.announce: Callable[[str, EngineWorker], None] | None = None
        self.lost_at: list[tuple[float, str, int]] = []  # (monotonic time, worker, sessions it took down)

    def _load(self, worker: EngineWorker) -> _Load:
        load = self._loads.get(worker)
        if load is None:
            load = self._loads[worker] = _Load.like(self._control)
        return load

    @property
    def workers(self) -> list[EngineWorker]:
        return self.engines.workers

    @property
    def overload(self) -> OverloadControl:
        """The first worker's controller (the only one in the in-process mode)."""
        return self._load(self.engines.workers[0]).overload

    def overload_of(self, worker: EngineWorker) -> OverloadControl:
        return self._load(worker).overload

    def sessions_on(self, worker: EngineWorker) -> int:
        return self._load(worker).sessions

    @property
    def capacity(self) -> int:
        """Sessions the live workers hold together (never more than ``max_sessions``)."""
        return min(self.max_sessions, sum(w.capacity for w in self.workers if w.alive))

    # ------------------------------------------------------------------ running

    def stop(self) -> None:
        self._stop.set()

    @contextlib.contextmanager
    def running(self, timeout: float = 60.0) -> Iterator[str]:
        """Serve on a background thread while the block runs (benches and tests that host the sidecar
        in their own process); yields the bound address, stops and joins on exit."""
        thread = threading.Thread(target=self.serve, name="npc-router", daemon=True)
        thread.start()
        if not self.ready.wait(timeout):
            self.stop()
            thread.join(30)
            raise TimeoutError(f"sidecar on {self.address} not ready within {timeout:.0f} s")
        try:
            yield self.bound_address
        finally:
            self.stop()
            thread.join(30)

    def serve(self) -> None:
        """Run the socket loop in this thread until ``stop()``."""
        auth = self._start_curve() if self.curve else None
        router = self.ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.MAXMSGSIZE, p.MAX_MESSAGE_BYTES)
        router.setsockopt(zmq.RCVHWM, 1000)
        router.setsockopt(zmq.SNDHWM, 1000)
        router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a client reconnecting under its identity takes it over
        if self.curve:
            public, secret = zmq.auth.load_certificate(str(self.curve.secret_file))
            if secret is None:
                raise ValueError(f"{self.curve.secret_file} holds no secret key")
            router.curve_secretkey = secret
            router.curve_publickey = public
            router.curve_server = True
        router.bind(self.address)
        self._router = router
        self.bound_address = router.getsockopt_string(zmq.LAST_ENDPOINT)
        pull = self.ctx.socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        pull.bind(self._inproc)
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(pull, zmq.POLLIN)
        polled: set[Any] = set()
        started = time.monotonic()
        next_tick = started + 1.0
        try:
            self.engines.start(self)
            while not self._stop.is_set():
                items = set(self.engines.poll_items())
                for item in polled - items:
                    poller.unregister(item)
                for item in items - polled:
                    poller.register(item, zmq.POLLIN)
                polled = items
                for sock, _ in poller.poll(100):
                    if sock is router:
                        frames = router.recv_multipart(copy=False)
                        self._guarded(frames[0].bytes, self._on_request, frames)
                    elif sock is pull:
                        pull.recv()
                        fn, args = self._events.get_nowait()
                        self._guarded(None, fn, *args)
                    else:
                        self._guarded(None, self.engines.on_poll, sock)
                if not self.ready.is_set():
                    self._check_ready(started)
                now = time.monotonic()
                if now >= next_tick:
                    self._reap_idle()
                    for worker, load in list(self._loads.items()):
                        if load.overload.calm(now, load.sessions):
                            self._degrade(worker, -1)
                    for key in [k for k, (t, _) in self._moved.items() if now - t > MOVED_MEMORY_S]:
                        del self._moved[key]
                    self._kill_hung(now)
                    next_tick = now + 1.0
        finally:
            self.engines.stop()
            router.close(0)
            pull.close(0)
            self._router = None
            if auth is not None:
                auth.stop()

    def _kill_hung(self, now: float) -> None:
        """Kill a worker that has held a step (or an open) far too long; its sessions then move as on a death."""
        hung: dict[EngineWorker, float] = {}
        for slot in self._by_id.values():
            limit = HUNG_OPEN_S if slot.opening is not None else self.hung_s
            if slot.busy and slot.worker.alive and now - slot.sent > limit:
                hung[slot.worker] = max(hung.get(slot.worker, 0.0), now - slot.sent)
        for worker, age in hung.items():
            if self._killed.get(worker) != worker.generation:  # once; its death (or Ray's restart) moves them
                self._killed[worker] = worker.generation
                log.error("%s has held a request for %.0f s: hung; killing it", worker.describe(), age)
                worker.kill()

    def _check_ready(self, started: float) -> None:
        if self.workers and all(w.failed for w in self.workers):
            log.error("no engine worker could start; the sidecar stops")
            self.stop()
            return
        up = sum(w.alive for w in self.workers)
        if up == len(self.workers) or (up and time.monotonic() - started > START_TIMEOUT_S):
            self.ready.set()
            log.info("sidecar listening on %s%s, %d engine worker(s) up, capacity %d", self.bound_address,
                     " (CURVE)" if self.curve else "", up, self.capacity)

    def _start_curve(self) -> ThreadAuthenticator:
        """ZAP handler that admits only clients whose public key is in the allowed folder."""
        assert self.curve is not None
        if not self.curve.clients_dir.is_dir() or not any(self.curve.clients_dir.glob("*.key")):
            raise ValueError(f"{self.curve.clients_dir} holds no client public keys (*.key)")
        auth = ThreadAuthenticator(self.ctx)
        auth.start()
        auth.configure_curve(domain="*", location=str(self.curve.clients_dir))
        return auth

    def post(self, fn: Callable[..., None], *args: Any) -> None:
        """From any thread (a step thread, Ray's callbacks): run ``fn(*args)`` on the socket thread."""
        sock = getattr(self._local, "push", None)
        if sock is None:
            sock = self.ctx.socket(zmq.PUSH)
            sock.connect(self._inproc)
            self._local.push = sock
        self._events.put((fn, args))
        sock.send(b"")

    def _guarded(self, identity: bytes | None, handler: Callable[..., None], *args: object) -> None:
        """Run one handler; nothing a peer sends (or a bug it finds) may stop the socket loop."""
        try:
            handler(*args)
        except Exception as exc:
            log.exception("unexpected failure handling a message")
            if identity is not None:
                self._send(identity, p.Error(code="internal", message=f"the sidecar failed on this message: {exc}"))
                self.errors["internal"] += 1

    def _reap_idle(self) -> None:
        """Free the sessions of clients that went away without closing (a crashed game, a new connection)."""
        now = time.monotonic()
        gone = {ident for ident, seen in self._seen.items() if now - seen > IDLE_TIMEOUT_S}
        if not gone:
            return
        for key in [k for k, slot in self._slots.items() if slot.identity in gone]:
            slot = self._slots.pop(key)
            log.info("session %r: client silent for %.0f s; closed", key[1], IDLE_TIMEOUT_S)
            self._close_slot(slot)
        for ident in gone:
            del self._seen[ident]

    def _close_slot(self, slot: _Slot) -> None:
        if slot.busy:
            slot.closed = True  # closed when its running step or open comes back
        else:
            self._release(slot, close=True)

    def _release(self, slot: _Slot, close: bool) -> None:
        """The slot is done with: its worker forgets it (``close``: the session there is closed)."""
        if self._by_id.pop(slot.id, None) is None:
            return
        self._load(slot.worker).sessions -= 1
        if close and slot.opened and slot.worker.alive:
            slot.worker.submit(Request("close", slot.id))

    # ------------------------------------------------------------------ routing

    def _send(self, identity: bytes, msg: p.Message) -> None:
        assert self._router is not None
        try:
            self._router.send_multipart([identity, *p.encode(msg)], flags=zmq.NOBLOCK)
        except zmq.Again:
            log.warning("client %s is not reading; reply dropped", identity.hex())

    def _error(self, identity: bytes, err: p.ProtocolError) -> None:
        log.info("error to %s: %s", identity.hex(), err)
        self.errors[err.code] += 1
        self._send(identity, p.Error(session=err.session or "", code=err.code, message=err.message, seq=err.seq))

    def _on_request(self, frames: list[zmq.Frame]) -> None:
        identity = frames[0].bytes
        self._seen[identity] = time.monotonic()
        try:
            msg = p.decode([f.bytes for f in frames[1:]])
        except p.ProtocolError as err:
            self._error(identity, err)
            return
        # with CURVE the cap follows the authenticated key, so reconnecting does not buy more sessions
        client = frames[1].get("User-Id").encode() if self.curve else identity
        key = (identity, msg.session)
        raw = tuple(frames[1:])  # forwarded as they came to a worker in another process
        if isinstance(msg, p.Ping):
            pong = p.Pong(session=msg.session, t_sent=msg.t_sent, sessions=len(self._slots), instance=self.instance)
            self._send(identity, pong)
        elif isinstance(msg, p.OpenSession):
            self._open(identity, client, key, msg, raw)
        elif isinstance(msg, p.CloseSession):
            slot = self._slots.pop(key, None)
            if slot is None:
                err = p.ProtocolError("no_session", f"no open session {msg.session!r}", session=msg.session)
                self._error(identity, err)
                return
            self._close_slot(slot)
            self._send(identity, p.Closed(session=msg.session))
        elif isinstance(msg, p.MicChunk):
            slot = self._slots.get(key)
            if slot is None:
                why = "is not open (open it first, or it was closed)"
                self._error(
                    identity,
                    p.ProtocolError("no_session", f"session {msg.session!r} {why}", session=msg.session, seq=msg.seq),
                )
                return
            # a chunk for a session still opening waits for the open like one behind a busy step: a game sends
            # its first chunks right after asking, and a session reopened after its worker was lost loses none
            lost = self._check_seq(identity, slot, msg)
            if lost is None:
                return
            now = time.monotonic()
            if slot.busy:
                keep = 1 if self._load(slot.worker).overload.off("short_queue") else slot.pending.maxlen
                while len(slot.pending) >= keep:
                    dropped = slot.pending.popleft()[0]
                    self._error(
                        identity,
                        p.ProtocolError(
                            "overloaded",
                            f"session {msg.session!r} is behind; chunk {dropped.seq} dropped",
                            session=msg.session,
                            seq=dropped.seq,
                        ),
                    )
                slot.pending.append((msg, raw, lost, now))
            else:
                self._start_step(slot, msg, raw, lost, now)
        else:
            self._error(
                identity,
                p.ProtocolError("unexpected", f"'{msg.TYPE}' is sent by the sidecar, not to it", session=msg.session),
            )

    def _check_seq(self, identity: bytes, slot: _Slot, msg: p.MicChunk) -> int | None:
        """How many chunks went missing before this one; ``None`` (and an error) for a repeated or late one."""
        last = slot.last_seq
        if last is not None and msg.seq <= last:
            self._error(
                identity,
                p.ProtocolError(
                    "seq_duplicate",
                    f"chunk {msg.seq} came after chunk {last}: duplicated or late, so not used",
                    session=msg.session,
                    seq=msg.seq,
                ),
            )
            return None
        slot.last_seq = msg.seq
        lost = 0 if last is None else msg.seq - last - 1
        if lost:
            log.info("session %r: %d chunk(s) lost before %d", msg.session, lost, msg.seq)
        return lost

    def _choose(self, skip: EngineWorker | None = None, moving: bool = False) -> tuple[EngineWorker | None, str]:
        """The live worker with the most room for a new session, or ``None`` and why there is none.

        ``moving``: the session is not new, it lost its worker; a worker refusing new sessions for overload
        still takes it while it has room (the game had it a moment ago)."""
        live = [w for w in self.workers if w.alive and w is not skip]
        if not live:
            return None, "no engine worker is running (starting or restarting); try later"
        roomy = [w for w in live if self._load(w).sessions < w.capacity]
        if not roomy:
            held = sum(self._load(w).sessions for w in live)
            return None, f"sidecar is full ({held} sessions: the capacity of its {len(live)} engine worker(s))"
        calm = [w for w in roomy if moving or self._load(w).overload.level < len(DEGRADE_ORDER)]
        if not calm:
            return None, f"sidecar is overloaded ({len(self._slots)} sessions miss the 200 ms deadline); try later"
        return min(calm, key=lambda w: (self._load(w).sessions / w.capacity, self._load(w).sessions)), ""

    def _open(
        self, identity: bytes, client: bytes, key: tuple[bytes, str], msg: p.OpenSession, raw: tuple[Any, ...]
    ) -> None:
        if key in self._slots:
            self._error(
                identity,
                p.ProtocolError("session_exists", f"session {msg.session!r} is already open", session=msg.session),
            )
            return
        if len(self._slots) >= self.max_sessions:
            self._error(
                identity,
                p.ProtocolError("capacity", f"sidecar is full ({self.max_sessions} sessions)", session=msg.session),
            )
            return
        worker, why = self._choose(moving=key in self._moved)
        if worker is None:
            self._error(identity, p.ProtocolError("capacity", why, session=msg.session))
            return
        if sum(1 for slot in self._slots.values() if slot.client == client) >= MAX_SESSIONS_PER_CLIENT:
            self._error(
                identity,
                p.ProtocolError(
                    "capacity", f"this client already has {MAX_SESSIONS_PER_CLIENT} sessions", session=msg.session
                ),
            )
            return
        slot = _Slot(id=next(self._ids), identity=identity, client=client, session=msg.session, worker=worker,
                     realtime=msg.clock != "simulated")
        moved = self._moved.pop(key, None)
        if moved is not None:
            slot.notices.append(ev.Notice(
                code="moved",
                message=f"its engine worker was lost ({moved[1]}); reopened on {worker.describe()}: "
                        "the conversation starts afresh",
            ))
        self._slots[key] = slot
        self._submit_open(slot, msg, raw)

    def _submit_open(self, slot: _Slot, msg: p.OpenSession, raw: tuple[Any, ...]) -> None:
        load = self._load(slot.worker)
        if load.overload.level:
            slot.notices.append(degraded_notice(load.overload.level))
        self._by_id[slot.id] = slot
        load.sessions += 1
        load.opening += 1
        slot.busy = True
        slot.opening = (msg, raw)
        slot.sent = time.monotonic()
        slot.worker.submit(Request("open", slot.id, load.overload.level, msg=msg, frames=raw))

    def _start_step(self, slot: _Slot, msg: p.MicChunk, raw: tuple[Any, ...], lost: int, arrived: float) -> None:
        slot.busy = True
        slot.stepping = msg.seq
        # Lateness counts from when the chunk could run (it arrived, and its session's previous step was
        # done): the wait for a step thread plus the step. A session catching up on its own backlog (a
        # burst after a network stall, a flood) is not the sidecar being overloaded.
        slot.started = max(arrived, time.monotonic())
        slot.sent = time.monotonic()
        level = self._load(slot.worker).overload.level
        slot.worker.submit(Request("step", slot.id, level, lost, msg=msg, frames=raw))

    # ------------------------------------------------------------------ what workers report

    def worker_up(self, worker: EngineWorker) -> None:
        """A worker is ready (first start, or started again after it was lost): it takes sessions."""
        self._loads[worker] = _Load.like(self._control)  # a fresh start: full service, nothing held
        worker.apply_level(0)
        log.info("%s up: %s", worker.describe(), json.dumps(worker.info))
        if self.announce is not None:
            self.announce("up", worker)

    def worker_reply(self, worker: EngineWorker, slot_id: int, op: str, reply: p.Message) -> None:
        slot = self._by_id.get(slot_id)
        if slot is None or slot.worker is not worker:
            return  # a session given up (closed, or moved after its worker was thought lost)
        load = self._load(worker)
        slot.busy = False
        slot.stepping = None
        gone = slot.closed or self._slots.get(slot.key) is not slot
        if isinstance(reply, p.Error):
            self.errors[reply.code] += 1
        if op == "open":
            load.opening -= 1
            load.open_done = time.monotonic()
            slot.opening = None
            slot.opened = isinstance(reply, p.Opened)
            if not slot.opened:  # refused (unknown persona...): nothing to close on the worker
                if not gone:
                    del self._slots[slot.key]
                    self._send(slot.identity, reply)
                    for chunk, *_ in slot.pending:  # chunks that waited for the open: each still gets its answer
                        self._error(slot.identity, p.ProtocolError(
                            "no_session", f"session {slot.session!r} did not open", session=slot.session, seq=chunk.seq
                        ))
                self._release(slot, close=False)
                return
        elif isinstance(reply, p.StepReply):
            self.step_ms.append(reply.compute_ms)
            if slot.realtime and not load.opening and slot.started >= load.open_done:
                now = time.monotonic()
                change = load.overload.observe(now - slot.started, now, load.sessions)
                if change:
                    self._degrade(worker, change)
            if slot.notices:
                reply.events.extend(n.to_wire() for n in slot.notices)
                slot.notices.clear()
        if gone:
            # closed (or reaped) while this ran: free the session, and do not answer a closed session's open
            slot.pending.clear()
            self._release(slot, close=True)
            if op == "open":
                return
        elif slot.pending:
            self._start_step(slot, *slot.pending.popleft())
        self._send(slot.identity, reply)

    def worker_lost(self, worker: EngineWorker, why: str) -> None:
        """A worker died: its sessions died with it. Each is told ``no_session`` now (for every chunk of it the
        worker had or that waited for it), which makes the client reopen it on a live worker; an open that
        was under way is sent to another worker without the client knowing."""
        now = time.monotonic()
        taken = 0
        for slot in [s for s in self._by_id.values() if s.worker is worker]:
            del self._by_id[slot.id]
            if self._slots.get(slot.key) is not slot:
                continue  # closed already; nothing to tell
            if slot.opening is not None:
                msg, raw = slot.opening
                other, refusal = self._choose(skip=worker, moving=True)
                if other is not None:
                    slot.worker = other
                    self._submit_open(slot, msg, raw)
                    continue
                del self._slots[slot.key]
                self._error(slot.identity, p.ProtocolError("capacity", refusal, session=slot.session))
                continue
            taken += 1
            del self._slots[slot.key]
            seqs = ([slot.stepping] if slot.busy else []) + [chunk.seq for chunk, *_ in slot.pending]
            for seq in seqs or [None]:
                self._error(slot.identity, p.ProtocolError(
                    "no_session", f"session {slot.session!r} was lost with its engine worker ({why}); open it again",
                    session=slot.session, seq=seq,
                ))
            self._moved[slot.key] = (now, why)
        self._loads[worker] = _Load.like(self._control)
        self.lost_at.append((now, worker.name, taken))
        log.error("%s lost (%s): %d session(s) told to reopen", worker.name, why, taken)
        if self.announce is not None:
            self.announce("lost", worker)

    def _degrade(self, worker: EngineWorker, change: int) -> None:
        """Apply the worker's new overload level and queue a notice for every session on it."""
        level = self._load(worker).overload.level
        worker.apply_level(level)
        if change > 0:
            notice = degraded_notice(level)
        else:
            notice = ev.Notice(code="restored", message=f"level {level}: undone: {DEGRADE_ORDER[level][1]}")
        log.warning("overload on %s: %s", worker.name, notice.message)
        for slot in self._slots.values():
            if slot.worker is worker:
                slot.notices.append(notice)


def serve_forever(
    address: str,
    persona_dir: PersonaFolders = None,
    workers: int = STEP_WORKERS,
    allow_remote: bool = False,
    curve: CurveKeys | None = None,
    max_sessions: int = MAX_SESSIONS,
    procs: int | None = 1,
    ray_address: str | None = None,
    capacity: int | None = None,
    ray_cpus: float = 1.0,
    ray_memory_mb: int | None = None,
    voice_cache: str | os.PathLike[str] | None = None,
    recogniser: str = DEFAULT_RECOGNISER,
    memory: Path | str | None = None,
) -> int:
    """Start the engine workers, bind, serve until SIGINT/SIGTERM; report step times on exit.

    ``procs``: 1 runs the sessions in this process (models loaded here); N > 1 starts N worker processes.
    ``ray_address``: the workers are Ray actors on that cluster (``procs`` of them; ``None``: one per
    ``ray_cpus`` CPUs of the cluster). ``capacity``: sessions per worker (default: measured by each
    worker process or actor at start-up; in this process, ``max_sessions``). ``recogniser``: the
    accurate recogniser (``features.asr.RECOGNISERS``) of every worker. ``memory``: the memory file sessions
    that name their player are remembered in, shared by the worker processes (None: they are remembered only
    within a session; a Ray actor opens the path on its own machine).
    """
    t0 = time.perf_counter()
    check_bind(address, allow_remote, curve)  # before the models load: a refusal should be instant
    res = None
    engines: EnginePool | None = None
    if ray_address:
        if importlib.util.find_spec("ray") is None:  # not imported here: Ray reads its settings when first imported
            print("npc-voice serve --ray needs Ray: pip install 'npc-voice[ray]'", file=sys.stderr, flush=True)
            return 2
        from npc_voice.transport.ray_workers import RayWorkers

        engines = RayWorkers(ray_address, procs, persona_dir, capacity, threads=workers, cpus=ray_cpus,
                             memory_mb=ray_memory_mb, voice_cache=voice_cache, recogniser=recogniser,
                             memory=memory)
    elif procs is not None and procs > 1:
        from npc_voice.transport.workers import ProcessWorkers

        engines = ProcessWorkers(procs, persona_dir, capacity, threads=workers, voice_cache=voice_cache,
                                 recogniser=recogniser, memory=memory)
    else:
        from npc_voice.engine.resources import EngineResources
        from npc_voice.memory.store import MemoryStore
        from npc_voice.priority import single_threaded_math

        single_threaded_math()
        res = EngineResources(persona_dir, voice_cache=voice_cache, recogniser=recogniser,
                              memory=MemoryStore(memory) if memory is not None else None)
        if capacity:
            max_sessions = min(max_sessions, capacity)
    sidecar = Sidecar(
        res, address, workers=workers, allow_remote=allow_remote, curve=curve, max_sessions=max_sessions,
        engines=engines,
    )

    def announce(what: str, worker: EngineWorker) -> None:
        print(f"npc-voice worker {what} {json.dumps({'name': worker.name, **worker.info})}", flush=True)

    sidecar.announce = announce

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: shutting down", signum)
        sidecar.stop()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    thread = threading.Thread(target=sidecar.serve, name="npc-router")
    thread.start()
    while not sidecar.ready.wait(0.2):
        if not thread.is_alive():
            print("npc-voice sidecar failed to start", flush=True)
            return 1
    live = [w for w in sidecar.workers if w.alive]
    print(
        f"npc-voice sidecar ready on {sidecar.bound_address} (pid {os.getpid()}, "
        f"start-up {time.perf_counter() - t0:.1f} s, {len(live)} engine worker(s), capacity {sidecar.capacity})",
        flush=True,
    )
    while thread.is_alive():
        thread.join(0.2)
    if res is not None:
        res.close()
    if sidecar.step_ms:
        ms = np.array(sidecar.step_ms)
        p50, p99 = np.percentile(ms, [50, 99])
        print(f"steps: {len(ms)}, compute p50 {p50:.1f} ms, p99 {p99:.1f} ms", flush=True)
    return 0
