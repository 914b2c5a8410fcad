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
    # The loopback's own delay on the air (the loudspeaker's channel against the player's, after the question):
    # what the echo really was, whatever the reference made of it.
    after = max(shift + int(np.flatnonzero(np.abs(user) > SOUND)[-1]), 0)  # the question's last sound on the air
    air = [lag for _, lag, q in reference_lags(mouth[after:], speaker[after:]) if q >= 0.8]
    (folder / "air.json").write_text(json.dumps({"echo_delay_ms": round(float(np.median(air)), 2) if air else None}))
    for name in ("mic", "npc"):  # what the sidecar was sent: the microphone and its echo reference
        if (talk_out / "live" / f"{name}.wav").exists():
            shutil.copy(talk_out / "live" / f"{name}.wav", folder / f"sent_{name}.wav")
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
    proc = SidecarProcess(procs=1)  # one live session: in the sidecar's own process, as a single-player game
    proc.wait_ready()
    try:
        with VirtualSoundCard() as card:
            problems = {}
            for c in cases:
                if echo is not None:  # a fresh loopback each time: its delay drifts up over a run (pulse.py)
                    card.echo(gain_db=echo[0], delay_ms=echo[1])
                if p := live_case(card, proc.address, c, out / "live", stream_args):
                    problems[c.name] = p
        summary, results = score_folder(subset, out / "live")
        report["live"] = _figures(summary, results)
        report["live"].update(_self_interruptions(out / "live", cases))
        if echo is not None:
            report["live"]["echo"] = echo_figures(out / "live", cases)
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


def reference_lags(mic: np.ndarray, ref: np.ndarray, window_s: float = 0.1,
                   max_lag_s: float = 0.3) -> list[tuple[float, float, float]]:
    """Where the echo sits behind its reference: per window of the microphone the sent reference plays in,
    (start s, lag ms, normalised correlation) at the cross-correlation's peak, the echo ``lag`` after it."""
    win, max_lag = int(window_s * SAMPLE_RATE), int(max_lag_s * SAMPLE_RATE)
    m_all, r_all = mic.astype(np.float64), ref.astype(np.float64)
    rows = []
    for s in range(max_lag, min(len(m_all), len(r_all)) - win, win):
        m, r = m_all[s : s + win], r_all[s - max_lag : s + win]
        if np.sqrt(np.mean(r[-win - SAMPLE_RATE // 10 :] ** 2)) < SOUND or not m.any():
            continue
        size = 1 << int(np.ceil(np.log2(len(r) + win)))
        corr = np.fft.irfft(np.fft.rfft(r, size) * np.conj(np.fft.rfft(m, size)), size)[: max_lag + 1]
        k = int(np.argmax(corr))
        norm = np.sqrt(np.dot(r[k : k + win], r[k : k + win]) * np.dot(m, m)) + 1e-9
        rows.append((s / SAMPLE_RATE, (max_lag - k) * 1000.0 / SAMPLE_RATE, float(corr[k] / norm)))
    return rows


def canceller_removal(mic: np.ndarray, ref: np.ndarray) -> list[float]:
    """The echo canceller run as the sidecar ran it on what it was sent: dB it removed per chunk the NPC's
    voice was in the reference (and the microphone)."""
    from npc_voice.audio.echo import EchoCanceller
    from npc_voice.audio.format import CHUNK_SAMPLES

    canceller, removed = EchoCanceller(), []
    for start in range(0, min(len(mic), len(ref)) - CHUNK_SAMPLES + 1, CHUNK_SAMPLES):
        r = ref[start : start + CHUNK_SAMPLES]
        canceller.process(mic[start : start + CHUNK_SAMPLES], r if r.any() else None)
        st = canceller.stats
        if np.sqrt(np.mean(r.astype(np.float64) ** 2)) > SOUND and st.mic_db > -60.0:
            removed.append(st.mic_db - st.out_db)
    return removed


def echo_figures(results: Path, cases: list[Path]) -> dict[str, Any]:
    """How steadily the echo followed its reference on the live loop, and what the canceller made of it. Over
    every case's sent microphone and reference (0.1 s windows where they correlate >= 0.8): how far the lag
    strayed from the case's own median, how often it moved between neighbouring windows, and the dB the
    canceller removed per chunk with the NPC's voice in it; and the loopback's own delay on the air."""
    spread: list[float] = []
    moves = pairs = 0
    removed: list[float] = []
    air = [json.loads((results / c.name / "air.json").read_text())["echo_delay_ms"] for c in cases
           if (results / c.name / "air.json").exists()]
    air = [a for a in air if a is not None]
    for c in cases:
        mic_path, ref_path = results / c.name / "sent_mic.wav", results / c.name / "sent_npc.wav"
        if not (mic_path.exists() and ref_path.exists()):
            continue
        mic, ref = read_wav(mic_path), read_wav(ref_path)
        spread_c, moves_c, pairs_c = lag_steadiness(reference_lags(mic, ref))
        spread += spread_c
        moves, pairs = moves + moves_c, pairs + pairs_c
        removed += canceller_removal(mic, ref)
    pct = (lambda x, q: round(float(np.percentile(x, q)), 2) if len(x) else None)  # noqa: E731
    return {
        "air_echo_delay_ms_min": min(air, default=None), "air_echo_delay_ms_max": max(air, default=None),
        "lag_off_case_median_ms_p50": pct(spread, 50), "lag_off_case_median_ms_p95": pct(spread, 95),
        "lag_moved_between_windows": f"{moves}/{pairs}",
        "canceller_removed_db_median": pct(removed, 50), "canceller_removed_db_p10": pct(removed, 10),
    }


def lag_steadiness(rows: list[tuple[float, float, float]]) -> tuple[list[float], int, int]:
    """From ``reference_lags``' well-correlated windows (>= 0.8): each one's distance (ms) from their median,
    and how many neighbouring pairs of them differ by a sample or more, of how many."""
    good = [(t, lag) for t, lag, q in rows if q >= 0.8]
    if not good:
        return [], 0, 0
    median = float(np.median([lag for _, lag in good]))
    moves = pairs = 0
    for (t0, a), (t1, b) in zip(good, good[1:], strict=False):
        if t1 - t0 < 0.15:  # neighbouring windows
            pairs += 1
            moves += abs(a - b) > 0.5 * 1000.0 / SAMPLE_RATE
    return [abs(lag - median) for _, lag in good], moves, pairs
