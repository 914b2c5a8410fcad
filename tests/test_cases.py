"""The held-out case generator: the shared bench's format, exact speech extents, expectations that fit the task,
and the same bytes for the same seed (a held-out score is only comparable across runs if the cases are)."""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from npc_voice.bench.asr_wer import normalise
from npc_voice.bench.cases import render_cases

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs the espeak-ng command")

PER_TASK = {"smooth_turn": 3, "pause_handling": 3, "user_backchannel": 3, "user_interruption": 2, "echo": 2,
            "silence": 3, "off_topic": 2, "not_addressed": 6, "game_noise": 2}
DEV = Path("/work/shared/eval/dev")
SR = 16000


def _frames_db(x: np.ndarray, hop: int = 320) -> np.ndarray:
    n = len(x) // hop
    return 20 * np.log10(np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1)) + 1e-12)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("cases")
    return out, render_cases(out, seed=3, per_task=PER_TASK)


@pytest.fixture(scope="module")
def cases(rendered) -> list[tuple[dict, np.ndarray]]:
    """(case.json, user.wav as float) per case, checking the WAV format on the way."""
    out, ids = rendered
    loaded = []
    for cid in ids:
        with wave.open(str(out / cid / "user.wav")) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SR, 1, 2)
            x = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768.0
        loaded.append((json.loads((out / cid / "case.json").read_text()), x))
    return loaded


def test_files_and_fields(rendered, cases) -> None:
    out, ids = rendered
    assert ids == [f"{task}-{i:03d}" for task, n in PER_TASK.items() for i in range(1, n + 1)]
    assert "seed 3" in (out / "README.md").read_text()
    for case, x in cases:
        keys = ["id", "persona", "sample_rate", "duration", "user_segments", "task", "expect"]
        extra = ["echo"] if case["task"] == "echo" else ["game"] if "game" in case else []
        assert list(case) == keys[:6] + extra + keys[6:]
        assert case["persona"] == "blacksmith" and case["sample_rate"] == SR
        assert len(x) == round(case["duration"] * SR)
        if case["task"] == "echo":
            assert 0 <= case["echo"]["delay_ms"] <= 250 and 0.2 <= case["echo"]["gain"] <= 1.0


def test_segments_inside_and_apart(cases) -> None:
    for case, _ in cases:
        end = 0.0
        for s in case["user_segments"]:
            assert end <= s["start"] < s["end"] <= case["duration"], case["id"]
            assert s["text"] and s["role"] in ("turn", "turn_part", "backchannel", "interruption", "bystander")
            end = s["end"]


def test_speech_inside_segments_only(cases) -> None:
    """Speech level inside every segment; outside them (20 ms either side kept out) only the background noise."""
    for case, x in cases:
        quiet = np.ones(len(x), bool)
        for s in case["user_segments"]:
            a, b = round(s["start"] * SR), round(s["end"] * SR)
            speech = 10 * np.log10(np.mean(x[a:b] ** 2))
            assert speech > (-50 if s["role"] == "bystander" else -34), (case["id"], s["text"], speech)
            quiet[max(0, a - 320) : b + 320] = False
        if case["task"] == "game_noise":
            continue  # the game's sounds go on between the words
        n = len(x) // 320
        loudest = _frames_db(x)[quiet[: n * 320].reshape(n, 320).all(axis=1)].max()
        if case["task"] == "silence":  # breaths and rustles stay well under speech, no words
            assert loudest < -28, (case["id"], loudest)
        else:
            assert loudest < -36, (case["id"], loudest)
            if case["task"] != "not_addressed":  # voices across the room stand less above the room's noise
                assert 10 * np.log10(np.mean(x[~quiet] ** 2)) - 10 * np.log10(np.mean(x[quiet] ** 2)) > 15


def test_expect_fits_the_task(cases) -> None:
    for case, _ in cases:
        ex, segs, task = case["expect"], case["user_segments"], case["task"]
        if task == "silence":
            assert segs == [] and ex == {"no_takeover": [[0.0, case["duration"]]]}
            continue
        turn = [s for s in segs if s["role"] in ("turn", "turn_part")]
        if task == "not_addressed":  # nothing there is the NPC's to answer, but a companion's player's turn
            windows = ex["not_addressed"]
            assert windows and ex["kind"] and ex["no_takeover"] == [[a, round(b + 2.0, 3)] for a, b in windows]
            others = [[s["start"], s["end"]] for s in segs if s["role"] == "bystander"]
            assert others or case["game"][0]["attention"]["facing"] is False
            assert ("respond_after" in ex) == (ex["kind"] == "companion")
            continue
        assert ex["respond_after"] == turn[-1]["end"] and 0.8 <= turn[0]["start"] <= 1.8
        assert ex["topics"]
        if task == "pause_handling":
            first, second = turn
            assert ex["no_takeover"] == [[first["end"], second["start"]]]
            assert 0.5 <= second["start"] - first["end"] <= 1.3
        if task == "user_backchannel":
            bc = [s for s in segs if s["role"] == "backchannel"]
            assert ex["backchannels"] == [[s["start"], s["end"]] for s in bc] and 1 <= len(bc) <= 2
            assert all(3.0 <= s["start"] - ex["respond_after"] <= 7.0 for s in bc)
        if task == "user_interruption":
            (cut,) = [s for s in segs if s["role"] == "interruption"]
            assert ex["interrupt"] == [cut["start"], cut["end"]] and 3.0 <= cut["start"] - ex["respond_after"] <= 7.0
            assert ex["topics_after_interrupt"] and ex["topics_after_interrupt"] != ex["topics"]
            assert case["duration"] >= cut["end"] + 5.0  # time to answer the interruption
        if task in ("user_backchannel", "user_interruption", "echo"):  # the NPC is telling a long story
            assert ex["topics"] in (["dragon_story"], ["forge_story"])
        if task in ("user_backchannel", "echo"):
            assert case["duration"] - ex["respond_after"] >= 12.0
        if task == "off_topic":
            assert ex["topics"] == ["unknown"]
        if task == "game_noise":
            assert ex["noise"] in ("clangs", "footsteps", "crowd", "fire", "music")


def test_same_seed_same_bytes(rendered, tmp_path) -> None:
    out, ids = rendered
    again = render_cases(tmp_path / "again", seed=3, per_task=PER_TASK)
    assert again == ids
    for cid in ids:
        for name in ("user.wav", "case.json"):
            assert (tmp_path / "again" / cid / name).read_bytes() == (out / cid / name).read_bytes()
    render_cases(tmp_path / "other", seed=4, per_task={"smooth_turn": 1, **dict.fromkeys(list(PER_TASK)[1:], 0)})
    assert (tmp_path / "other" / ids[0] / "user.wav").read_bytes() != (out / ids[0] / "user.wav").read_bytes()


@pytest.mark.skipif(not DEV.exists(), reason="the shared dev cases are not beside this checkout")
def test_no_dev_wording(cases) -> None:
    """Held out means held out: no turn or interruption says what a dev case says."""
    dev = {" ".join(normalise(s["text"])) for p in DEV.glob("*/case.json")
           for s in json.loads(p.read_text())["user_segments"] if s["role"] != "backchannel"}
    for case, _ in cases:
        for s in case["user_segments"]:
            assert s["role"] == "backchannel" or " ".join(normalise(s["text"])) not in dev, s["text"]
