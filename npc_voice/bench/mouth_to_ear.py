"""Mouth-to-ear latency on the live path: what a player feels, device buffers included.

For each question case (task ``smooth_turn``) a fresh ``npc-voice talk`` session runs on the virtual sound
card (``npc_voice.audio.pulse``): the question is played into the player's mouth, the NPC hears it through
its PortAudio input stream, answers through its output stream. The air's monitor records the player's
channel and the loudspeaker's on one sample clock, so the loudspeaker's side is cut into an ``npc.wav``
sample-aligned with the case's ``user.wav`` and scored by the bench's own scorer (``score.py``): the
turn latency it reports is then from the end of the player's voice at the microphone to the first
audible NPC answer at the loudspeaker. The same cases also go through the file-backed bench
(``bench duplex --realtime``, no sound card), so both figures come from one run, side by side.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from npc_voice.audio.devices import read_wav, write_wav
from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.audio.pulse import VirtualSoundCard
from npc_voice.bench.score import score_folder
from npc_voice.transport.process import SidecarProcess

SOUND = 300  # |sample| above this (-41 dBFS) on the air is sound; silence there is exact zeros
TAIL_S = 4.0  # recorded after the case's audio ends: room for the answer to start and be heard


def question_cases(cases_dir: Path) -> list[Path]:
    return sorted(p.parent for p in cases_dir.glob("*/case.json")
                  if json.loads(p.read_text()).get("task") == "smooth_turn")


def _first_sound(x: np.ndarray) -> int | None:
    idx = np.flatnonzero(np.abs(x) > SOUND)
    return int(idx[0]) if idx.size else None


def live_case(card: VirtualSoundCard, sidecar: str, case_dir: Path, out: Path, stream_args: list[str]) -> str | None:
    """Play one case live; write ``out/<id>/npc.wav`` aligned with ``user.wav``; None or what went wrong."""
    case = json.loads((case_dir / "case.json").read_text())
    user = read_wav(case_dir / "user.wav")
    air = card.listen()
    talk_out = Path(tempfile.mkdtemp(prefix="npc-voice-m2e-"))
    talk = subprocess.Popen(
        [sys.executable, "-m", "npc_voice.cli", "talk", "--sidecar", sidecar, "--device", "pulse",
         "--seconds", str(len(user) / SAMPLE_RATE + TAIL_S + 2), "--out", str(talk_out), *stream_args],
        env=card.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert talk.stdout is not None
    for line in talk.stdout:
        if line.startswith("listening"):
            break
    time.sleep(0.5)  # the streams are running: the player starts talking
    card.say(user).wait()
    time.sleep(TAIL_S)
    talk.send_signal(signal.SIGINT)
    try:
        talk.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        talk.kill()
    mouth, speaker = air.stop()
    start_air, start_user = _first_sound(mouth), _first_sound(user)
    if start_air is None or start_user is None:
        return "the question never reached the air"
    shift = start_air - start_user  # air sample of user.wav's sample 0
    npc = np.zeros(len(user) + int(TAIL_S * SAMPLE_RATE), np.int16)
    part = speaker[max(shift, 0) : max(shift, 0) + len(npc)]
    npc[: len(part)] = part
    folder = out / case["id"]
    folder.mkdir(parents=True, exist_ok=True)
    write_wav(folder / "npc.wav", npc)
    # The talk session's events, moved onto the case's timeline by its first answer's first sound.
    events = [json.loads(line) for line in (talk_out / "live" / "events.jsonl").read_text().splitlines()] \
        if (talk_out / "live" / "events.jsonl").exists() else []
    first = next((e for e in events if e["type"] == "response"), None)
    sound = _first_sound(npc[int(case["expect"]["respond_after"] * SAMPLE_RATE):])
    if first is not None and sound is not None:
        move = case["expect"]["respond_after"] + sound / SAMPLE_RATE - first["t"]
        for e in events:
            e["t"] = round(e["t"] + move, 4)
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    shutil.rmtree(talk_out, ignore_errors=True)
    return None


def run_mouth_to_ear(cases_dir: Path, out: Path, stream_args: list[str], file_bench: bool = True,
                     echo: tuple[float, float] | None = None) -> dict[str, Any]:
    """Live and file-bench figures for the question cases of ``cases_dir``; ``echo`` (gain dB, delay ms)
    feeds the loudspeaker back into the microphone (a laptop without headphones) for the live runs."""
    from npc_voice.bench.duplex import run_bench

    cases = question_cases(cases_dir)
    subset = out / "cases"
    subset.mkdir(parents=True, exist_ok=True)
    for c in cases:
        link = subset / c.name
        if not link.exists():
            link.symlink_to(c.resolve())
    report: dict[str, Any] = {"cases": len(cases), "stream": stream_args or ["default StreamSettings"],
                              "echo_db_ms": echo}
    proc = SidecarProcess()
    proc.wait_ready()
    try:
        with VirtualSoundCard() as card:
            if echo is not None:
                card.echo(gain_db=echo[0], delay_ms=echo[1])
            problems = {c.name: p for c in cases if (p := live_case(card, proc.address, c, out / "live", stream_args))}
        summary, results = score_folder(subset, out / "live")
        report["live"] = _figures(summary, results)
        report["live"].update(_self_interruptions(out / "live", cases))
        report["live_problems"] = problems
        if file_bench:
            run_bench(subset, out / "file", realtime=True, parallel=1, sidecar=proc.address, progress=False)
            summary, results = score_folder(subset, out / "file")
            report["file_bench"] = _figures(summary, results)
    finally:
        proc.stop()
    (out / "mouth_to_ear.json").write_text(json.dumps(report, indent=1))
    return report


def _self_interruptions(results: Path, cases: list[Path]) -> dict[str, Any]:
    """In a question case the player says one thing and stops: any ``interrupted`` is the NPC cutting its
    own answer (hearing itself, when there is echo); an answer line that ends ``completed`` was heard out."""
    cut = done = 0
    for c in cases:
        path = results / c.name / "events.jsonl"
        events = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        cut += any(e["type"] == "interrupted" for e in events)
        done += any(e["type"] == "speech_end" and e.get("completed") for e in events)
    return {"cases_with_self_interruption": cut, "cases_with_a_completed_answer": done}


def _figures(summary: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    lat = [r["latency"] for r in results if r.get("latency") is not None]
    return {
        "turn_latency_median_s": summary.get("turn_latency_median_s"),
        "turn_latency_p90_s": summary.get("turn_latency_p90_s"),
        "turn_taking_rate": summary.get("turn_taking_rate"),
        "turn_relevance": summary.get("turn_relevance"),
        "answered": len(lat),
        "per_case_s": {r["id"]: r.get("latency") for r in results} if results and "id" in results[0] else None,
    }
