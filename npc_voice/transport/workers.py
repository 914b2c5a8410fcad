"""Engine workers: where the sidecar's sessions run, as the front (``transport/server.py``) sees them.

Three kinds, one contract. The front hands a worker a ``Request`` (open, step or close one session's
slot; at most one at a time per session) and hears back on its socket thread: ``worker_up`` once the
worker is ready (models loaded, capacity known), ``worker_reply`` for every open and step, and
``worker_lost`` when the worker died (its sessions are gone with it).

- ``InprocWorkers``: the sidecar's own threads over the models it loaded (``serve --procs 1``): one
  interpreter lock for every session, no IPC, the quickest start; for a single-player game.
- ``ProcessWorkers``: one worker process per core (``serve --procs N``), each hosting many sessions over
  its own models, talking to the front over a private ZeroMQ ipc socket (the client's frames are
  forwarded as they came). A process that dies is seen at once (a pidfd in the front's poll) and a new
  one is started in its place.
- ``RayWorkers`` (``transport/ray_workers.py``): the same worker as a Ray actor on any node of a cluster.

A worker process is ``python -m npc_voice.transport.workers --connect ADDRESS ...``; it dies with the
front (PR_SET_PDEATHSIG), so a killed sidecar leaves no orphan holding 700 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import msgpack
import zmq

from npc_voice.transport import protocol as p

if TYPE_CHECKING:
    from npc_voice.data import PersonaFolders
    from npc_voice.engine.resources import EngineResources
    from npc_voice.transport.host import EngineHost

log = logging.getLogger(__name__)

STEP_THREADS = 4  # per worker: a step may wait on its session's look-ahead work; the others keep going meanwhile
START_TIMEOUT_S = 180.0  # a worker that has not said hello by then is given up (and started again)
RESPAWN_LIMIT = 3  # workers in a row that die before saying hello: then stop starting them (a broken install)


@dataclass(frozen=True)
class Request:
    """What the front asks of a worker for one session slot.

    ``msg`` is the decoded client message (in-process workers use it); ``frames`` are the client's frames as
    they came (other workers decode them themselves, so nothing is encoded twice). ``level`` is the overload
    level in force on this worker; ``lost``: chunks missing before this one (goes into the step's reply).
    """

    op: str  # "open" | "step" | "close"
    slot: int
    level: int = 0
    lost: int = 0
    msg: p.Message | None = None
    frames: Sequence[Any] = ()


class Front(Protocol):
    """What workers report to (``server.Sidecar``). All but ``post`` are called on the front's socket thread."""

    def post(self, fn: Callable[..., None], *args: Any) -> None:
        """Thread-safe: run ``fn(*args)`` on the socket thread."""

    def worker_up(self, worker: EngineWorker) -> None: ...

    def worker_reply(self, worker: EngineWorker, slot: int, op: str, reply: p.Message) -> None: ...

    def worker_lost(self, worker: EngineWorker, why: str) -> None: ...


@dataclass(eq=False)
class EngineWorker:
    """One engine worker: its name, whether it serves, how many sessions it holds, and what it reported."""

    name: str
    alive: bool = False
    capacity: int = 0
    info: dict[str, Any] = field(default_factory=dict)  # pid, node, capacity, cost_ms, rss_mb, up_s...
    generation: int = 0  # +1 each time it is lost; a late answer from an older generation is not believed
    failed: bool = False  # given up: it kept dying before it was ready (a broken install, no memory...)
    submit: Callable[[Request], None] = field(default=lambda req: None, repr=False)
    # applies an overload level now (in-process workers); others get it with their next request
    apply_level: Callable[[int], None] = field(default=lambda level: None, repr=False)
    # ends a hung worker so that it is lost (and replaced) like a dead one; nothing can end the front's own threads
    kill: Callable[[], None] = field(default=lambda: None, repr=False)

    def describe(self) -> str:
        where = f"pid {self.info['pid']}" if "pid" in self.info else "not started"
        if self.info.get("node"):
            where += f" on node {self.info['node'][:8]}"
        return f"{self.name} ({where})"


class EnginePool(Protocol):
    """A set of workers of one kind, started and stopped together by the front."""

    workers: list[EngineWorker]

    def start(self, front: Front) -> None: ...

    def poll_items(self) -> list[Any]:
        """Sockets and file descriptors the front's socket thread polls for this pool."""

    def on_poll(self, item: Any) -> None:
        """One of ``poll_items`` is readable (called on the socket thread)."""

    def stop(self) -> None: ...


def handle_request(host: EngineHost, op: str, slot: int, level: int, lost: int, frames: Sequence[bytes]) -> list[bytes]:
    """Run one forwarded request on ``host`` (a worker process or a Ray actor); the reply's frames, or none."""
    host.set_level(level)
    if op == "close":
        host.close(slot)
        return []
    if op == "reset":
        host.reset()
        return []
    try:
        msg = p.decode(list(frames))
    except p.ProtocolError as err:  # the front checked it already: this is a bug, said as one
        return p.encode(p.Error(code="internal", message=f"engine worker could not read a forwarded message: {err}"))
    if op == "open" and isinstance(msg, p.OpenSession):
        return p.encode(host.open(slot, msg))
    if op == "step" and isinstance(msg, p.MicChunk):
        return p.encode(host.step(slot, msg, lost))
    return p.encode(p.Error(session=msg.session, code="internal", message=f"engine worker got {op!r} for {msg.TYPE!r}"))


# ---------------------------------------------------------------------------------------------- in-process


class InprocWorkers:
    """The sidecar's own step threads over models loaded in its own process (``serve --procs 1``)."""

    def __init__(self, resources: EngineResources, threads: int = STEP_THREADS, capacity: int = 32) -> None:
        from npc_voice.transport.host import EngineHost

        self.host = EngineHost(resources)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="npc-step")
        worker = EngineWorker(name="in-process", capacity=capacity,
                              info={"pid": os.getpid(), "capacity": capacity, "measured": False})
        worker.submit = self._submit
        worker.apply_level = self.host.set_level
        self.workers = [worker]
        self._front: Front | None = None

    def start(self, front: Front) -> None:
        self._front = front
        self.workers[0].alive = True
        front.post(front.worker_up, self.workers[0])

    def poll_items(self) -> list[Any]:
        return []

    def on_poll(self, item: Any) -> None:  # pragma: no cover - nothing to poll
        pass

    def _submit(self, req: Request) -> None:
        self._pool.submit(self._run, req)

    def _run(self, req: Request) -> None:
        assert self._front is not None
        worker = self.workers[0]
        if req.op == "close":
            self.host.close(req.slot)
            return
        if req.op == "open":
            assert isinstance(req.msg, p.OpenSession)
            reply = self.host.open(req.slot, req.msg)
        else:
            assert isinstance(req.msg, p.MicChunk)
            reply = self.host.step(req.slot, req.msg, req.lost)
        self._front.post(self._front.worker_reply, worker, req.slot, req.op, reply)

    def stop(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.host.reset()


# ---------------------------------------------------------------------------------------------- processes


@dataclass(eq=False)
class _Process:
    """A worker process as its pool tracks it."""

    worker: EngineWorker
    index: int
    proc: subprocess.Popen | None = None
    pidfd: int | None = None
    started: float = 0.0
    early_deaths: int = 0  # died before saying hello, in a row

    @property
    def identity(self) -> bytes:
        return f"w{self.index}.{self.worker.generation}".encode()


class ProcessWorkers:
    """``n`` worker processes on this machine, behind one private ipc socket of the front."""

    def __init__(
        self,
        n: int,
        persona_dir: PersonaFolders = None,
        capacity: int | None = None,
        threads: int = STEP_THREADS,
        voice_cache: str | os.PathLike[str] | None = None,
        recogniser: str | None = None,
        memory: str | os.PathLike[str] | None = None,
    ) -> None:
        self.n = n
        self.recogniser = recogniser
        self.memory = memory  # the memory file, shared by every worker (SQLite's WAL locks across processes)
        self.persona_dirs = persona_folder_list(persona_dir)
        self.voice_cache = voice_cache
        self.capacity = capacity  # None: each worker measures its own at start-up
        self.threads = threads
        self._tmp = tempfile.mkdtemp(prefix="npc-voice-workers-")
        self.address = f"ipc://{self._tmp}/workers.sock"
        self._procs = [_Process(EngineWorker(name=f"worker {i + 1}"), i) for i in range(n)]
        self.workers = [proc.worker for proc in self._procs]
        for proc in self._procs:
            proc.worker.submit = functools.partial(self.submit_to, proc)
            proc.worker.kill = functools.partial(self._kill, proc)
        self._front: Front | None = None
        self._router: zmq.Socket | None = None
        self._by_identity: dict[bytes, _Process] = {}
        self._by_fd: dict[int, _Process] = {}
        # the share of a core each worker gets: one each while there are cores enough
        self._share = min(1.0, (os.cpu_count() or 1) / n)

    def start(self, front: Front) -> None:
        self._front = front
        router = zmq.Context.instance().socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a worker that is gone fails instead of vanishing
        router.setsockopt(zmq.SNDHWM, 10_000)
        router.setsockopt(zmq.RCVHWM, 10_000)
        router.bind(self.address)
        self._router = router
        for proc in self._procs:
            self._spawn(proc)

    def _spawn(self, proc: _Process) -> None:
        # -P: run the npc_voice this process imported, never one in the working directory (as SidecarProcess)
        cmd = [sys.executable, "-P", "-m", "npc_voice.transport.workers", "--connect", self.address,
               "--identity", proc.identity.decode(), "--parent", str(os.getpid()), "--threads", str(self.threads),
               "--share", f"{self._share:.3f}"]
        for folder in self.persona_dirs:
            cmd += ["--personas", folder]
        if self.voice_cache is not None:
            cmd += ["--voice-cache", str(self.voice_cache)]
        if self.recogniser:
            cmd += ["--asr", self.recogniser]
        if self.memory is not None:
            cmd += ["--memory", os.fspath(self.memory)]
        if proc.index > 0:  # the first worker renders persona lines ahead into the cache all of them read
            cmd += ["--no-render-ahead"]
        if self.capacity:
            cmd += ["--capacity", str(self.capacity)]
        proc.started = time.monotonic()
        proc.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        proc.pidfd = os.pidfd_open(proc.proc.pid)
        proc.worker.info = {"pid": proc.proc.pid}
        self._by_identity[proc.identity] = proc
        self._by_fd[proc.pidfd] = proc
        log.info("%s: started (pid %d)", proc.worker.name, proc.proc.pid)

    def poll_items(self) -> list[Any]:
        return ([self._router] if self._router is not None else []) + list(self._by_fd)

    def on_poll(self, item: Any) -> None:
        if item is self._router:
            assert self._router is not None
            while self._router.poll(0):
                self._on_message(self._router.recv_multipart(copy=False))
        elif item in self._by_fd:
            self._on_exit(self._by_fd[item])

    def _on_message(self, frames: list[zmq.Frame]) -> None:
        assert self._front is not None
        proc = self._by_identity.get(frames[0].bytes)
        if proc is None:
            return  # an older generation's last words
        head = msgpack.unpackb(frames[1].bytes, raw=False)
        worker = proc.worker
        if head[0] == "hello":
            info = dict(head[1])
            info["up_s"] = round(time.monotonic() - proc.started, 2)
            worker.info, worker.capacity = info, int(info["capacity"])
            worker.alive, proc.early_deaths = True, 0
            self._front.worker_up(worker)
            return
        _, slot, op = head
        try:
            reply = p.decode([f.bytes for f in frames[2:]])
        except p.ProtocolError as err:
            reply = p.Error(code="internal", message=f"unreadable reply from {worker.name}: {err}")
        self._front.worker_reply(worker, slot, op, reply)

    def _on_exit(self, proc: _Process) -> None:
        assert self._front is not None and proc.proc is not None and proc.pidfd is not None
        code = proc.proc.wait()
        del self._by_fd[proc.pidfd]
        os.close(proc.pidfd)
        self._by_identity.pop(proc.identity, None)
        why = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        worker = proc.worker
        was_up = worker.alive
        worker.alive = False
        worker.generation += 1
        log.error("%s (pid %d) %s", worker.name, proc.proc.pid, why)
        self._front.worker_lost(worker, f"{worker.name}, pid {proc.proc.pid}, {why}")
        proc.early_deaths = 0 if was_up else proc.early_deaths + 1
        if proc.early_deaths >= RESPAWN_LIMIT:
            log.error("%s died %d times before it was ready: not started again", worker.name, proc.early_deaths)
            worker.failed = True
            return
        self._spawn(proc)

    def _kill(self, proc: _Process) -> None:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.proc.send_signal(signal.SIGKILL)  # its pidfd reports the death: lost, replaced

    def submit_to(self, proc: _Process, req: Request) -> None:
        assert self._router is not None
        head = msgpack.packb([req.op, req.slot, req.level, req.lost])
        try:
            self._router.send_multipart([proc.identity, head, *req.frames], copy=False, flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # gone (its pidfd says so next) or not reading
            log.warning("%s: request not delivered (%s)", proc.worker.name, exc)

    def stop(self) -> None:
        for proc in self._procs:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.proc.terminate()
        for proc in self._procs:
            if proc.proc is not None:
                try:
                    proc.proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.proc.kill()
                    proc.proc.wait(5)
        for fd in list(self._by_fd):
            os.close(fd)
        self._by_fd.clear()
        if self._router is not None:
            self._router.close(0)
        shutil.rmtree(self._tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- worker process


def _die_with_parent(parent: int) -> None:
    """Linux: SIGTERM this process when the front dies (even by kill -9), so no worker outlives it."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() != parent:  # it died before the line above
        os._exit(0)


class _WorkerLoop:
    """A worker process's socket thread (never computes) and its step threads."""

    def __init__(self, host: EngineHost, address: str, identity: bytes, threads: int) -> None:
        self.host = host
        self.ctx = zmq.Context.instance()
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.ROUTING_ID, identity)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.setsockopt(zmq.SNDHWM, 10_000)
        self.dealer.setsockopt(zmq.RCVHWM, 10_000)
        self.dealer.connect(address)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="npc-step")
        self._inproc = f"inproc://npc-worker-{uuid.uuid4().hex}"
        self._pull = self.ctx.socket(zmq.PULL)
        self._pull.bind(self._inproc)
        self._done: queue.SimpleQueue[list[bytes]] = queue.SimpleQueue()
        self._local = threading.local()

    def run(self, hello: dict[str, Any]) -> None:
        self.dealer.send_multipart([msgpack.packb(["hello", hello])])
        poller = zmq.Poller()
        poller.register(self.dealer, zmq.POLLIN)
        poller.register(self._pull, zmq.POLLIN)
        while True:
            for sock, _ in poller.poll():
                if sock is self.dealer:
                    frames = self.dealer.recv_multipart(copy=False)
                    op, slot, level, lost = msgpack.unpackb(frames[0].bytes, raw=False)
                    self._pool.submit(self._run, op, slot, level, lost, [f.bytes for f in frames[1:]])
                else:
                    self._pull.recv()
                    self.dealer.send_multipart(self._done.get_nowait(), copy=False)

    def _run(self, op: str, slot: int, level: int, lost: int, frames: list[bytes]) -> None:
        reply = handle_request(self.host, op, slot, level, lost, frames)
        if not reply:
            return
        push = getattr(self._local, "push", None)
        if push is None:
            push = self._local.push = self.ctx.socket(zmq.PUSH)
            push.connect(self._inproc)
        self._done.put([msgpack.packb(["reply", slot, op]), *reply])
        push.send(b"")


def worker_main(argv: Sequence[str] | None = None) -> None:
    """Entry point of a worker process: load the models, measure the capacity, serve the front."""
    t0 = time.monotonic()
    ap = argparse.ArgumentParser(description="npc-voice engine worker (started by `npc-voice serve --procs N`)")
    ap.add_argument("--connect", required=True, help="the front's worker socket")
    ap.add_argument("--identity", required=True)
    ap.add_argument("--parent", type=int, required=True, help="the front's pid: this worker dies with it")
    ap.add_argument("--personas", action="append", default=[], help="a persona folder (repeatable)")
    ap.add_argument("--voice-cache", default=None, help="the folder of lines rendered ahead")
    ap.add_argument("--asr", default=None, help="the accurate recogniser (default: the engine's)")
    ap.add_argument("--memory", default=None, help="the memory file (default: remember only within a session)")
    ap.add_argument("--no-render-ahead", dest="render_ahead", action="store_false",
                    help="only read the voice cache (another worker fills it)")
    ap.add_argument("--capacity", type=int, default=None, help="sessions this worker takes (default: measured)")
    ap.add_argument("--share", type=float, default=1.0, help="share of a core this worker may count on")
    ap.add_argument("--threads", type=int, default=STEP_THREADS)
    args = ap.parse_args(argv)
    _die_with_parent(args.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the front stops the workers
    logging.basicConfig(level=logging.WARNING,
                        format=f"%(asctime)s %(levelname)s [{args.identity}] %(name)s: %(message)s")
    host = load_host(args.personas, args.voice_cache, args.render_ahead, args.asr, args.memory)
    info = hello_info(host, args.capacity, args.share, t0)
    loop = _WorkerLoop(host, args.connect, args.identity.encode(), args.threads)
    threading.Thread(target=host.preload_personas, name="npc-preload", daemon=True).start()
    loop.run(info)


def load_host(persona_dir: PersonaFolders = None, voice_cache: str | os.PathLike[str] | None = None,
              render_ahead: bool = True, recogniser: str | None = None,
              memory: str | os.PathLike[str] | None = None) -> EngineHost:
    """The models of one worker, loaded once for all its sessions (``recogniser``: None, the engine's default;
    ``memory``: the memory file, None: sessions remember their player only while they last)."""
    from npc_voice.engine.resources import EngineResources
    from npc_voice.features.asr import DEFAULT_RECOGNISER
    from npc_voice.memory.store import MemoryStore
    from npc_voice.priority import single_threaded_math
    from npc_voice.transport.host import EngineHost

    single_threaded_math()
    return EngineHost(EngineResources(persona_dir, voice_cache=voice_cache, render_ahead=render_ahead,
                                      recogniser=recogniser or DEFAULT_RECOGNISER,
                                      memory=MemoryStore(memory) if memory is not None else None))


def persona_folder_list(persona_dir: PersonaFolders) -> list[str]:
    """The user's persona folders as ``serve --personas`` took them (the built-in ones each worker adds itself)."""
    if persona_dir is None:
        return []
    if isinstance(persona_dir, str | os.PathLike):
        return [os.fspath(persona_dir)]
    return [os.fspath(folder) for folder in persona_dir]


def hello_info(host: EngineHost, capacity: int | None, share: float, t0: float) -> dict[str, Any]:
    """What a worker tells the front once it is ready: who it is and how many sessions it holds."""
    from npc_voice.transport.host import Capacity, process_rss_mb

    loaded = time.monotonic() - t0
    if capacity:
        cap = Capacity(sessions=capacity, cost_ms=None, measured=False)
    else:
        try:
            cap = host.measure_capacity(share)
        except Exception as exc:  # noqa: BLE001 - a worker without a measurement still serves
            log.warning("capacity not measured (%s): taking %d sessions", exc, FALLBACK_CAPACITY)
            cap = Capacity(sessions=FALLBACK_CAPACITY, cost_ms=None, measured=False)
    return {
        "pid": os.getpid(),
        "capacity": cap.sessions,
        "cost_ms": cap.cost_ms,
        "measured": cap.measured,
        "load_s": round(loaded, 2),
        "ready_s": round(time.monotonic() - t0, 2),
        "rss_mb": process_rss_mb(),
    }


FALLBACK_CAPACITY = 4  # a worker that could not measure itself: 4 sessions ran in real time on one core here


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        worker_main()
