"""Engine workers as Ray actors, for a sidecar bigger than one machine (``npc-voice serve --ray ADDRESS``).

The front stays one address for the game; it joins the Ray cluster as a driver and starts the workers
as actors, each declaring what it needs (``num_cpus``, ``memory``), so Ray places them on the cluster's
nodes (spread out). Each session's steps go to its actor as actor calls carrying the client's frames as
they came; replies come back through Ray's futures. Ray, not this module, finds dead actors and nodes
and restarts actors (``max_restarts=-1``): a call to a dead actor fails, the front gives up that
actor's sessions (their clients reopen them on live actors), and one call with retries waits for Ray to
bring the actor back up, on any node with room, after which it takes sessions again.

Ray is an optional extra (``pip install 'npc-voice[ray]'``): nothing here imports it until a pool starts.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import zmq

from npc_voice.transport import protocol as p
from npc_voice.transport.workers import (
    STEP_THREADS,
    EngineWorker,
    Front,
    Request,
    handle_request,
    persona_folder_list,
)

if TYPE_CHECKING:
    from npc_voice.data import PersonaFolders

log = logging.getLogger(__name__)

# Ray's own failure detection, made fast enough for a conversation (each one only if the operator has not
# set it). When an actor's process dies, the front's call fails at once instead of Ray first trying to
# reconnect for a second and waiting another second for the death to be confirmed (measured here: 1.6 s
# from kill -9 to the failed call with Ray's defaults, 0.13 s with these). Ray reads them when it is first
# imported: ``RayWorkers.start`` sets them before that, so nothing in the front may import Ray earlier.
RAY_FAST_FAILURE = {
    "RAY_core_worker_rpc_server_reconnect_timeout_base_s": "0",
    "RAY_timeout_ms_task_wait_for_death_info": "100",
}
# An actor's resident memory with its models and a full load of sessions: 0.9 GB measured at 16 sessions in
# one process (docs/perf/README.md), with headroom. Ray places an actor only where this much is free.
ACTOR_MEMORY_MB = 1200
# How often a lost actor is asked whether Ray has it back (a restart loads the models: several seconds). A
# call that waits with Ray's own retries would do, but it logs every retry on the front's console.
REVIVE_POLL_S = 0.5


class EngineActor:
    """A Ray actor hosting sessions over its own copy of the models (a threaded actor: many sessions step
    at once, as in a worker process). Wrapped with ``ray.remote`` by ``RayWorkers``."""

    def __init__(self, persona_dir: list[str], capacity: int | None, voice_cache: str | None = None,
                 recogniser: str | None = None, memory: str | None = None) -> None:
        from npc_voice.transport.workers import hello_info, load_host

        t0 = time.monotonic()
        # each actor renders persona lines ahead into its own machine's voice cache
        # ``memory``: a path on the actor's own machine (each machine of a cluster keeps its own file)
        self.host = load_host(persona_dir, voice_cache, recogniser=recogniser, memory=memory)
        self.info = hello_info(self.host, capacity, 1.0, t0)  # an actor declares a whole CPU: a core of its own
        self.info["instance"] = uuid.uuid4().hex  # changes when Ray restarts the actor
        try:
            import ray

            self.info["node"] = ray.get_runtime_context().get_node_id()
        except Exception:  # noqa: BLE001 - the node id is for the operator's eyes only
            self.info["node"] = ""
        threading.Thread(target=self.host.preload_personas, name="npc-preload", daemon=True).start()

    def hello(self) -> dict[str, Any]:
        from npc_voice.transport.host import process_rss_mb

        return {**self.info, "rss_mb": process_rss_mb(), "sessions": self.host.sessions}

    def handle(self, op: str, slot: int, level: int, lost: int, frames: Sequence[bytes]) -> list[bytes]:
        return handle_request(self.host, op, slot, level, lost, frames)


class RayWorkers:
    """``n`` engine actors on the Ray cluster at ``address`` (``None``: one per ``cpus`` CPUs of the cluster)."""

    def __init__(
        self,
        address: str,
        n: int | None = None,
        persona_dir: PersonaFolders = None,
        capacity: int | None = None,
        threads: int = STEP_THREADS,
        cpus: float = 1.0,
        memory_mb: int | None = None,
        voice_cache: str | os.PathLike[str] | None = None,
        recogniser: str | None = None,
        memory: str | os.PathLike[str] | None = None,
    ) -> None:
        self.address = address
        self.recogniser = recogniser
        self.memory = os.fspath(memory) if memory is not None else None
        self.n = n
        # folders as given: on another machine of the cluster they must exist at the same paths
        self.persona_dirs = persona_folder_list(persona_dir)
        self.voice_cache = None if voice_cache is None else os.fspath(voice_cache)
        self.capacity = capacity
        self.threads = threads
        self.cpus = cpus
        self.memory_mb = memory_mb or ACTOR_MEMORY_MB
        self.workers: list[EngineWorker] = []
        self._actors: dict[EngineWorker, Any] = {}
        self._instances: dict[EngineWorker, str] = {}
        self._front: Front | None = None

    def start(self, front: Front) -> None:
        if "ray" in sys.modules:
            log.warning("Ray was imported before the engine actors were set up: its failure detection keeps its "
                        "defaults (a lost actor is seen after ~1.6 s instead of ~0.1 s)")
        for key, value in RAY_FAST_FAILURE.items():
            os.environ.setdefault(key, value)
        import ray

        self._front = front
        ray.init(address=self.address, namespace="npc-voice", logging_level=logging.WARNING,
                 ignore_reinit_error=True)
        n = self.n or max(1, int(ray.cluster_resources().get("CPU", 1) // self.cpus))
        actor = ray.remote(EngineActor).options(
            num_cpus=self.cpus,
            memory=self.memory_mb * 1024 * 1024,
            max_restarts=-1,  # Ray starts a dead actor again, on any node with room
            max_task_retries=0,  # never run a step twice: a restarted actor has none of the session's state
            max_concurrency=self.threads + 2,  # the step threads, and room for hello and close meanwhile
            scheduling_strategy="SPREAD",
        )
        for i in range(n):
            worker = EngineWorker(name=f"actor {i + 1}")
            worker.submit = lambda req, w=worker: self._submit(w, req)
            worker.kill = lambda w=worker: self._kill(w)
            self.workers.append(worker)
            self._actors[worker] = actor.remote(self.persona_dirs, self.capacity, self.voice_cache,
                                                        self.recogniser, self.memory)
            self._hello(worker, started=time.monotonic())
        log.info("%d engine actor(s) asked of the Ray cluster at %s", n, self.address)

    def _hello(self, worker: EngineWorker, started: float) -> None:
        """Ask the actor for its hello (answered once its models are loaded and its capacity measured)."""
        assert self._front is not None
        front = self._front
        ref = self._actors[worker].hello.remote()
        ref.future().add_done_callback(lambda fut: front.post(self._on_hello, worker, started, fut))

    def _on_hello(self, worker: EngineWorker, started: float, fut: Any) -> None:
        assert self._front is not None
        import ray.exceptions as rex

        try:
            info = fut.result()
        except rex.ActorDiedError as exc:  # Ray gave up on it (no restarts left), or it is being shut down
            log.error("%s will not come up again: %s", worker.name, exc)
            return
        except Exception:  # noqa: BLE001 - being restarted by Ray (or still unreachable): ask again shortly
            timer = threading.Timer(REVIVE_POLL_S, self._hello, (worker, started))
            timer.daemon = True
            timer.start()
            return
        if self._instances.get(worker) == info["instance"]:
            # the same actor came back after it could not be reached: its sessions were reopened elsewhere
            self._actors[worker].handle.remote("reset", 0, 0, 0, [])
        self._instances[worker] = info["instance"]
        info["up_s"] = round(time.monotonic() - started, 2)
        worker.info, worker.capacity, worker.alive = info, int(info["capacity"]), True
        self._front.worker_up(worker)

    def _kill(self, worker: EngineWorker) -> None:
        import ray

        ray.kill(self._actors[worker], no_restart=False)  # its calls fail (lost), and Ray starts it again

    def _submit(self, worker: EngineWorker, req: Request) -> None:
        assert self._front is not None
        frames = [f.bytes if isinstance(f, zmq.Frame) else bytes(f) for f in req.frames]
        ref = self._actors[worker].handle.remote(req.op, req.slot, req.level, req.lost, frames)
        if req.op == "close":
            return
        front, generation = self._front, worker.generation
        ref.future().add_done_callback(lambda fut: front.post(self._on_result, worker, generation, req, fut))

    def _on_result(self, worker: EngineWorker, generation: int, req: Request, fut: Any) -> None:
        assert self._front is not None
        import ray.exceptions as rex

        try:
            frames = fut.result()
        except rex.RayTaskError as exc:  # the method itself raised: a bug, said as one for this session only
            reply: p.Message = p.Error(code="internal", message=f"engine actor failed: {exc}")
        except Exception as exc:  # noqa: BLE001 - the actor (or its node) is gone, in whatever words Ray says it
            if worker.alive and worker.generation == generation:
                worker.alive = False
                worker.generation += 1
                self._front.worker_lost(worker, f"{worker.name} {type(exc).__name__}")
                self._hello(worker, started=time.monotonic())
            return
        else:
            reply = p.decode(frames)
        if worker.generation == generation:
            self._front.worker_reply(worker, req.slot, req.op, reply)

    def poll_items(self) -> list[Any]:
        return []

    def on_poll(self, item: Any) -> None:  # pragma: no cover - nothing to poll
        pass

    def stop(self) -> None:
        if self._front is None:
            return  # never started
        import ray

        for actor in self._actors.values():
            ray.kill(actor, no_restart=True)
        ray.shutdown()
