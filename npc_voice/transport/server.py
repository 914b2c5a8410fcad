"""The sidecar: a ZeroMQ ROUTER that hosts many NPC sessions over one set of shared models.

One thread owns the socket and never computes: it decodes, routes and replies. Steps run on a
small worker pool, at most one at a time per session so each session's chunks stay in order, and
finished replies come back to the socket thread over an inproc socket. A bad message gets an
``error`` reply naming the problem; it never touches another session, and no input can stop the
loop: anything unexpected becomes an ``internal`` error reply and a log line.

Overload: a reply later than ``LATE_S`` after its chunk arrived counts as late. When late replies
pile up the sidecar degrades one level at a time, in the order of ``DEGRADE_ORDER`` (chosen from the
profile in ``docs/perf/README.md``), tells every session with a ``notice`` event (code ``degraded``),
and restores a level (``restored``) once replies are back on time; at the last level it refuses new
sessions with ``capacity``. It never falls behind without saying so. A step that shared the machine with
a session being opened (loading a persona, warming the embedder: a one-off second or so) is not judged:
a game opening its villagers at start-up must not degrade or lock out the very sessions it opens.

Security: loopback by default; any other address needs CURVE (a server key pair and a folder of
allowed client public keys), so an unknown client never gets a byte through. Every queue is bounded
and a client that goes silent loses its sessions after ``IDLE_TIMEOUT_S``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from npc_voice import events as ev
from npc_voice.data import PersonaFolders
from npc_voice.engine.resources import EngineResources
from npc_voice.engine.session import Session
from npc_voice.engine.state import Attention
from npc_voice.features.asr import DEFAULT_RECOGNISER
from npc_voice.transport import protocol as p

log = logging.getLogger(__name__)

MAX_PENDING = 16  # chunks (3.2 s) queued behind a busy session before the oldest is dropped
MAX_SESSIONS = 32
MAX_SESSIONS_PER_CLIENT = 16
IDLE_TIMEOUT_S = 30.0  # a client that sends nothing (not even a heartbeat) this long loses its sessions
STEP_WORKERS = 4  # a step may wait on its session's look-ahead work; the others keep going meanwhile

LATE_S = 0.15  # step runnable -> reply out; later than this leaves < 50 ms before the next chunk is due
WINDOW_S = 2.0  # late replies are counted over this much recent time
RAISE_LATE = 3  # this many late replies in the window (and over 5 % of them) degrade one level
RAISE_FRACTION = 0.05
HOLD_S = 1.0  # at least this long between two degrade steps: let the last one take effect
CALM_S = 5.0  # this long without a late reply restores one level
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
    """A session as the router sees it: who owns it, whether a step runs, what waits, what seq came last."""

    identity: bytes
    client: bytes  # what the per-client cap counts: the CURVE key when there is one, else the connection
    session: Session | None
    busy: bool = False
    closed: bool = False  # closed while a step ran: the session is closed when that step comes back
    last_seq: int | None = None
    # (chunk, chunks lost just before it, arrival time); a deque with maxlen so a flood can never grow it
    pending: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_PENDING))
    started: float = 0.0  # when the chunk now being stepped could start (see ``Sidecar._start_step``)
    realtime: bool = True  # a simulated-clock session (a bench) waits in its steps by design: not counted late
    actions: bool = False  # the client asked for ``action`` events
    notices: list[ev.Notice] = field(default_factory=list)  # told with the session's next step reply


class OverloadControl:
    """Decides the degrade level from how late replies are; pure bookkeeping, driven by the socket thread.

    Level 0 is full service; level ``k`` turns off the first ``k`` entries of ``DEGRADE_ORDER``. One
    level up when late replies pile up in the last ``WINDOW_S`` (at most one step per ``HOLD_S``), one
    level down after ``CALM_S`` without a late reply, replies or not: at the last level new sessions are
    refused, so once the sessions that overloaded it have gone no reply may ever come to calm it.
    """

    def __init__(self, late_s: float = LATE_S, max_level: int = len(DEGRADE_ORDER), calm_s: float = CALM_S) -> None:
        self.late_s = late_s
        self.calm_s = calm_s
        self.max_level = max_level
        self.level = 0
        self._recent: collections.deque[tuple[float, bool]] = collections.deque()
        self._last_late = -float("inf")
        self._changed = -float("inf")

    def observe(self, latency_s: float, now: float) -> int:
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
            return 1
        return self.calm(now)

    def calm(self, now: float) -> int:
        """One level down (returns -1) if nothing has been late for ``calm_s``; called with every reply and
        by the socket loop's clock."""
        if self.level > 0 and now - self._last_late >= self.calm_s and now - self._changed >= self.calm_s:
            self.level -= 1
            self._changed = now
            return -1
        return 0

    def off(self, what: str) -> bool:
        """True while the degrade step named ``what`` is in force."""
        names = [name for name, _ in DEGRADE_ORDER]
        return names.index(what) < self.level


class Sidecar:
    """Serves sessions until ``stop()``; ``ready`` is set once the socket is bound and models loaded."""

    def __init__(
        self,
        resources: EngineResources,
        address: str = p.DEFAULT_ADDRESS,
        workers: int = STEP_WORKERS,
        allow_remote: bool = False,
        curve: CurveKeys | None = None,
        max_sessions: int = MAX_SESSIONS,
        overload: OverloadControl | None = None,
    ) -> None:
        """``max_sessions``: the capacity (the machine's measured one; see ``docs/perf/README.md``)."""
        check_bind(address, allow_remote, curve)
        self.res = resources
        self.address = address
        self.curve = curve
        self.instance = uuid.uuid4().hex
        self.ctx = zmq.Context.instance()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="npc-step")
        self._inproc = f"inproc://npc-voice-replies-{uuid.uuid4().hex}"
        self._slots: dict[tuple[bytes, str], _Slot] = {}
        self._seen: dict[bytes, float] = {}  # client connection -> last time it sent anything
        self._local = threading.local()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self.ready = threading.Event()
        self.bound_address = address
        self.step_ms: collections.deque[float] = collections.deque(maxlen=100_000)
        self.max_sessions = max_sessions
        self.overload = overload or OverloadControl()
        self._opening = 0  # opens running on the pool (socket thread's count)
        self._open_done = -float("inf")  # when the last of them finished
        self.errors: collections.Counter[str] = collections.Counter()  # error replies sent, by code

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
            raise TimeoutError(f"sidecar on {self.address} not ready within {timeout:.0f} s")
        try:
            yield self.bound_address
        finally:
            self.stop()
            thread.join(10)

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
        self.bound_address = router.getsockopt_string(zmq.LAST_ENDPOINT)
        pull = self.ctx.socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        pull.bind(self._inproc)
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(pull, zmq.POLLIN)
        self.ready.set()
        log.info("sidecar listening on %s%s", self.bound_address, " (CURVE)" if self.curve else "")
        next_reap = time.monotonic() + 1.0
        try:
            while not self._stop.is_set():
                for sock, _ in poller.poll(100):
                    if sock is router:
                        frames = router.recv_multipart(copy=False)
                        self._guarded(router, frames[0].bytes, self._on_request, router, frames)
                    else:
                        pull.recv()
                        self._guarded(router, None, self._on_done, router)
                if time.monotonic() >= next_reap:
                    self._reap_idle()
                    if self.overload.calm(time.monotonic()):
                        self._degrade(-1)
                    next_reap = time.monotonic() + 1.0
        finally:
            for slot in self._slots.values():
                if slot.session is not None:
                    slot.session.close()
            self._pool.shutdown(wait=True, cancel_futures=True)
            router.close(0)
            pull.close(0)
            if auth is not None:
                auth.stop()

    def _start_curve(self) -> ThreadAuthenticator:
        """ZAP handler that admits only clients whose public key is in the allowed folder."""
        assert self.curve is not None
        if not self.curve.clients_dir.is_dir() or not any(self.curve.clients_dir.glob("*.key")):
            raise ValueError(f"{self.curve.clients_dir} holds no client public keys (*.key)")
        auth = ThreadAuthenticator(self.ctx)
        auth.start()
        auth.configure_curve(domain="*", location=str(self.curve.clients_dir))
        return auth

    def _guarded(self, router: zmq.Socket, identity: bytes | None, handler: Callable[..., None], *args: object) -> None:
        """Run one handler; nothing a peer sends (or a bug it finds) may stop the socket loop."""
        try:
            handler(*args)
        except Exception as exc:
            log.exception("unexpected failure handling a message")
            if identity is not None:
                self._send(
                    router, identity, p.Error(code="internal", message=f"the sidecar failed on this message: {exc}")
                )
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
        elif slot.session is not None:
            self._pool.submit(slot.session.close)

    # ------------------------------------------------------------------ routing

    def _send(self, router: zmq.Socket, identity: bytes, msg: p.Message) -> None:
        try:
            router.send_multipart([identity, *p.encode(msg)], flags=zmq.NOBLOCK)
        except zmq.Again:
            log.warning("client %s is not reading; reply dropped", identity.hex())

    def _error(self, router: zmq.Socket, identity: bytes, err: p.ProtocolError) -> None:
        log.info("error to %s: %s", identity.hex(), err)
        self.errors[err.code] += 1
        self._send(
            router,
            identity,
            p.Error(session=err.session or "", code=err.code, message=err.message, seq=err.seq),
        )

    def _on_request(self, router: zmq.Socket, frames: list[zmq.Frame]) -> None:
        identity = frames[0].bytes
        self._seen[identity] = time.monotonic()
        try:
            msg = p.decode([f.bytes for f in frames[1:]])
        except p.ProtocolError as err:
            self._error(router, identity, err)
            return
        # with CURVE the cap follows the authenticated key, so reconnecting does not buy more sessions
        client = frames[1].get("User-Id").encode() if self.curve else identity
        key = (identity, msg.session)
        if isinstance(msg, p.Ping):
            self._send(
                router,
                identity,
                p.Pong(session=msg.session, t_sent=msg.t_sent, sessions=len(self._slots), instance=self.instance),
            )
        elif isinstance(msg, p.OpenSession):
            self._open(router, identity, client, key, msg)
        elif isinstance(msg, p.CloseSession):
            slot = self._slots.pop(key, None)
            if slot is None:
                self._error(
                    router,
                    identity,
                    p.ProtocolError("no_session", f"no open session {msg.session!r}", session=msg.session),
                )
                return
            self._close_slot(slot)
            self._send(router, identity, p.Closed(session=msg.session))
        elif isinstance(msg, p.MicChunk):
            slot = self._slots.get(key)
            if slot is None or slot.session is None:
                why = (
                    "is still opening"
                    if slot is not None
                    else "is not open (open it first, or it was closed)"
                )
                self._error(
                    router,
                    identity,
                    p.ProtocolError(
                        "no_session", f"session {msg.session!r} {why}", session=msg.session, seq=msg.seq
                    ),
                )
                return
            lost = self._check_seq(router, identity, slot, msg)
            if lost is None:
                return
            now = time.monotonic()
            if slot.busy:
                keep = 1 if self.overload.off("short_queue") else slot.pending.maxlen
                while len(slot.pending) >= keep:
                    dropped = slot.pending.popleft()[0]
                    self._error(
                        router,
                        identity,
                        p.ProtocolError(
                            "overloaded",
                            f"session {msg.session!r} is behind; chunk {dropped.seq} dropped",
                            session=msg.session,
                            seq=dropped.seq,
                        ),
                    )
                slot.pending.append((msg, lost, now))
            else:
                self._start_step(slot, msg, lost, now)
        else:
            self._error(
                router,
                identity,
                p.ProtocolError(
                    "unexpected", f"'{msg.TYPE}' is sent by the sidecar, not to it", session=msg.session
                ),
            )

    def _check_seq(self, router: zmq.Socket, identity: bytes, slot: _Slot, msg: p.MicChunk) -> int | None:
        """How many chunks went missing before this one; ``None`` (and an error) for a repeated or late one."""
        last = slot.last_seq
        if last is not None and msg.seq <= last:
            self._error(
                router,
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

    def _open(
        self, router: zmq.Socket, identity: bytes, client: bytes, key: tuple[bytes, str], msg: p.OpenSession
    ) -> None:
        if key in self._slots:
            self._error(
                router,
                identity,
                p.ProtocolError(
                    "session_exists", f"session {msg.session!r} is already open", session=msg.session
                ),
            )
            return
        if len(self._slots) >= self.max_sessions:
            self._error(
                router,
                identity,
                p.ProtocolError(
                    "capacity", f"sidecar is full ({self.max_sessions} sessions)", session=msg.session
                ),
            )
            return
        if self.overload.level >= len(DEGRADE_ORDER):
            self._error(
                router,
                identity,
                p.ProtocolError(
                    "capacity",
                    f"sidecar is overloaded ({len(self._slots)} sessions miss the 200 ms deadline); try later",
                    session=msg.session,
                ),
            )
            return
        if sum(1 for slot in self._slots.values() if slot.client == client) >= MAX_SESSIONS_PER_CLIENT:
            self._error(
                router,
                identity,
                p.ProtocolError(
                    "capacity",
                    f"this client already has {MAX_SESSIONS_PER_CLIENT} sessions",
                    session=msg.session,
                ),
            )
            return
        slot = _Slot(identity=identity, client=client, session=None, busy=True, realtime=msg.clock != "simulated",
                     actions=msg.actions)
        if self.overload.level:
            slot.notices.append(degraded_notice(self.overload.level))
        self._slots[key] = slot
        self._opening += 1
        self._pool.submit(self._run_open, key, slot, msg)

    def _run_open(self, key: tuple[bytes, str], slot: _Slot, msg: p.OpenSession) -> None:
        session: Session | None = None
        try:
            session = Session(self.res, msg.persona, msg.npc_id, msg.state, simulated_clock=msg.clock == "simulated",
                              floor_events=msg.floor, policy=msg.policy, explain=msg.why, talk_mode=msg.talk_mode,
                              hold_events=msg.held, player=msg.player)
            fallback = self.res.voice_problem(msg.persona)
            if fallback is not None:  # the NPC still talks, in its eSpeak NG voice: say why it sounds so
                slot.notices.append(ev.Notice(code="voice_fallback", message=fallback))
            reply: p.Message = p.Opened(session=msg.session, persona=msg.persona, npc_id=msg.npc_id)
        except KeyError as exc:
            reply = p.Error(session=msg.session, code="unknown_persona", message=str(exc.args[0]))
        except ValueError as exc:  # PersonaError
            reply = p.Error(session=msg.session, code="bad_persona", message=str(exc))
        except Exception as exc:
            log.exception("opening session %s failed", msg.session)
            reply = p.Error(session=msg.session, code="internal", message=f"open failed: {exc}")
        self._hand_back(key, slot, reply, session=session, opened=True)

    def _start_step(self, slot: _Slot, msg: p.MicChunk, lost: int, arrived: float) -> None:
        slot.busy = True
        # Lateness counts from when the chunk could run (it arrived, and its session's previous step was
        # done): the wait for a step thread plus the step. A session catching up on its own backlog (a
        # burst after a network stall, a flood) is not the sidecar being overloaded.
        slot.started = max(arrived, time.monotonic())
        self._pool.submit(self._run_step, (slot.identity, msg.session), slot, msg, lost)

    def _run_step(self, key: tuple[bytes, str], slot: _Slot, msg: p.MicChunk, lost: int) -> None:
        assert slot.session is not None
        try:
            result = slot.session.step(msg.pcm, msg.played, msg.state, cue=msg.cue,
                                       attention=Attention(**msg.attention) if msg.attention else None,
                                       talking=msg.talking)
            reply: p.Message = p.StepReply(
                session=msg.session,
                seq=msg.seq,
                pcm=result.pcm,
                events=[e.to_wire() for e in result.events if slot.actions or not isinstance(e, ev.GameAction)],
                compute_ms=round(result.compute_ms, 3),
                lost=lost,
            )
        except Exception as exc:
            log.exception("step failed for session %s", msg.session)
            reply = p.Error(session=msg.session, code="internal", message=f"step failed: {exc}", seq=msg.seq)
        self._hand_back(key, slot, reply)

    def _hand_back(
        self,
        key: tuple[bytes, str],
        slot: _Slot,
        reply: p.Message,
        session: Session | None = None,
        opened: bool = False,
    ) -> None:
        """From a worker thread: give the reply to the socket thread."""
        sock = getattr(self._local, "push", None)
        if sock is None:
            sock = self.ctx.socket(zmq.PUSH)
            sock.connect(self._inproc)
            self._local.push = sock
        self._done.put((key, slot, session, opened, reply))
        sock.send(b"")

    def _on_done(self, router: zmq.Socket) -> None:
        key, slot, session, opened, reply = self._done.get_nowait()
        slot.busy = False
        gone = slot.closed or self._slots.get(key) is not slot
        if isinstance(reply, p.Error):
            self.errors[reply.code] += 1
        if opened:
            self._opening -= 1
            self._open_done = time.monotonic()
            slot.session = session
            if session is None and not gone:
                del self._slots[key]
        elif isinstance(reply, p.StepReply):
            self.step_ms.append(reply.compute_ms)
            if slot.realtime and not self._opening and slot.started >= self._open_done:
                now = time.monotonic()
                change = self.overload.observe(now - slot.started, now)
                if change:
                    self._degrade(change)
            if slot.notices:
                reply.events.extend(n.to_wire() for n in slot.notices)
                slot.notices.clear()
        if gone:
            # closed (or reaped) while this ran: free the session, and do not answer a closed session's open
            slot.pending.clear()
            if slot.session is not None:
                self._pool.submit(slot.session.close)
            if opened:
                return
        elif slot.pending:
            self._start_step(slot, *slot.pending.popleft())
        self._send(router, key[0], reply)

    def _degrade(self, change: int) -> None:
        """Apply the new overload level and queue a notice for every session."""
        level = self.overload.level
        self.res.predictive = not self.overload.off("predictive_reads")
        self.res.learned = not self.overload.off("learned_model")
        self.res.asr.accurate = not self.overload.off("accurate_pass")
        if change > 0:
            notice = degraded_notice(level)
        else:
            notice = ev.Notice(code="restored", message=f"level {level}: undone: {DEGRADE_ORDER[level][1]}")
        log.warning("overload: %s", notice.message)
        for slot in self._slots.values():
            slot.notices.append(notice)


def serve_forever(
    address: str,
    persona_dir: PersonaFolders = None,
    workers: int = STEP_WORKERS,
    allow_remote: bool = False,
    curve: CurveKeys | None = None,
    max_sessions: int = MAX_SESSIONS,
    voice_cache: str | os.PathLike[str] | None = None,
    recogniser: str = DEFAULT_RECOGNISER,
    memory: Path | str | None = None,
) -> int:
    """Load the models, bind, serve until SIGINT/SIGTERM; report step times on exit. ``recogniser``: the accurate
    recogniser (``features.asr.RECOGNISERS``); ``memory``: the memory file sessions that name their player are
    remembered in (None: they are remembered only within a session)."""
    t0 = time.perf_counter()
    check_bind(address, allow_remote, curve)  # before the models load: a refusal should be instant
    import torch

    torch.set_num_threads(1)
    from npc_voice.memory.store import MemoryStore

    res = EngineResources(persona_dir, voice_cache=voice_cache, recogniser=recogniser,
                          memory=MemoryStore(memory) if memory is not None else None)
    sidecar = Sidecar(
        res, address, workers=workers, allow_remote=allow_remote, curve=curve, max_sessions=max_sessions
    )

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: shutting down", signum)
        sidecar.stop()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    thread = threading.Thread(target=sidecar.serve, name="npc-router")
    thread.start()
    sidecar.ready.wait()
    print(
        f"npc-voice sidecar ready on {sidecar.bound_address} (pid {os.getpid()}, "
        f"start-up {time.perf_counter() - t0:.1f} s)",
        flush=True,
    )
    while thread.is_alive():
        thread.join(0.2)
    res.close()
    if sidecar.step_ms:
        ms = np.array(sidecar.step_ms)
        p50, p99 = np.percentile(ms, [50, 99])
        print(f"steps: {len(ms)}, compute p50 {p50:.1f} ms, p99 {p99:.1f} ms", flush=True)
    return 0
