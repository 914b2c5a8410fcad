"""The duplex bench runner end to end: a case made here, played through the real client and sidecar."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from npc_voice.audio.devices import read_wav, write_wav
from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.bench.duplex import run_case
from npc_voice.bench.score import score_folder, speech_runs
from npc_voice.speech.tts import Synthesizer, VoiceSettings

SHARED_SCORE = Path(__file__).resolve().parents[2] / "shared" / "eval" / "score.py"


def make_case(folder: Path, cid: str, text: str, task: str, topics: list[str], echo: dict | None = None) -> dict:
    """A case in the bench's own format: the player asks once, then listens."""
    audio = Synthesizer().synthesize(text, VoiceSettings(voice="en+f2", pitch=55, rate=150)).audio
    audio = (audio * 0.5).astype(np.int16)
    lead, tail = 16000, 16000 * 12
    full = np.concatenate([np.zeros(lead, np.int16), audio, np.zeros(tail, np.int16)])
    end = (lead + len(audio)) / 16000
    case = {"id": cid, "persona": "blacksmith", "sample_rate": 16000, "duration": len(full) / 16000,
            "user_segments": [{"start": 1.0, "end": end, "text": text, "role": "turn"}], "task": task,
            "expect": {"respond_after": end, "topics": topics}}
    if echo:
        case["echo"] = echo
    (folder / cid).mkdir(parents=True)
    write_wav(folder / cid / "user.wav", full)
    (folder / cid / "case.json").write_text(json.dumps(case))
    case["_dir"] = folder / cid
    return case


@pytest.fixture(scope="module")
def bench_run(sidecar: str, tmp_path_factory) -> tuple[Path, Path]:
    cases, results = tmp_path_factory.mktemp("cases"), tmp_path_factory.mktemp("results")
    for case in (make_case(cases, "ask-story", "Could you tell me the story of that beast on the mountain?",
                           "echo", ["dragon_story"], echo={"delay_ms": 120, "gain": 0.8}),
                 make_case(cases, "ask-road", "Which road leads up to the castle?", "smooth_turn",
                           ["directions"])):
        run_case(case, sidecar, results, realtime=False)
    return cases, results


def test_results_have_the_files_the_scorer_reads(bench_run: tuple[Path, Path]) -> None:
    cases, results = bench_run
    for cid in ("ask-story", "ask-road"):
        user = read_wav(cases / cid / "user.wav")
        npc, mic = read_wav(results / cid / "npc.wav"), read_wav(results / cid / "mic.wav")
        assert len(npc) == len(mic) == len(user)  # sample-aligned with the input
        events = [json.loads(x) for x in (results / cid / "events.jsonl").read_text().splitlines()]
        times = [e["t"] for e in events]
        assert times == sorted(times) and all("type" in e for e in events)
        # every chunk's step, in chunk order, so a slow one can be found on the case's timeline
        steps = json.loads((results / cid / "steps.json").read_text())
        seqs = [s["seq"] for s in steps["steps"]]
        assert seqs == list(range(len(seqs))) and len(seqs) * steps["chunk_s"] * SAMPLE_RATE >= len(user)
        assert all(0 < s["compute_ms"] <= s["roundtrip_ms"] for s in steps["steps"])


def test_the_npc_answers_on_topic_after_the_player(bench_run: tuple[Path, Path]) -> None:
    cases, results = bench_run
    summary, outcomes = score_folder(cases, results)
    by_id = {o["id"]: o for o in outcomes}
    assert by_id["ask-road"]["taken"] and by_id["ask-road"]["relevant"] and not by_id["ask-road"]["talked_over_user"]
    assert by_id["ask-story"]["taken"] and by_id["ask-story"]["relevant"]


def test_echo_of_its_own_voice_does_not_interrupt_the_npc(bench_run: tuple[Path, Path]) -> None:
    cases, results = bench_run
    _, outcomes = score_folder(cases, results)
    story = next(o for o in outcomes if o["id"] == "ask-story")
    assert not story["self_interrupted"]
    mic = read_wav(results / "ask-story" / "mic.wav")
    user = read_wav(cases / "ask-story" / "user.wav")
    assert np.abs(mic.astype(np.int32) - user).max() > 1000  # the echo really was in the microphone
    events = [json.loads(x) for x in (results / "ask-story" / "events.jsonl").read_text().splitlines()]
    assert not [e for e in events if e["type"] == "interrupted"]


def test_response_event_is_stamped_when_the_answer_is_heard(bench_run: tuple[Path, Path]) -> None:
    _, results = bench_run
    events = [json.loads(x) for x in (results / "ask-road" / "events.jsonl").read_text().splitlines()]
    t = next(e["t"] for e in events if e["type"] == "response")
    runs = speech_runs(read_wav(results / "ask-road" / "npc.wav"))
    assert any(abs(s - t) < 0.1 for s, _ in runs)


@pytest.mark.skipif(not SHARED_SCORE.exists(), reason="shared/eval/score.py not beside this checkout")
def test_our_scoring_agrees_with_the_shared_scorer(bench_run: tuple[Path, Path], tmp_path: Path) -> None:
    cases, results = bench_run
    ours, _ = score_folder(cases, results)
    subprocess.run([sys.executable, str(SHARED_SCORE), str(cases), str(results), "--json", str(tmp_path / "s.json")],
                   check=True, capture_output=True)
    theirs = json.loads((tmp_path / "s.json").read_text())["summary"]
    assert {k: ours[k] for k in theirs} == theirs  # every shared figure, the same
    assert set(ours) - set(theirs) == {  # and our additions (npc_voice/bench/score.py)
        "withdrawn_answer_rate", "npc_angry_case_rate", "npc_angry_cases", "player_angry_case_rate",
        "player_angry_cases", "say_again_rate", "off_topic_unknown_rate", "off_topic_unknown_at_gap_rate",
        "off_topic_latency_median_s", "off_topic_heard_clearly", "off_topic_clear_unknown_at_gap_rate",
        "bystander_cases", "bystander_answered", "bystander_takeover_rate", "bystander_interrupted",
        "game_noise_taking_rate", "game_noise_latency_median_s", "game_noise_relevance"}
