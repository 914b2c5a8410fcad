"""Performance under load (``npc-voice bench perf``): the 200 ms deadline with 1..16 sessions on one sidecar.

A real sidecar process is started; its start-up is timed to the ready line and to the first ``opened``.
Then, for each concurrency level, that many sessions stream real speech (the ``user.wav`` of the
eval cases, looped) through the real client in real time: one chunk per 200 ms per session, starts
staggered across the 200 ms. Per reply it records the server's ``compute_ms``, the round trip and
whether the reply came back before the session's next chunk was due (else a deadline miss). The
sidecar's CPU and resident memory are read from ``/proc``. A long session on a simulated clock
(``bench.soak``) shows whether memory and step time stay flat.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from npc_voice.audio.devices import read_wav
from npc_voice.audio.format import CHUNK_SAMPLES, CHUNK_SECONDS
from npc_voice.transport.client import ErrorReply, SidecarClient
from npc_voice.transport.process import SidecarProcess

DEFAULT_CASES = Path("/work/shared/eval/dev")
LEVELS = (1, 2, 4, 8, 16)
ECHO_GAIN = 0.3  # the NPC's reply leaks back into the microphone at this gain (and is sent as reference)


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
    """One concurrency level: what the sessions saw and what the sidecar used."""

    sessions: int
    seconds: float
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
    cpu_pct: float = 0.0  # of one core
    rss_mb: float = 0.0  # peak during the level
    loadavg_1: float = 0.0  # machine load when the level ended (other jobs included)


def run_level(
    address: str, pid: int, cases: Path, sessions: int, seconds: float, persona: str = "blacksmith"
) -> LevelResult:
    """Stream ``sessions`` sessions in real time for ``seconds`` against the sidecar ``pid`` at ``address``."""
    tracks = speech_loops(cases, sessions)
    client = SidecarClient(address)
    result = LevelResult(sessions=sessions, seconds=seconds)
    try:
        # floor events on, as the game hub opens its sessions: the duplex model runs in every step
        live = [client.open_session(persona=persona, npc_id=f"perf{i}", floor=True) for i in range(sessions)]
        for s in live:
            if not s.wait_opened(60):
                raise RuntimeError(f"session did not open: {s.error}")
        n_chunks = int(seconds / CHUNK_SECONDS)
        stagger = CHUNK_SECONDS / sessions
        played = [np.zeros(CHUNK_SAMPLES, np.int16) for _ in live]
        sent_at: list[dict[int, float]] = [{} for _ in live]
        next_k = [0] * sessions
        compute: list[float] = []
        rtt: list[float] = []
        answered = 0
        peak_rss = proc_rss_mb(pid)
        next_rss = 0.0
        cpu0 = proc_cpu_s(pid)
        t0 = time.monotonic() + 0.05
        end = t0 + n_chunks * CHUNK_SECONDS + sessions * stagger
        while True:
            now = time.monotonic()
            for i, s in enumerate(live):
                k = next_k[i]
                if k < n_chunks and now >= t0 + i * stagger + k * CHUNK_SECONDS:
                    track = tracks[i]
                    mic = track[k % len(track)].astype(np.int32) + (played[i].astype(np.int32) * 3) // 10
                    sent_at[i][s.send_mic(np.clip(mic, -32768, 32767).astype(np.int16), played=played[i])] = now
                    next_k[i] = k + 1
                for r in s.replies():
                    if isinstance(r, ErrorReply):
                        result.errors[r.code] = result.errors.get(r.code, 0) + 1
                        answered += r.seq is not None
                        continue
                    answered += 1
                    sent = sent_at[i].pop(r.seq)
                    compute.append(r.compute_ms)
                    rtt.append((r.arrival - sent) * 1000)
                    # late if it came back after the next chunk was due: the speaker would have run dry
                    result.deadline_misses += r.arrival > sent + CHUNK_SECONDS
                    played[i] = r.pcm
                    for e in r.events:
                        if e.type == "response":
                            result.responses += 1
                        elif e.type == "notice":
                            result.notices[e.code] = result.notices.get(e.code, 0) + 1
            if now >= next_rss:
                peak_rss, next_rss = max(peak_rss, proc_rss_mb(pid)), now + 0.5
            if answered >= n_chunks * sessions or now > end + 5.0:
                break
            time.sleep(0.001)
        wall = time.monotonic() - t0
        result.cpu_pct = round(100 * (proc_cpu_s(pid) - cpu0) / wall, 1)
        result.rss_mb = round(peak_rss, 1)
        result.missing = n_chunks * sessions - answered
        result.deadline_misses += result.missing
    finally:
        client.close()
    ms = np.array(compute or [0.0])
    rt = np.array(rtt or [0.0])
    result.steps = len(compute)
    result.compute_p50_ms, result.compute_p99_ms = (round(float(x), 1) for x in np.percentile(ms, [50, 99]))
    result.compute_max_ms = round(float(ms.max()), 1)
    result.rtt_p50_ms, result.rtt_p99_ms = (round(float(x), 1) for x in np.percentile(rt, [50, 99]))
    result.loadavg_1 = round(os.getloadavg()[0], 2)
    return result


@dataclass
class Startup:
    """Sidecar launch to its ready line (models loaded, socket bound), and to the first session opened."""

    ready_s: float
    first_opened_s: float
    rss_mb: float


def start_sidecar(persona: str = "blacksmith") -> tuple[SidecarProcess, Startup]:
    """Launch a sidecar process and time it to ready and to a first ``opened``."""
    t = time.monotonic()
    proc = SidecarProcess()
    proc.wait_ready()
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
    rss = proc_rss_mb(proc.proc.pid)
    return proc, Startup(ready_s=round(ready, 2), first_opened_s=round(opened, 2), rss_mb=round(rss, 1))


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


def write_report(out: Path, data: dict[str, object]) -> None:
    """``perf.json``, ``table.md`` and ``perf.png`` in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "perf.json").write_text(json.dumps(data, indent=1))
    levels = [LevelResult(**r) for r in data["levels"]]  # type: ignore[union-attr]
    lines = [
        "| sessions | steps | compute p50 ms | p99 ms | max ms | round trip p50 ms | p99 ms | deadline misses "
        "| CPU % (of 1 core) | RSS MB | notices | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in levels:
        misses = f"{r.deadline_misses} ({100 * r.deadline_misses / max(1, r.steps + r.missing):.1f} %)"
        notices = ", ".join(f"{k} {v}" for k, v in sorted(r.notices.items())) or "-"
        lines.append(
            f"| {r.sessions} | {r.steps} | {r.compute_p50_ms} | {r.compute_p99_ms} | {r.compute_max_ms} "
            f"| {r.rtt_p50_ms} | {r.rtt_p99_ms} | {misses} | {r.cpu_pct} | {r.rss_mb} | {notices} | {r.loadavg_1} |"
        )
    (out / "table.md").write_text("\n".join(lines) + "\n")

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    n = [r.sessions for r in levels]
    axes[0].plot(n, [r.compute_p50_ms for r in levels], "o-", label="compute p50")
    axes[0].plot(n, [r.compute_p99_ms for r in levels], "o-", label="compute p99")
    axes[0].plot(n, [r.rtt_p99_ms for r in levels], "s--", label="round trip p99")
    axes[0].axhline(200, color="red", lw=0.8, label="200 ms deadline")
    axes[0].set(xscale="log", yscale="log", xlabel="concurrent sessions", ylabel="ms", title="step time")
    axes[0].set_xticks(n, [str(x) for x in n])
    axes[0].legend(fontsize=8)
    axes[1].bar([str(x) for x in n], [100 * r.deadline_misses / max(1, r.steps + r.missing) for r in levels])
    axes[1].set(xlabel="concurrent sessions", ylabel="% of replies late", title="deadline misses")
    soak_rows = data.get("soak", {}).get("per_minute", [])  # type: ignore[union-attr]
    if soak_rows:
        ax = axes[2]
        ax.plot([m["minute"] for m in soak_rows], [m["rss_mb"] for m in soak_rows], "b-", label="RSS MB")
        ax.set(xlabel="simulated minute", ylabel="RSS MB", title="long session (simulated clock)")
        ax2 = ax.twinx()
        ax2.plot([m["minute"] for m in soak_rows], [m["p99_ms"] for m in soak_rows], "g-", label="step p99 ms")
        ax2.plot([m["minute"] for m in soak_rows], [m["p50_ms"] for m in soak_rows], "g:", label="step p50 ms")
        ax2.set_ylabel("step ms")
        ax.legend(loc="lower left", fontsize=8)
        ax2.legend(loc="lower right", fontsize=8)
    else:
        axes[2].axis("off")
    fig.suptitle(f"npc-voice sidecar on {data['machine']['cores']} cores")  # type: ignore[index]
    fig.tight_layout()
    fig.savefig(out / "perf.png", dpi=100)
    plt.close(fig)


def run_perf(
    cases: Path, out: Path, levels: tuple[int, ...] = LEVELS, seconds: float = 30.0, soak_minutes: float = 60.0
) -> dict[str, object]:
    """The whole bench: start-up, every level, the long session; writes the report into ``out``."""
    data: dict[str, object] = {"machine": machine()}
    proc, start = start_sidecar()
    data["startup"] = asdict(start)
    print(f"start-up: ready {start.ready_s} s, first opened {start.first_opened_s} s, RSS {start.rss_mb} MB",
          flush=True)
    rows = []
    try:
        for n in levels:
            r = run_level(proc.address, proc.proc.pid, cases, n, seconds)
            print(json.dumps(asdict(r)), flush=True)
            rows.append(asdict(r))
    finally:
        proc.stop()
    data["levels"] = rows
    if soak_minutes > 0:
        data["soak"] = long_session(1, soak_minutes)
        print(json.dumps({k: v for k, v in data["soak"].items() if k != "per_minute"}), flush=True)  # type: ignore[union-attr]
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
    args = ap.parse_args()
    run_perf(args.cases, args.out, tuple(int(x) for x in args.levels.split(",")), args.seconds, args.soak_minutes)


if __name__ == "__main__":
    main()
