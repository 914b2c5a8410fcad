"""The duplex conversation bench runner (``npc-voice bench duplex``).

Each case plays ``user.wav`` through the real client into a real sidecar process, 200 ms at a
time, through a file-backed full-duplex device; the NPC's replies go through the same jitter buffer
the game uses. The results folder holds what the player heard (``npc.wav``), what the sidecar was
sent (``mic.wav``), every event with its time on the case timeline (``events.jsonl``) and each step's
compute time and round trip by chunk (``steps.json``: where in a case a slow step or a stall fell).
A case's ``game`` timeline (the player out of earshot, not facing the NPC) goes out with each chunk as
the ``mic`` message's ``attention``, as the game component sends it.

Two clocks:
- ``realtime``: the microphone is paced by the wall clock and replies are timed as they arrive:
  the honest end-to-end figure.
- simulated (default): chunks go as fast as the sidecar answers; each reply is charged the round
  trip it really took (compute plus transport) on a simulated clock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from npc_voice.audio.devices import FileDuplexDevice, read_wav
from npc_voice.audio.format import CHUNK_SECONDS
from npc_voice.audio.playback import JitterBuffer
from npc_voice.transport.client import ErrorReply, Reply, SidecarClient
from npc_voice.transport.process import SidecarProcess

REPLY_TIMEOUT_S = 10.0


@dataclass
class CaseRun:
    """What one case produced, beyond the files."""

    case_id: str
    seqs: list[int] = field(default_factory=list)  # the chunk each reply answered, in arrival order
    compute_ms: list[float] = field(default_factory=list)
    rtt_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    underruns: int = 0
    audible_underruns: int = 0  # of those, the ones that cut into the NPC's voice


def attention_at(case: dict[str, Any], t: float) -> dict[str, bool] | None:
    """What the case's ``game`` timeline says at time ``t`` (its last entry at or before ``t``): the ``mic``
    message's ``attention`` (the player in earshot, facing the NPC), or None if it says nothing."""
    said = [g.get("attention") for g in case.get("game", []) if g.get("t", 0.0) <= t + 1e-9]
    return said[-1] if said else None


def load_cases(folder: Path) -> list[dict[str, Any]]:
    """Every ``<id>/case.json`` under ``folder``, sorted by id."""
    cases = []
    for case_json in sorted(folder.glob("*/case.json")):
        case = json.loads(case_json.read_text())
        case["_dir"] = case_json.parent
        cases.append(case)
    if not cases:
        raise FileNotFoundError(f"no cases (*/case.json) under {folder}")
    return cases


def run_case(
    case: dict[str, Any],
    address: str,
    out_dir: Path,
    realtime: bool,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    user: np.ndarray | None = None,
    policy: str = "rules",
) -> CaseRun:
    """Play one case against the sidecar at ``address``; writes ``out_dir/<id>/``.

    ``on_event`` sees each event as it is stamped on the timeline (the ``talk`` command prints them);
    ``user`` replaces the case's ``user.wav``.
    """
    run = CaseRun(case_id=case["id"])
    if user is None:
        user = read_wav(case["_dir"] / "user.wav")
    echo = case.get("echo") or {}
    buffer = JitterBuffer()
    device = FileDuplexDevice(
        user, buffer, echo_delay_ms=float(echo.get("delay_ms", 0.0)), echo_gain=float(echo.get("gain", 0.0))
    )
    events: list[dict[str, Any]] = []

    def record(e: dict[str, Any]) -> None:
        events.append(e)
        if on_event is not None:
            on_event(e)

    play_start: dict[int, float] = {}
    pending_events: dict[int, list[dict[str, Any]]] = {}

    def on_start(seq: int, t: float) -> None:
        play_start[seq] = t
        for e in pending_events.pop(seq, []):
            e["t"] = round(t + e.pop("offset"), 4)
            record(e)

    buffer.on_start = on_start
    arrivals: list[tuple[float, Reply]] = []  # replies not yet handed to the device

    def deliver_until(t: float) -> None:
        """Run the device up to time ``t``, handing each reply to the buffer when it arrives."""
        while device.pos < len(device.out) and device.now < t - 1e-9:
            tb = device.now
            while arrivals and arrivals[0][0] <= tb + 1e-9:
                at, reply = arrivals.pop(0)
                stamp(reply, at)
            device.play_block()

    def stamp(reply: Reply, at: float) -> None:
        audio_events = []
        for e in reply.events:
            wire = e.to_wire()
            if e.type == "interrupted" or (e.type == "held" and getattr(e, "held", False)):
                buffer.flush()
            if e.offset is None:
                wire["t"] = round(at, 4)
                record(wire)
            else:
                audio_events.append(wire)
        if audio_events:
            pending_events[reply.seq] = audio_events
        buffer.push(reply.pcm, at, tag=reply.seq)

    client = SidecarClient(address)
    session = client.open_session(persona=case.get("persona", "blacksmith"), npc_id=case["id"],
                                  clock="realtime" if realtime else "simulated", floor=True,  # as the game hub
                                  policy=policy)
    try:
        if not session.wait_opened(60.0):
            raise RuntimeError(
                f"{case['id']}: session did not open: {session.error or 'no answer from sidecar'}"
            )
        t0 = time.monotonic()
        sent_at: dict[int, float] = {}
        outstanding = 0
        last_at = 0.0

        def collect(block_s: float) -> None:
            nonlocal outstanding, last_at
            deadline = time.monotonic() + block_s
            while True:
                for r in session.replies():
                    if isinstance(r, ErrorReply):
                        run.errors.append(f"{r.code}: {r.message}")
                        outstanding -= 1 if r.seq is not None else 0
                        continue
                    outstanding -= 1
                    run.seqs.append(r.seq)
                    run.compute_ms.append(r.compute_ms)
                    rtt = r.arrival - sent_at[r.seq]
                    run.rtt_ms.append(rtt * 1000)
                    if realtime:
                        at = r.arrival - t0
                    else:
                        # the sidecar runs a session's steps one after another: a slow step delays the next
                        at = max((r.seq + 1) * CHUNK_SECONDS, last_at) + rtt
                        last_at = at
                    arrivals.append((at, r))
                    arrivals.sort(key=lambda x: x[0])
                if time.monotonic() >= deadline or (not realtime and outstanding == 0):
                    return
                time.sleep(0.001)

        for k in range(device.n_chunks):
            t_ready = (k + 1) * CHUNK_SECONDS
            if realtime:
                while time.monotonic() - t0 < t_ready:
                    collect(min(0.005, max(0.0, t_ready - (time.monotonic() - t0))))
            deliver_until(t_ready)
            mic, played = device.capture(k)
            sent_at[k] = time.monotonic()
            session.send_mic(mic, played, t_capture=t_ready, attention=attention_at(case, k * CHUNK_SECONDS))
            outstanding += 1
            if not realtime:
                collect(REPLY_TIMEOUT_S)
        collect(REPLY_TIMEOUT_S if outstanding else 0.0)
        deliver_until(float("inf"))
    finally:
        session.close()
        client.close()
    run.underruns, run.audible_underruns = buffer.stats.underruns, buffer.stats.audible_underruns
    folder = out_dir / case["id"]
    device.save(folder)
    events.sort(key=lambda e: e["t"])
    with open(folder / "events.jsonl", "w") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")
    steps = sorted(zip(run.seqs, run.compute_ms, run.rtt_ms, strict=True))
    (folder / "steps.json").write_text(json.dumps({
        "chunk_s": CHUNK_SECONDS,
        "underruns": run.underruns,
        "audible_underruns": run.audible_underruns,
        "steps": [{"seq": seq, "compute_ms": round(c, 2), "roundtrip_ms": round(rt, 2)} for seq, c, rt in steps],
    }))
    return run


def run_bench(
    cases_dir: Path,
    out_dir: Path,
    realtime: bool,
    parallel: int,
    sidecar: str | None,
    persona_dir: str | None = None,
    progress: bool = True,
    policy: str = "rules",
    recogniser: str | None = None,
    procs: int | None = None,
) -> list[CaseRun]:
    """Run every case with the floor's ``policy`` (and the sidecar's accurate ``recogniser``, if this starts it);
    returns per-case run records (files are in ``out_dir``). ``procs``: engine worker processes of the sidecar
    it starts (``None``: the sidecar's default, one per core)."""
    from tqdm import tqdm

    cases = load_cases(cases_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = None
    if sidecar is None:
        proc = SidecarProcess(persona_dir, recogniser=recogniser, procs=procs)
        proc.wait_ready()
        address = proc.address
    else:
        address = sidecar
    try:
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            futures = [pool.submit(run_case, c, address, out_dir, realtime, policy=policy) for c in cases]
            runs = [f.result() for f in tqdm(futures, desc="cases", unit="case", disable=not progress)]
    finally:
        if proc is not None:
            proc.stop()
    return runs


def step_figures(runs: list[CaseRun]) -> dict[str, float]:
    """Compute and round-trip percentiles over every step of every case."""
    comp = np.array([x for r in runs for x in r.compute_ms] or [0.0])
    rtt = np.array([x for r in runs for x in r.rtt_ms] or [0.0])
    return {
        "steps": int(sum(len(r.compute_ms) for r in runs)),
        "compute_p50_ms": round(float(np.percentile(comp, 50)), 2),
        "compute_p99_ms": round(float(np.percentile(comp, 99)), 2),
        "compute_max_ms": round(float(comp.max()), 2),
        "roundtrip_p50_ms": round(float(np.percentile(rtt, 50)), 2),
        "roundtrip_p99_ms": round(float(np.percentile(rtt, 99)), 2),
        "underruns": int(sum(r.underruns for r in runs)),
        "audible_underruns": int(sum(r.audible_underruns for r in runs)),
        "errors": int(sum(len(r.errors) for r in runs)),
    }
