"""Performance under load (``npc-voice bench perf``): the 200 ms deadline with 1..16 sessions, per setup.

A setup is how the sidecar runs: in-process (``serve --procs 1``), N worker processes (``--procs N``), or
engine actors on a local multi-node Ray cluster (``--ray``: ``ray.cluster_utils.Cluster``, nodes of one
CPU each, started by this bench). For each setup a real sidecar process is started and its start-up
timed to the ready line (every worker up) and to the first ``opened``. Then, for each concurrency level,
that many sessions stream real speech (the ``user.wav`` of the eval cases, looped) through the real
client in real time: one chunk per 200 ms per session, starts staggered across the 200 ms. Per reply it
records the server's ``compute_ms``, the round trip and whether the reply came back before the
session's next chunk was due (else a deadline miss). CPU and resident memory of the front and of every
worker process come from ``/proc``, and the whole machine's CPU from ``/proc/stat`` (so what other
processes took is on record). With more than one worker, a worker (or a Ray node: every process of it)
is killed with SIGKILL mid-conversation and the time until its sessions are back on a live worker is
measured. A long session on a simulated clock (``bench.soak``) shows whether memory and step time stay flat.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from npc_voice.audio.devices import read_wav
from npc_voice.audio.format import CHUNK_SAMPLES, CHUNK_SECONDS
from npc_voice.transport.client import ErrorReply, SidecarClient
from npc_voice.transport.process import SidecarProcess

DEFAULT_CASES = Path("/work/shared/eval/dev")
LEVELS = (1, 2, 4, 8, 16)
ECHO_GAIN = 0.3  # the NPC's reply leaks back into the microphone at this gain (and is sent as reference)
FAILOVER_SESSIONS = 4  # half of them on the worker that is killed; the survivor has room for all
FAILOVER_SECONDS = 12.0
KILL_AFTER_S = 4.0
RESTART_WAIT_S = 120.0  # how long to wait for a killed worker's replacement to come up
# after a level that degraded the sidecar, the next one waits for every level to be undone (one per 5 s once its
# sessions are gone), so that no level is measured from the last one's overload (new sessions refused meanwhile)
SETTLE_S = 21.0
SYSTEM = "ray:"  # names of the Ray cluster's own processes in a level's process list


# ---------------------------------------------------------------------------------------------- /proc


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used (all threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    """Resident memory of the process in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for pid {pid}")


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores (``/proc/stat``)."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values[:8]) - idle) / tick, sum(values[:8]) / tick


def children(pid: int) -> list[int]:
    """Every descendant of a process (``/proc/<pid>/task/*/children``)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except FileNotFoundError:
            continue
        for kid in kids:
            out += [kid, *children(kid)]
    return out


def machine() -> dict[str, object]:
    """What the figures were measured on, and how busy it was."""
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    with open("/proc/meminfo") as f:
        mem = next(line.split()[1] for line in f if line.startswith("MemTotal"))
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "mem_gb": round(int(mem) / 1024**2, 1),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


# ---------------------------------------------------------------------------------------------- speech


def speech_loops(cases: Path, n: int) -> list[np.ndarray]:
    """``n`` microphone tracks from the cases' ``user.wav`` files (each a different case where possible),
    cut to whole chunks and reshaped to ``(chunks, CHUNK_SAMPLES)``; each is looped by the caller."""
    wavs = sorted(cases.glob("*/user.wav"))
    if not wavs:
        raise FileNotFoundError(f"no */user.wav under {cases}")
    out = []
    for i in range(n):
        audio = read_wav(wavs[(i * 7) % len(wavs)])  # stride so neighbours come from different tasks
        audio = np.pad(audio, (0, -len(audio) % CHUNK_SAMPLES))
        out.append(audio.reshape(-1, CHUNK_SAMPLES))
    return out


# ---------------------------------------------------------------------------------------------- load


@dataclass
class LevelResult:
    """One concurrency level of one setup: what the sessions saw and what the sidecar used."""

    sessions: int
    seconds: float
    setup: str = ""
    workers: int = 1  # engine workers (processes or actors; 1 in-process)
    steps: int = 0
    compute_p50_ms: float = 0.0
    compute_p99_ms: float = 0.0
    compute_max_ms: float = 0.0
    rtt_p50_ms: float = 0.0
    rtt_p99_ms: float = 0.0
    deadline_misses: int = 0
    missing: int = 0  # chunks with no reply at all by the end
    errors: dict[str, int] = field(default_factory=dict)
    notices: dict[str, int] = field(default_factory=dict)  # notice events by code (degraded, ...)
    responses: int = 0
    cpu_pct: float = 0.0  # the sidecar's processes together (front and workers), % of one core
    rss_mb: float = 0.0  # their peaks, summed
    process_cpu_pct: dict[str, float] = field(default_factory=dict)  # per process ("front", "worker 1", ...)
    process_rss_mb: dict[str, float] = field(default_factory=dict)  # peak per process
    system_cpu_pct: float = 0.0  # a Ray setup: the cluster's own processes (raylets, GCS, agents), % of one core
    system_rss_mb: float = 0.0  # ... and their peaks, summed
    client_cpu_pct: float = 0.0  # this bench's own process (the client side of every session)
    machine_cpu_pct: float = 0.0  # every process on the machine, % of one core (others = this minus ours)
    loadavg_1: float = 0.0  # machine load when the level ended (other jobs included)

    @property
    def miss_pct(self) -> float:
        return 100 * self.deadline_misses / max(1, self.steps + self.missing)


@dataclass
class Stream:
    """Everything one real-time run saw, reply by reply (for a level's figures and for failover)."""

    n_chunks: int
    sessions: int
    t0: float = 0.0
    # per reply: (session, seq, sent, arrival, error code or "", notice codes)
    replies: list[tuple[int, int | None, float, float, str, tuple[str, ...]]] = field(default_factory=list)
    compute: list[float] = field(default_factory=list)
    responses: int = 0
    worst_frame_s: float = 0.0  # the longest iteration of the sending loop (a game frame's calls)
    event_at: float | None = None  # when ``at``'s action ran
    cpu: dict[str, float] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)
    client_cpu_pct: float = 0.0
    machine_cpu_pct: float = 0.0
    wall: float = 0.0
    refused: int = 0  # sessions the sidecar refused for capacity (not streamed)


def stream(
    address: str,
    pids: dict[str, int],
    cases: Path,
    sessions: int,
    seconds: float,
    persona: str = "blacksmith",
    at: tuple[float, Callable[[], None]] | None = None,
) -> Stream:
    """Stream ``sessions`` sessions in real time for ``seconds``; ``at``: (seconds in, action) runs once."""
    tracks = speech_loops(cases, sessions)
    client = SidecarClient(address)
    n_chunks = int(seconds / CHUNK_SECONDS)
    out = Stream(n_chunks=n_chunks, sessions=sessions)
    try:
        # floor events on, as the game hub opens its sessions: the duplex model runs in every step
        live = [client.open_session(persona=persona, npc_id=f"perf{i}", floor=True) for i in range(sessions)]
        for s in live:
            if not s.wait_opened(60) and not (s.error or "").startswith("capacity"):
                raise RuntimeError(f"session did not open: {s.error}")
        # past the workers' measured capacity the sidecar refuses sessions, as it should: the level runs with the
        # ones it took, and says how many it refused
        out.refused = sum(1 for s in live if not s.opened)
        for s in live:
            if not s.opened:
                s.close()
        live = [s for s in live if s.opened]
        sessions = out.sessions = len(live)
        tracks = tracks[:sessions]
        stagger = CHUNK_SECONDS / max(1, sessions)
        played = [np.zeros(CHUNK_SAMPLES, np.int16) for _ in live]
        sent_at: list[dict[int, float]] = [{} for _ in live]
        next_k = [0] * sessions
        answered = 0
        peak = {name: proc_rss_mb(pid) for name, pid in pids.items()}
        next_rss = 0.0
        cpu0 = {name: proc_cpu_s(pid) for name, pid in pids.items()}
        me0, (busy0, total0) = proc_cpu_s(os.getpid()), machine_busy_s()
        t0 = out.t0 = time.monotonic() + 0.05
        end = t0 + n_chunks * CHUNK_SECONDS + sessions * stagger
        while True:
            now = time.monotonic()
            if at is not None and out.event_at is None and now >= t0 + at[0]:
                out.event_at = time.monotonic()
                at[1]()
            for i, s in enumerate(live):
                k = next_k[i]
                if k < n_chunks and now >= t0 + i * stagger + k * CHUNK_SECONDS:
                    track = tracks[i]
                    mic = track[k % len(track)].astype(np.int32) + (played[i].astype(np.int32) * 3) // 10
                    sent_at[i][s.send_mic(np.clip(mic, -32768, 32767).astype(np.int16), played=played[i])] = now
                    next_k[i] = k + 1
                for r in s.replies():
                    if isinstance(r, ErrorReply):
                        sent = sent_at[i].pop(r.seq, r.arrival) if r.seq is not None else r.arrival
                        out.replies.append((i, r.seq, sent, r.arrival, r.code, ()))
                        answered += r.seq is not None
                        continue
                    answered += 1
                    sent = sent_at[i].pop(r.seq)
                    out.compute.append(r.compute_ms)
                    notices = tuple(e.code for e in r.events if e.type == "notice")
                    out.replies.append((i, r.seq, sent, r.arrival, "", notices))
                    out.responses += sum(e.type == "response" for e in r.events)
                    played[i] = r.pcm
            if now >= next_rss:
                for name, pid in pids.items():
                    peak[name] = max(peak[name], _rss_or_zero(pid))
                next_rss = now + 0.5
            out.worst_frame_s = max(out.worst_frame_s, time.monotonic() - now)
            if answered >= n_chunks * sessions or now > end + 5.0:
                break
            time.sleep(0.001)
        out.wall = wall = time.monotonic() - t0
        out.cpu = {name: round(100 * (_cpu_or(pid, cpu0[name]) - cpu0[name]) / wall, 1) for name, pid in pids.items()}
        out.rss = {name: round(v, 1) for name, v in peak.items()}
        busy1, total1 = machine_busy_s()
        out.client_cpu_pct = round(100 * (proc_cpu_s(os.getpid()) - me0) / wall, 1)
        out.machine_cpu_pct = round(100 * (busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1), 1)
    finally:
        client.close()
    return out


def _rss_or_zero(pid: int) -> float:
    try:
        return proc_rss_mb(pid)
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return 0.0  # killed on purpose (failover), or exiting


def _cpu_or(pid: int, default: float) -> float:
    try:
        return proc_cpu_s(pid)
    except (FileNotFoundError, ProcessLookupError):
        return default


def run_level(
    address: str, pids: int | dict[str, int], cases: Path, sessions: int, seconds: float, persona: str = "blacksmith",
    setup: str = "",
) -> LevelResult:
    """Stream ``sessions`` sessions in real time for ``seconds`` against the sidecar at ``address``, whose
    processes are ``pids`` (name -> pid; a bare pid is one process named "sidecar")."""
    pids = {"sidecar": pids} if isinstance(pids, int) else pids
    s = stream(address, pids, cases, sessions, seconds, persona)
    workers = [name for name in pids if name not in ("front", "sidecar") and not name.startswith(SYSTEM)]
    result = LevelResult(sessions=sessions, seconds=seconds, setup=setup, workers=max(1, len(workers)))
    steps = [r for r in s.replies if not r[4]]
    if s.refused:  # sessions past the capacity: the rest of the level's figures are over the ones taken
        result.errors["capacity"] = s.refused
    for *_, code, _ in s.replies:
        if code:
            result.errors[code] = result.errors.get(code, 0) + 1
    for *_, notices in steps:
        for code in notices:
            result.notices[code] = result.notices.get(code, 0) + 1
    answered = sum(1 for r in s.replies if r[1] is not None)
    result.missing = s.n_chunks * s.sessions - answered
    # late if it came back after the next chunk was due: the speaker would have run dry
    result.deadline_misses = sum(1 for r in steps if r[3] > r[2] + CHUNK_SECONDS) + result.missing
    result.responses = s.responses
    ours = [name for name in s.cpu if not name.startswith(SYSTEM)]
    result.process_cpu_pct = {name: s.cpu[name] for name in ours}
    result.process_rss_mb = {name: s.rss[name] for name in ours}
    result.cpu_pct = round(sum(result.process_cpu_pct.values()), 1)
    result.rss_mb = round(sum(result.process_rss_mb.values()), 1)
    result.system_cpu_pct = round(sum(v for k, v in s.cpu.items() if k.startswith(SYSTEM)), 1)
    result.system_rss_mb = round(sum(v for k, v in s.rss.items() if k.startswith(SYSTEM)), 1)
    result.client_cpu_pct, result.machine_cpu_pct = s.client_cpu_pct, s.machine_cpu_pct
    ms = np.array(s.compute or [0.0])
    rt = np.array([(r[3] - r[2]) * 1000 for r in steps] or [0.0])
    result.steps = len(s.compute)
    result.compute_p50_ms, result.compute_p99_ms = (round(float(x), 1) for x in np.percentile(ms, [50, 99]))
    result.compute_max_ms = round(float(ms.max()), 1)
    result.rtt_p50_ms, result.rtt_p99_ms = (round(float(x), 1) for x in np.percentile(rt, [50, 99]))
    result.loadavg_1 = round(os.getloadavg()[0], 2)
    return result


# ---------------------------------------------------------------------------------------------- setups


@dataclass(frozen=True)
class Setup:
    """How the sidecar under test runs."""

    name: str
    procs: int | None = None  # serve --procs
    ray_nodes: int = 0  # > 0: engine actors on a local Ray cluster of this many 1-CPU nodes


def setups(procs: str, ray: bool, ray_nodes: int = 2) -> list[Setup]:
    out = [Setup("in-process" if n == 1 else f"{n} procs", procs=n) for n in (int(x) for x in procs.split(",") if x)]
    if ray:
        out.append(Setup(f"ray {ray_nodes}x1 CPU", ray_nodes=ray_nodes))
    return out


@dataclass
class Startup:
    """Sidecar launch to its ready line (every worker loaded and measured), and to the first session opened."""

    ready_s: float
    first_opened_s: float
    rss_mb: float  # the front (in-process: the whole sidecar) at ready
    workers: list[dict[str, Any]] = field(default_factory=list)  # what each worker reported (pid, capacity...)
    total_rss_mb: float = 0.0  # front and workers
    system_rss_mb: float = 0.0  # a Ray setup: the cluster's own processes (raylets, GCS, agents, idle workers)
    cluster_s: float = 0.0  # starting the local Ray cluster, before the sidecar (not counted in ready_s)


@dataclass
class Launched:
    """A sidecar under test, with what it runs on."""

    setup: Setup
    proc: SidecarProcess
    startup: Startup
    cluster: Any = None  # ray.cluster_utils.Cluster

    def pids(self, system: bool = True) -> dict[str, int]:
        """The sidecar's processes now: the front and each live worker; ``system``: and a Ray cluster's own."""
        out = {"front": self.proc.proc.pid}
        for name, info in sorted(self.proc.workers.items()):
            if info.get("pid") and info["pid"] != self.proc.proc.pid and os.path.exists(f"/proc/{info['pid']}"):
                out[name] = int(info["pid"])
        if system and self.cluster is not None:
            ours = set(out.values())
            for pid in ray_system_pids(self.cluster):
                if pid not in ours:
                    out[f"{SYSTEM}{pid}"] = pid
        return out

    @property
    def address(self) -> str:
        return self.proc.address


def start_cluster(nodes: int) -> tuple[Any, float]:
    """A local Ray cluster of ``nodes`` nodes of one CPU each (the head is one of them)."""
    from ray.cluster_utils import Cluster

    t = time.monotonic()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    return cluster, round(time.monotonic() - t, 2)


@contextmanager
def launched(setup: Setup, persona: str = "blacksmith") -> Iterator[Launched]:
    """Start the setup's sidecar (and cluster), time it to ready and to a first ``opened``; stop it after."""
    cluster, cluster_s = (None, 0.0)
    args: list[str] = []
    if setup.ray_nodes:
        cluster, cluster_s = start_cluster(setup.ray_nodes)
        args = ["--ray", cluster.address]
    try:
        t = time.monotonic()
        proc = SidecarProcess(procs=setup.procs, args=args)
        try:
            proc.wait_ready(600)
            ready = time.monotonic() - t
            client = SidecarClient(proc.address)
            try:
                s = client.open_session(persona=persona, npc_id="perf-startup")
                if not s.wait_opened(60):
                    raise RuntimeError(f"first session did not open: {s.error}")
                opened = time.monotonic() - t
                s.close()
            finally:
                client.close()
            front_rss = proc_rss_mb(proc.proc.pid)
            workers = [dict(info) for info in proc.workers.values() if info.get("pid") != proc.proc.pid]
            start = Startup(
                ready_s=round(ready, 2), first_opened_s=round(opened, 2), rss_mb=round(front_rss, 1), workers=workers,
                total_rss_mb=round(front_rss + sum(_rss_or_zero(int(w["pid"])) for w in workers), 1),
                cluster_s=cluster_s,
            )
            run = Launched(setup, proc, start, cluster)
            start.system_rss_mb = round(sum(_rss_or_zero(pid) for name, pid in run.pids().items()
                                            if name.startswith(SYSTEM)), 1)
            yield run
        finally:
            proc.stop()
    finally:
        if cluster is not None:
            cluster.shutdown()


# ---------------------------------------------------------------------------------------------- failover


@dataclass
class Failover:
    """A worker (or a whole Ray node) killed with SIGKILL mid-conversation, and what the sessions saw."""

    setup: str
    sessions: int
    killed: str  # what was killed
    moved: int = 0  # sessions that were on it
    back_s: list[float] = field(default_factory=list)  # per moved session: kill -> its first step after reopening
    max_back_s: float = 0.0
    chunks_lost: int = 0  # chunks of the moved sessions answered with an error instead of audio
    others_misses: int = 0  # deadline misses of the sessions that were not moved, from the kill to 5 s after
    others_steps: int = 0
    worst_frame_ms: float = 0.0  # the bench's sending loop, as a game's frame, through it all
    # the replacement up: a worker process, from the kill; an actor restarted by Ray, from its new node joining
    restart_s: float | None = None


def failover(
    run: Launched, cases: Path, sessions: int = FAILOVER_SESSIONS, seconds: float = FAILOVER_SECONDS
) -> Failover:
    """Kill one worker (a Ray node: all its processes) ``KILL_AFTER_S`` into a real-time run; measure the way back.

    The run streams on a thread of its own while this thread kills. For Ray, the dead node is removed from the
    cluster's books and a replacement node is added once the run is over (the cluster's calls belong to the main
    thread; and a node starting on this 2-core machine would take the CPU the failover is measured on: on a real
    cluster it is another machine); the actor's restart is timed from the moment the new node joined."""
    victim: dict[str, Any] = {}
    killed = threading.Event()

    def kill() -> None:
        if run.cluster is not None:
            node = next(iter(run.cluster.worker_nodes))  # never the head: it holds the cluster's control store
            victim["node"] = node
            victim["what"] = f"ray node {node.node_id[:8]} (raylet and every process under it)"
            victim["pids"] = kill_ray_node(node)
        else:
            name, pid = next((n, p) for n, p in run.pids().items() if n != "front")
            victim["what"] = f"{name} (pid {pid})"
            os.kill(pid, signal.SIGKILL)
        killed.set()

    box: dict[str, Stream] = {}
    runner = threading.Thread(
        target=lambda: box.setdefault("s", stream(run.address, run.pids(system=False), cases, sessions, seconds,
                                                  at=(KILL_AFTER_S, kill))),
        name="failover-stream",
    )
    runner.start()
    while runner.is_alive() and not killed.wait(0.1):
        pass
    if killed.is_set() and run.cluster is not None:
        run.cluster.remove_node(victim["node"], allow_graceful=False)
    runner.join()
    s = box["s"]
    tk = s.event_at or 0.0
    restart_from = tk
    if killed.is_set() and run.cluster is not None:
        run.cluster.add_node(num_cpus=1)
        restart_from = time.monotonic()
    result = Failover(setup=run.setup.name, sessions=sessions, killed=victim.get("what", "?"))
    moved = {i for i, _, _, arrival, code, _ in s.replies if code == "no_session" and arrival >= tk}
    result.moved = len(moved)
    for i in sorted(moved):
        back = [arrival for j, _, _, arrival, code, notices in s.replies if j == i and "moved" in notices]
        result.back_s.append(round(back[0] - tk, 3) if back else float("inf"))
        result.chunks_lost += sum(1 for j, seq, _, arrival, code, _ in s.replies
                                  if j == i and code and seq is not None and arrival >= tk)
    result.max_back_s = max(result.back_s, default=0.0)
    window = [r for r in s.replies if r[0] not in moved and not r[4] and tk <= r[2] <= tk + 5.0]
    result.others_steps = len(window)
    result.others_misses = sum(1 for r in window if r[3] > r[2] + CHUNK_SECONDS)
    result.worst_frame_ms = round(s.worst_frame_s * 1000, 1)
    deadline = time.monotonic() + RESTART_WAIT_S
    while time.monotonic() < deadline:
        ups = [t for t, what, _ in run.proc.worker_events if what == "up" and t > tk]
        if ups:
            result.restart_s = round(ups[0] - restart_from, 2)
            break
        time.sleep(0.2)
    return result


def ray_system_pids(cluster: Any) -> list[int]:
    """Every process of a local Ray cluster: what each node started, and what its raylet started."""
    from ray._private import ray_constants

    pids: set[int] = set()
    for node in cluster.list_all_nodes():
        pids.update(info.process.pid for infos in node.all_processes.values() for info in infos)
        for info in node.all_processes.get(ray_constants.PROCESS_TYPE_RAYLET, []):
            pids.update(children(info.process.pid))
    return sorted(pid for pid in pids if os.path.exists(f"/proc/{pid}"))


def kill_ray_node(node: Any) -> list[int]:
    """SIGKILL every process of a Ray node at once, as a machine that dies: its raylet, what it started
    (the node's workers, the engine actor among them) and its agents."""
    from ray._private import ray_constants

    pids = {info.process.pid for infos in node.all_processes.values() for info in infos}
    for info in node.all_processes.get(ray_constants.PROCESS_TYPE_RAYLET, []):
        pids.update(children(info.process.pid))
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return sorted(pids)


# ---------------------------------------------------------------------------------------------- soak


def long_session(sessions: int, minutes: float) -> dict[str, object]:
    """``bench.soak`` in this process (so ``/proc/self`` is the sidecar): memory and step time per minute."""
    import torch

    from npc_voice.bench.soak import soak
    from npc_voice.engine.resources import EngineResources
    from npc_voice.transport.server import Sidecar

    torch.set_num_threads(1)
    res = EngineResources()
    try:
        with Sidecar(res, f"ipc://{tempfile.mkdtemp(prefix='npc-perf-')}/s.sock").running() as address:
            report = soak(address, sessions, minutes)
    finally:
        res.close()
    rows = report.minutes
    base = rows[min(1, len(rows) - 1)]  # after the first minute: warm-up (first answers, allocator) is over
    return {
        "sessions": sessions,
        "minutes": minutes,
        "steps": report.steps,
        "errors": dict(report.errors),
        "responses": report.responses,
        "rss_drift_pct": round(100 * (rows[-1]["rss_mb"] - base["rss_mb"]) / base["rss_mb"], 2),
        "rss_slope_mb_per_min": round(report.rss_growth_mb_per_min(), 3),
        "per_minute": rows,
    }


# ---------------------------------------------------------------------------------------------- report


def _per_worker(values: dict[str, float]) -> str:
    workers = {k: v for k, v in values.items() if k not in ("front", "sidecar")}
    if not workers:
        return "-"
    return " / ".join(f"{v:.0f}" for _, v in sorted(workers.items()))


def table_lines(levels: list[LevelResult]) -> list[str]:
    lines = [
        "| setup | sessions × workers | steps | compute p50 ms | p99 ms | round trip p50 ms | p99 ms "
        "| deadline misses | CPU % per worker (of 1 core) | RSS MB per worker | front CPU % | front RSS MB "
        "| Ray system CPU % | notices | machine CPU % (all processes, of 1 core) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in levels:
        front_cpu = r.process_cpu_pct.get("front", r.process_cpu_pct.get("sidecar", r.cpu_pct))
        front_rss = r.process_rss_mb.get("front", r.process_rss_mb.get("sidecar", r.rss_mb))
        per_cpu, per_rss = _per_worker(r.process_cpu_pct), _per_worker(r.process_rss_mb)
        if per_cpu == "-":  # in-process: the sidecar is its own (one) worker
            per_cpu, per_rss = f"{front_cpu:.0f}", f"{front_rss:.0f}"
        notices = ", ".join(f"{k} {v}" for k, v in sorted(r.notices.items())) or "-"
        if r.errors.get("capacity"):  # sessions refused past the workers' capacity: the figures are the rest's
            notices += f"; {r.errors['capacity']} refused (capacity)"
        lines.append(
            f"| {r.setup or '-'} | {r.sessions} × {r.workers} | {r.steps} | {r.compute_p50_ms} | {r.compute_p99_ms} "
            f"| {r.rtt_p50_ms} | {r.rtt_p99_ms} | {r.deadline_misses} ({r.miss_pct:.1f} %) | {per_cpu} | {per_rss} "
            f"| {front_cpu:.0f} | {front_rss:.0f} | {r.system_cpu_pct:.0f} | {notices} | {r.machine_cpu_pct:.0f} |"
        )
    return lines


def write_report(out: Path, data: dict[str, object]) -> None:
    """``perf.json``, ``table.md`` and ``perf.png`` in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "perf.json").write_text(json.dumps(data, indent=1))
    levels = [LevelResult(**r) for r in data["levels"]]  # type: ignore[union-attr]
    lines = table_lines(levels)
    startups = data.get("startup", {})
    if isinstance(startups, dict) and startups:
        lines += ["", "| setup | ready s | first opened s | workers: capacity (CPU ms per chunk) "
                  "| RSS MB at ready: front + workers = total | Ray's own processes RSS MB |",
                  "|---|---|---|---|---|---|"]
        for name, st in startups.items():
            caps = ", ".join(f"{w.get('capacity')} ({w.get('cost_ms')})" for w in st.get("workers", [])) or "-"
            rss = " + ".join(str(w.get("rss_mb")) for w in st.get("workers", []))
            lines.append(f"| {name} | {st['ready_s']} | {st['first_opened_s']} | {caps} "
                         f"| {st['rss_mb']}{' + ' + rss if rss else ''} = {st.get('total_rss_mb') or st['rss_mb']} "
                         f"| {st.get('system_rss_mb') or '-'} |")
    failovers = data.get("failover", [])
    if failovers:
        lines += ["", "| setup | killed | sessions moved | back after kill s (each) | chunks lost | other sessions' "
                  "misses (5 s) | worst frame ms | replacement up s |", "|---|---|---|---|---|---|---|---|"]
        for f in failovers:  # type: ignore[union-attr]
            lines.append(f"| {f['setup']} | {f['killed']} | {f['moved']} of {f['sessions']} "
                         f"| {', '.join(str(x) for x in f['back_s'])} | {f['chunks_lost']} "
                         f"| {f['others_misses']} of {f['others_steps']} | {f['worst_frame_ms']} | {f['restart_s']} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    names = list(dict.fromkeys(r.setup for r in levels))
    for name in names:
        rows = [r for r in levels if r.setup == name]
        n = [r.sessions for r in rows]
        axes[0].plot(n, [r.miss_pct for r in rows], "o-", label=name or "sidecar")
        axes[1].plot(n, [r.cpu_pct / 100 for r in rows], "o-", label=name or "sidecar")
        axes[2].plot(n, [r.compute_p99_ms for r in rows], "o-", label=f"{name} compute p99")
        axes[2].plot(n, [r.rtt_p99_ms for r in rows], "s:", label=f"{name} round trip p99")
    all_n = sorted({r.sessions for r in levels})
    cores = data["machine"]["cores"]  # type: ignore[index]
    axes[0].set(xscale="log", xlabel="concurrent sessions", ylabel="% of replies late", title="deadline misses")
    axes[1].axhline(cores, color="red", lw=0.8, label=f"{cores} cores")
    axes[1].set(xscale="log", xlabel="concurrent sessions", ylabel="cores", title="CPU of the sidecar's processes")
    axes[2].axhline(200, color="red", lw=0.8, label="200 ms deadline")
    axes[2].set(xscale="log", yscale="log", xlabel="concurrent sessions", ylabel="ms", title="step time")
    for ax in axes:
        ax.set_xticks(all_n, [str(x) for x in all_n])
        ax.legend(fontsize=7)
    fig.suptitle(f"npc-voice sidecar: scaling with engine workers on {cores} cores")
    fig.tight_layout()
    fig.savefig(out / "perf.png", dpi=100)
    plt.close(fig)


def run_perf(
    cases: Path,
    out: Path,
    levels: tuple[int, ...] = LEVELS,
    seconds: float = 30.0,
    soak_minutes: float = 60.0,
    procs: str = "1",
    ray: bool = False,
    ray_nodes: int = 2,
    failover_runs: bool = True,
) -> dict[str, object]:
    """The whole bench: per setup start-up, every level, a failover; the long session; the report in ``out``."""
    data: dict[str, Any] = {"machine": machine(), "startup": {}, "levels": [], "failover": []}
    for setup in setups(procs, ray, ray_nodes):
        with launched(setup) as run:
            data["startup"][setup.name] = asdict(run.startup)
            print(f"{setup.name}: start-up {json.dumps(asdict(run.startup))}", flush=True)
            settle = False
            for n in levels:
                if settle:
                    time.sleep(SETTLE_S)
                r = run_level(run.address, run.pids(), cases, n, seconds, setup=setup.name)
                print(json.dumps(asdict(r)), flush=True)
                data["levels"].append(asdict(r))
                settle = bool(r.notices.get("degraded"))
            if failover_runs and (setup.ray_nodes or (setup.procs or 2) > 1):
                if settle:
                    time.sleep(SETTLE_S)
                f = failover(run, cases)
                print(json.dumps(asdict(f)), flush=True)
                data["failover"].append(asdict(f))
    if soak_minutes > 0:
        data["soak"] = long_session(1, soak_minutes)
        print(json.dumps({k: v for k, v in data["soak"].items() if k != "per_minute"}), flush=True)
    data["machine_after"] = machine()
    write_report(out, data)
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    ap.add_argument("--out", type=Path, default=Path("docs/perf"))
    ap.add_argument("--levels", default=",".join(map(str, LEVELS)))
    ap.add_argument("--seconds", type=float, default=30.0, help="Real-time seconds per level.")
    ap.add_argument("--soak-minutes", type=float, default=60.0, help="Simulated minutes of the long session (0: skip).")
    ap.add_argument("--procs", default="1", help="Setups: engine worker processes, comma-separated (1: in-process).")
    ap.add_argument("--ray", action="store_true", help="Also a local Ray cluster of --ray-nodes 1-CPU nodes.")
    ap.add_argument("--ray-nodes", type=int, default=2)
    args = ap.parse_args()
    run_perf(args.cases, args.out, tuple(int(x) for x in args.levels.split(",")), args.seconds, args.soak_minutes,
             args.procs, args.ray, args.ray_nodes)


if __name__ == "__main__":
    main()
