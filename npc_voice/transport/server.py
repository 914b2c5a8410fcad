"""The sidecar: a ZeroMQ ROUTER that hosts many NPC sessions over one set of shared models.

One thread owns the socket and never computes: it decodes, routes and replies. Steps run on a
small worker pool, at most one at a time per session so each session's chunks stay in order, and
finished replies come back to the socket thread over an inproc socket. A bad message gets an
``error`` reply naming the problem; it never touches another session.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import zmq

from npc_voice.engine.resources import EngineResources
from npc_voice.engine.session import Session
from npc_voice.transport import protocol as p

log = logging.getLogger(__name__)

MAX_PENDING = 16  # chunks (3.2 s) queued behind a busy session before the oldest is dropped
MAX_SESSIONS = 32
MAX_SESSIONS_PER_CLIENT = 16


def is_loopback(address: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on 127.0.0.0/8 or ::1."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    host = address.removeprefix("tcp://").rsplit(":", 1)[0].strip("[]")
    return host == "localhost" or host.startswith("127.") or host == "::1"


@dataclass
class _Slot:
    """A session as the router sees it: who owns it, whether a step runs, what waits."""

    identity: bytes
    session: Session | None
    busy: bool = False
    pending: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_PENDING))
    compute_ms: list[float] = field(default_factory=list)


class Sidecar:
    """Serves sessions until ``stop()``; ``ready`` is set once the socket is bound and models loaded."""

    def __init__(
        self,
        resources: EngineResources,
        address: str = p.DEFAULT_ADDRESS,
        workers: int = 2,
        allow_remote: bool = False,
    ) -> None:
        if not is_loopback(address) and not allow_remote:
            raise ValueError(
                f"refusing to bind {address}: the sidecar binds to loopback unless told otherwise"
            )
        self.res = resources
        self.address = address
        self.ctx = zmq.Context.instance()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="npc-step")
        self._inproc = f"inproc://npc-voice-replies-{uuid.uuid4().hex}"
        self._slots: dict[tuple[bytes, str], _Slot] = {}
        self._local = threading.local()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self.ready = threading.Event()
        self.bound_address = address
        self.step_ms: collections.deque[float] = collections.deque(maxlen=100_000)

    # ------------------------------------------------------------------ running

    def stop(self) -> None:
        self._stop.set()

    def serve(self) -> None:
        """Run the socket loop in this thread until ``stop()``."""
        router = self.ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.MAXMSGSIZE, p.MAX_MESSAGE_BYTES)
        router.setsockopt(zmq.RCVHWM, 1000)
        router.setsockopt(zmq.SNDHWM, 1000)
        router.bind(self.address)
        self.bound_address = router.getsockopt_string(zmq.LAST_ENDPOINT)
        pull = self.ctx.socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        pull.bind(self._inproc)
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(pull, zmq.POLLIN)
        self.ready.set()
        log.info("sidecar listening on %s", self.bound_address)
        try:
            while not self._stop.is_set():
                for sock, _ in poller.poll(100):
                    if sock is router:
                        self._on_request(router, router.recv_multipart(copy=True))
                    else:
                        pull.recv()
                        self._on_done(router)
        finally:
            for slot in self._slots.values():
                if slot.session is not None:
                    slot.session.close()
            self._pool.shutdown(wait=True, cancel_futures=True)
            router.close(0)
            pull.close(0)

    # ------------------------------------------------------------------ routing

    def _send(self, router: zmq.Socket, identity: bytes, msg: p.Message) -> None:
        try:
            router.send_multipart([identity, *p.encode(msg)], flags=zmq.NOBLOCK)
        except zmq.Again:
            log.warning("client %s is not reading; reply dropped", identity.hex())

    def _error(self, router: zmq.Socket, identity: bytes, err: p.ProtocolError) -> None:
        log.info("error to %s: %s", identity.hex(), err)
        self._send(
            router,
            identity,
            p.Error(session=err.session or "", code=err.code, message=err.message, seq=err.seq),
        )

    def _on_request(self, router: zmq.Socket, frames: list[bytes]) -> None:
        identity, body = frames[0], frames[1:]
        try:
            msg = p.decode(body)
        except p.ProtocolError as err:
            self._error(router, identity, err)
            return
        key = (identity, msg.session)
        if isinstance(msg, p.Ping):
            self._send(
                router, identity, p.Pong(session=msg.session, t_sent=msg.t_sent, sessions=len(self._slots))
            )
        elif isinstance(msg, p.OpenSession):
            self._open(router, identity, key, msg)
        elif isinstance(msg, p.CloseSession):
            slot = self._slots.pop(key, None)
            if slot is None:
                self._error(
                    router,
                    identity,
                    p.ProtocolError("no_session", f"no open session {msg.session!r}", session=msg.session),
                )
                return
            if slot.session is not None:
                self._pool.submit(slot.session.close)
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
            if slot.busy:
                if len(slot.pending) == slot.pending.maxlen:
                    dropped = slot.pending[0]
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
                slot.pending.append(msg)
            else:
                self._start_step(key, slot, msg)
        else:
            self._error(
                router,
                identity,
                p.ProtocolError(
                    "unexpected", f"'{msg.TYPE}' is sent by the sidecar, not to it", session=msg.session
                ),
            )

    def _open(self, router: zmq.Socket, identity: bytes, key: tuple[bytes, str], msg: p.OpenSession) -> None:
        if key in self._slots:
            self._error(
                router,
                identity,
                p.ProtocolError(
                    "session_exists", f"session {msg.session!r} is already open", session=msg.session
                ),
            )
            return
        if len(self._slots) >= MAX_SESSIONS:
            self._error(
                router,
                identity,
                p.ProtocolError(
                    "capacity", f"sidecar is full ({MAX_SESSIONS} sessions)", session=msg.session
                ),
            )
            return
        if sum(1 for ident, _ in self._slots if ident == identity) >= MAX_SESSIONS_PER_CLIENT:
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
        self._slots[key] = _Slot(identity=identity, session=None, busy=True)
        self._pool.submit(self._run_open, key, msg)

    def _run_open(self, key: tuple[bytes, str], msg: p.OpenSession) -> None:
        try:
            session = Session(self.res, msg.persona, msg.npc_id, msg.state, simulated_clock=msg.clock == "simulated")
            reply: p.Message = p.Opened(session=msg.session, persona=msg.persona, npc_id=msg.npc_id)
        except KeyError as exc:
            session, reply = (
                None,
                p.Error(session=msg.session, code="unknown_persona", message=str(exc.args[0])),
            )
        except ValueError as exc:  # PersonaError
            session, reply = None, p.Error(session=msg.session, code="bad_persona", message=str(exc))
        self._hand_back(key, reply, session=session, opened=True)

    def _start_step(self, key: tuple[bytes, str], slot: _Slot, msg: p.MicChunk) -> None:
        slot.busy = True
        self._pool.submit(self._run_step, key, slot.session, msg)

    def _run_step(self, key: tuple[bytes, str], session: Session, msg: p.MicChunk) -> None:
        try:
            result = session.step(msg.pcm, msg.played, msg.state)
            reply: p.Message = p.StepReply(
                session=msg.session,
                seq=msg.seq,
                pcm=result.pcm,
                events=[e.to_wire() for e in result.events],
                compute_ms=round(result.compute_ms, 3),
            )
        except Exception as exc:
            log.exception("step failed for session %s", msg.session)
            reply = p.Error(session=msg.session, code="internal", message=f"step failed: {exc}", seq=msg.seq)
        self._hand_back(key, reply)

    def _hand_back(
        self, key: tuple[bytes, str], reply: p.Message, session: Session | None = None, opened: bool = False
    ) -> None:
        """From a worker thread: give the reply to the socket thread."""
        sock = getattr(self._local, "push", None)
        if sock is None:
            sock = self.ctx.socket(zmq.PUSH)
            sock.connect(self._inproc)
            self._local.push = sock
        self._done.put((key, session, opened, reply))
        sock.send(b"")

    def _on_done(self, router: zmq.Socket) -> None:
        key, session, opened, reply = self._done.get_nowait()
        slot = self._slots.get(key)
        if opened:
            if slot is not None:
                if session is None:
                    del self._slots[key]
                else:
                    slot.session = session
                    slot.busy = False
        elif slot is not None:
            slot.busy = False
            if isinstance(reply, p.StepReply):
                self.step_ms.append(reply.compute_ms)
            if slot.pending:
                self._start_step(key, slot, slot.pending.popleft())
        self._send(router, key[0], reply)


def serve_forever(
    address: str, persona_dir: str | None = None, workers: int = 2, allow_remote: bool = False
) -> int:
    """Load the models, bind, serve until SIGINT/SIGTERM; report step times on exit."""
    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(1)
    res = EngineResources(persona_dir)
    sidecar = Sidecar(res, address, workers=workers, allow_remote=allow_remote)

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
