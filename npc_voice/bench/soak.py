"""Soak: many sessions talking for a long time on a simulated clock; errors, memory and step time over time.

``python -m npc_voice.bench.soak --sessions 8 --minutes 30`` is the full run (72,000 steps); the test
suite runs 2 sessions x 1 minute. Each session hears a loop of synthesised player questions with the
NPC's own previous reply mixed in as echo (and sent as the echo reference), so recognition, answers,
speech and echo cancelling all really work. Chunks go in lockstep: every session's chunk, then every
reply, so a simulated minute takes as long as the compute needs.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE
from npc_voice.speech.tts import Synthesizer, VoiceSettings
from npc_voice.transport.client import ClientSession, ErrorReply, Reply, SidecarClient

QUESTIONS = [
    "My shield has a crack in it. Can you mend it?",
    "How much for a new sword?",
    "Uh-huh.",
    "What is the news in town today?",
    "Thank you, goodbye.",
]
PLAYER = VoiceSettings(voice="en-us+f3", pitch=60, rate=160)
STEPS_PER_MINUTE = int(60 * SAMPLE_RATE / CHUNK_SAMPLES)


def player_loop(seconds_between: float = 4.0) -> np.ndarray:
    """The player's side: the questions, each followed by a pause long enough for an answer."""
    synth = Synthesizer()
    parts = []
    for text in QUESTIONS:
        parts.append((synth.synthesize(text, PLAYER).audio.astype(np.float32) * 0.5).astype(np.int16))
        parts.append(np.zeros(int(seconds_between * SAMPLE_RATE), np.int16))
    audio = np.concatenate(parts)
    return np.pad(audio, (0, -len(audio) % CHUNK_SAMPLES))


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class SoakReport:
    """Per simulated minute: RSS and step compute time; totals of what went wrong."""

    sessions: int
    steps: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)
    missing: int = 0
    responses: int = 0
    minutes: list[dict] = field(default_factory=list)  # minute, rss_mb, p50_ms, p99_ms, wall_s

    def rss_growth_mb_per_min(self) -> float:
        """Slope of RSS over the second half of the run (the first half includes warm-up)."""
        half = self.minutes[len(self.minutes) // 2 :]
        if len(half) < 2:
            return 0.0
        x = np.array([m["minute"] for m in half], float)
        y = np.array([m["rss_mb"] for m in half], float)
        return float(np.polyfit(x, y, 1)[0])


def soak(address: str, sessions: int, minutes: float, timeout_s: float = 60.0) -> SoakReport:
    """Run ``sessions`` conversations for ``minutes`` simulated minutes against the sidecar at ``address``."""
    loop = player_loop().reshape(-1, CHUNK_SAMPLES)
    client = SidecarClient(address)
    report = SoakReport(sessions=sessions)
    try:
        live = _open_sessions(client, sessions)
        played = [np.zeros(CHUNK_SAMPLES, np.int16) for _ in live]
        compute: list[float] = []
        t_minute = time.monotonic()
        total = int(minutes * STEPS_PER_MINUTE)
        for step in range(total):
            _send_mics(live, loop, played, step)
            for i, s in enumerate(live):
                played[i] = _tally(_wait_reply(s, timeout_s), report, compute)
            report.steps += sessions
            if (step + 1) % STEPS_PER_MINUTE == 0 or step + 1 == total:
                report.minutes.append(_minute_row(step, compute, t_minute))
                compute, t_minute = [], time.monotonic()
        report.missing = sum(s.stats.missing_replies + s.stats.duplicate_replies for s in live)
    finally:
        client.close()
    return report


def _open_sessions(client: SidecarClient, sessions: int) -> list[ClientSession]:
    """Open the blacksmith ``sessions`` times on the simulated clock and wait until the sidecar confirmed each."""
    live = [client.open_session(persona="blacksmith", npc_id=f"npc{i}", clock="simulated", floor=True)
            for i in range(sessions)]
    for s in live:
        if not s.wait_opened(120):
            raise RuntimeError(f"session did not open: {s.error}")
    return live


def _send_mics(live: list[ClientSession], loop: np.ndarray, played: list[np.ndarray], step: int) -> None:
    """Every session's microphone chunk of ``step``: its player's loop plus 30 % of the NPC's last reply as echo."""
    for i, s in enumerate(live):
        player = loop[(step + i * 7) % len(loop)]  # sessions out of phase with each other
        mic = np.clip(player.astype(np.int32) + (played[i].astype(np.int32) * 3) // 10, -32768, 32767)
        s.send_mic(mic.astype(np.int16), played=played[i])


def _wait_reply(s: ClientSession, timeout_s: float) -> Reply | ErrorReply | None:
    """The last of the first replies that arrive for the session, or None after ``timeout_s``."""
    got = None
    deadline = time.monotonic() + timeout_s
    while got is None and time.monotonic() < deadline:
        for r in s.replies():
            got = r
        if got is None:
            time.sleep(0.0005)
    return got


def _tally(got: Reply | ErrorReply | None, report: SoakReport, compute: list[float]) -> np.ndarray:
    """Count one step's reply (its step time, responses, or what went wrong); returns what the NPC plays next."""
    if isinstance(got, Reply):
        compute.append(got.compute_ms)
        report.responses += sum(e.type == "response" for e in got.events)
        return got.pcm
    report.errors[got.code if isinstance(got, ErrorReply) else "timeout"] += 1
    return np.zeros(CHUNK_SAMPLES, np.int16)


def _minute_row(step: int, compute: list[float], t_minute: float) -> dict:
    """RSS, step time percentiles and wall time of the simulated minute that ends with ``step``."""
    ms = np.array(compute or [0.0])
    return {
        "minute": round((step + 1) / STEPS_PER_MINUTE, 2),
        "rss_mb": round(rss_mb(), 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "wall_s": round(time.monotonic() - t_minute, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=30.0)
    args = ap.parse_args()
    import torch

    from npc_voice.engine.resources import EngineResources
    from npc_voice.transport.server import Sidecar

    torch.set_num_threads(1)
    res = EngineResources()
    t = time.monotonic()
    with Sidecar(res, f"ipc://{tempfile.mkdtemp(prefix='npc-soak-')}/s.sock").running() as address:
        report = soak(address, args.sessions, args.minutes)
    print("minute  rss_mb  p50_ms  p99_ms  wall_s")
    for m in report.minutes:
        print(f"{m['minute']:6}  {m['rss_mb']:6}  {m['p50_ms']:6}  {m['p99_ms']:6}  {m['wall_s']:6}")
    print(f"steps {report.steps} in {time.monotonic() - t:.0f} s; errors {dict(report.errors)}; "
          f"missing/duplicate replies {report.missing}; responses {report.responses}; "
          f"RSS slope over the second half {report.rss_growth_mb_per_min():+.2f} MB/min")
    res.close()


if __name__ == "__main__":
    main()
