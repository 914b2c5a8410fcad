"""The project's own scoring of a duplex bench run, with the definitions of the shared ``score.py``.

NPC speech is found in ``npc.wav`` by energy (20 ms frames above -45 dBFS, pauses under 0.5 s
merged); a run of 1 s or more takes the floor. Figures are rates over the cases of each task.
Figures that are the project's own, not the shared scorer's:

- ``withdrawn_answer_rate``: the turns in which the NPC started an answer and yielded it because the player went
  on (a start under 1 s long, which the takeover rules do not see, but a player hears);
- ``npc_angry_case_rate`` and ``player_angry_case_rate``: the cases in which the NPC became angry (an ``emotion``
  event of the NPC, "angry" at intensity >= 0.3) and in which the player's voice was read as angry (intensity
  >= 0.6), over the cases whose player does not act an emotion (every task but ``emotion``: polite or plain
  requests, where neither should happen);
- ``say_again_rate``: turns with a topic (smooth, paused, under game noise) answered with "say that again"
  (topic ``fallback``): the NPC should only say it when it did not hear the player clearly;
- for the held-out tasks of ``npc_voice/bench/cases.py``: ``off_topic_unknown_rate`` (a clearly heard turn that
  fits no topic got the persona's ``unknown`` line) and ``off_topic_unknown_at_gap_rate`` (... within
  ``NORMAL_GAP`` s: at the normal gap, not after the "unsure" wait), and the latter over the turns the NPC heard
  clearly (``off_topic_heard_clearly``: its final transcript within ``CLEAR_WER`` of what was said);
  ``bystander_answered`` (cases of speech not
  addressed to the NPC that it answered: a ``response`` in the window or up to ``RESPONSE_WINDOW`` s after it)
  of ``bystander_cases``, ``bystander_takeover_rate`` (it took the floor there) and ``bystander_interrupted``
  (it cut its own line for such speech); ``game_noise_*``: turn-taking, latency and relevance under game sounds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from npc_voice.audio.devices import read_wav

FRAME = 0.02
MERGE_GAP = 0.5
TAKEOVER_MIN = 1.0
RESPONSE_WINDOW = 5.0
NPC_ANGRY_INTENSITY = 0.3  # an NPC "emotion" event this strong shows on its face (the animation's threshold)
PLAYER_ANGRY_INTENSITY = 0.6  # a player reading this strong is what the NPC and the game take as anger
NORMAL_GAP = 0.6  # s: an answer later than the turn-latency p90 goal is not at the normal gap
CLEAR_WER = 0.25  # an off-topic turn the NPC read with at most this word error rate was heard clearly
FOUR_CLASS = {"neutral": "neutral", "calm": "neutral", "happy": "happy", "sad": "sad", "angry": "angry"}

Runs = list[tuple[float, float]]


def speech_runs(audio: np.ndarray, sr: int = 16000, thresh_dbfs: float = -45.0) -> Runs:
    hop = int(sr * FRAME)
    n = len(audio) // hop
    if n == 0:
        return []
    frames = audio[: n * hop].astype(np.float32).reshape(n, hop)
    active = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1) + 1e-9) / 32768.0) > thresh_dbfs
    runs: list[list[float]] = []
    start = None
    for i, a in enumerate(active):
        if a and start is None:
            start = i * FRAME
        elif not a and start is not None:
            runs.append([start, i * FRAME])
            start = None
    if start is not None:
        runs.append([start, n * FRAME])
    merged: list[list[float]] = []
    for r in runs:
        if merged and r[0] - merged[-1][1] <= MERGE_GAP:
            merged[-1][1] = r[1]
        else:
            merged.append(r)
    return [(s, e) for s, e in merged]


def _first_run(runs: Runs, t0: float, t1: float) -> tuple[float, float] | None:
    return next(((s, e) for s, e in runs if t0 <= s <= t1 and e - s >= TAKEOVER_MIN), None)


def _run_at(runs: Runs, t: float) -> tuple[float, float] | None:
    return next(((s, e) for s, e in runs if s - 0.05 <= t <= e), None)


def _coverage(runs: Runs, t0: float, t1: float) -> float:
    if t1 <= t0:
        return 0.0
    return sum(max(0.0, min(e, t1) - max(s, t0)) for s, e in runs) / (t1 - t0)


def _topic(events: list[dict], t0: float, t1: float) -> str | None:
    return next(
        (e.get("topic") for e in events if e.get("type") == "response" and t0 <= e.get("t", -1) <= t1), None
    )


def _interrupted(events: list[dict], t0: float, t1: float) -> bool:
    return any(e.get("type") == "interrupted" and t0 <= e.get("t", -1) <= t1 for e in events)


def _angry(events: list[dict], who: str, intensity: float) -> bool:
    return any(e.get("type") == "emotion" and e.get("who") == who and e.get("emotion") == "angry"
               and float(e.get("intensity", 0.0)) >= intensity for e in events)


def _answer(runs: Runs, events: list[dict], after: float, topics: list[str] | None) -> tuple[bool, Any, bool]:
    r = _first_run(runs, after - 0.3, after + RESPONSE_WINDOW)
    if r is None:
        return False, None, False
    topic = _topic(events, after - 0.5, after + RESPONSE_WINDOW)
    return True, max(0.0, r[0] - after), topics is None or topic in topics


def score_case(case: dict[str, Any], runs: Runs, events: list[dict]) -> dict[str, Any]:
    """Per-case outcomes, as the shared scorer defines them."""
    ex, task = case["expect"], case["task"]
    res: dict[str, Any] = {"id": case["id"], "task": task}
    res["npc_angry"] = _angry(events, "npc", NPC_ANGRY_INTENSITY)
    res["player_read_angry"] = _angry(events, "player", PLAYER_ANGRY_INTENSITY)
    if task in ("smooth_turn", "pause_handling", "user_backchannel", "user_interruption", "echo", "off_topic",
                "game_noise") or (task == "not_addressed" and "respond_after" in ex):
        res["taken"], res["latency"], res["relevant"] = _answer(
            runs, events, ex["respond_after"], ex.get("topics")
        )
        after = ex["respond_after"]
        res["say_again"] = _topic(events, after - 0.5, after + RESPONSE_WINDOW) == "fallback"
    if task == "off_topic":
        res["unknown_at_gap"] = bool(res["relevant"] and res["taken"] and res["latency"] <= NORMAL_GAP)
        heard = [e.get("text", "") for e in events if e.get("type") == "transcript" and e.get("final")
                 and ex["respond_after"] - 0.5 <= e.get("t", -1) <= ex["respond_after"] + RESPONSE_WINDOW]
        said = case["user_segments"][0]["text"]
        res["heard_clearly"] = bool(heard) and _word_error_rate(said, heard[0]) <= CLEAR_WER
    if task == "not_addressed":
        windows = ex["not_addressed"]
        res["kind"] = ex.get("kind")
        res["answered"] = any(e.get("type") == "response" and a <= e.get("t", -1) <= b + RESPONSE_WINDOW
                              for e in events for a, b in windows)
        res["bystander_takeover"] = any(_first_run(runs, a, b) for a, b in ex["no_takeover"])
        res["bystander_interrupted"] = any(_interrupted(events, a, b + 1.0) for a, b in windows)
    if task in ("pause_handling", "silence"):
        res["pause_takeover"] = any(_first_run(runs, a, b) for a, b in ex["no_takeover"])
    if task in ("smooth_turn", "pause_handling"):
        first = case["user_segments"][0]["start"]
        res["talked_over_user"] = _first_run(runs, first + 0.3, ex["respond_after"] - 0.3) is not None
        res["withdrawn"] = _interrupted(events, 0.0, ex["respond_after"] + RESPONSE_WINDOW)
    elif task == "user_backchannel":
        res["continued"] = all(
            _run_at(runs, s) is not None
            and _coverage(runs, e + 0.2, e + 1.7) >= 0.7
            and not _interrupted(events, s, e + 1.7)
            for s, e in ex["backchannels"]
        )
    elif task == "user_interruption":
        s, e = ex["interrupt"]
        cur = _run_at(runs, s)
        res["npc_was_speaking"] = cur is not None
        if cur is not None:
            t = s
            while t < cur[1] and _coverage(runs, t, t + 0.3) > 0.5:
                t += 0.05
            res["stop_latency"] = max(0.0, t - s)
            res["stopped"] = res["stop_latency"] <= (e - s) + 0.5
        else:
            res["stop_latency"], res["stopped"] = None, False
        r = _first_run(runs, e - 0.3, e + RESPONSE_WINDOW)
        res["reply_taken"] = r is not None
        res["reply_latency"] = None if r is None else max(0.0, r[0] - e)
        res["reply_relevant"] = (
            r is not None and _topic(events, s, e + RESPONSE_WINDOW) in ex["topics_after_interrupt"]
        )
    elif task == "echo":
        r = _first_run(runs, ex["respond_after"] - 0.3, ex["respond_after"] + RESPONSE_WINDOW)
        res["self_interrupted"] = (
            r is None
            or _interrupted(events, r[0], case["duration"])
            or _coverage(runs, r[0], r[0] + 8.0) < 0.8
        )
    elif task == "emotion":
        seg = case["user_segments"][0]
        said = [
            e
            for e in events
            if e.get("type") == "emotion"
            and e.get("who") == "player"
            and seg["start"] <= e.get("t", -1) <= seg["end"] + 1.0
        ]
        last = said[-1] if said else {}
        res["expected"], res["heard"] = ex["emotion"], last.get("emotion")
        res["four_class_hit"] = (
            FOUR_CLASS.get(res["heard"]) == FOUR_CLASS[ex["emotion"]] if ex["emotion"] in FOUR_CLASS else None
        )
        a = last.get("arousal")
        res["arousal_hit"] = (
            a is not None and (a > 0) == (ex["arousal"] == "high")
            if ex.get("arousal") in ("high", "low")
            else None
        )
    return res


def _words(text: str) -> list[str]:
    return [w.strip("'") for w in re.sub(r"[^a-z' ]+", " ", text.lower().replace("-", " ")).split() if w.strip("'")]


def _word_error_rate(ref: str, hyp: str) -> float:
    r, h = _words(ref), _words(hyp)
    row = list(range(len(h) + 1))
    for i, a in enumerate(r, 1):
        prev, row[0] = row[0], i
        for j, b in enumerate(h, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (a != b))
    return row[-1] / max(len(r), 1)


def _rate(xs: list[Any]) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(sum(bool(x) for x in xs) / len(xs), 3) if xs else None


def _pct(xs: list[Any], q: float = 50) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(float(np.percentile(xs, q)), 3) if xs else None


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    def by(*tasks: str) -> list[dict[str, Any]]:
        return [r for r in results if r["task"] in tasks]

    turn, intr = by("smooth_turn", "pause_handling"), by("user_interruption")
    plain = [r for r in results if r["task"] != "emotion"]
    return {
        "cases": len(results),
        "pause_takeover_rate": _rate([r["pause_takeover"] for r in by("pause_handling")]),
        "silence_takeover_rate": _rate([r["pause_takeover"] for r in by("silence")]),
        "talked_over_user_rate": _rate([r["talked_over_user"] for r in turn]),
        "turn_taking_rate": _rate([r["taken"] for r in turn]),
        "turn_latency_median_s": _pct([r["latency"] for r in turn]),
        "turn_latency_p90_s": _pct([r["latency"] for r in turn], 90),
        "turn_relevance": _rate([r["relevant"] for r in turn if r["taken"]]),
        "backchannel_continue_rate": _rate([r["continued"] for r in by("user_backchannel")]),
        "interrupt_stop_rate": _rate([r["stopped"] for r in intr]),
        "interrupt_stop_latency_median_s": _pct([r["stop_latency"] for r in intr]),
        "interrupt_reply_rate": _rate([r["reply_taken"] for r in intr]),
        "interrupt_reply_latency_median_s": _pct([r["reply_latency"] for r in intr]),
        "interrupt_relevance": _rate([r["reply_relevant"] for r in intr]),
        "echo_self_interrupt_rate": _rate([r["self_interrupted"] for r in by("echo")]),
        "emotion_four_class_accuracy": _rate([r["four_class_hit"] for r in by("emotion")]),
        "emotion_arousal_accuracy": _rate([r["arousal_hit"] for r in by("emotion")]),
        "long_answer_relevance": _rate(
            [r["relevant"] for r in by("user_backchannel", "user_interruption", "echo") if r["taken"]]
        ),
        "withdrawn_answer_rate": _rate([r["withdrawn"] for r in turn]),
        "npc_angry_case_rate": _rate([r["npc_angry"] for r in plain]),
        "npc_angry_cases": sum(r["npc_angry"] for r in plain),
        "player_angry_case_rate": _rate([r["player_read_angry"] for r in plain]),
        "player_angry_cases": sum(r["player_read_angry"] for r in plain),
        "say_again_rate": _rate([r["say_again"] for r in by("smooth_turn", "pause_handling", "game_noise")]),
        "off_topic_unknown_rate": _rate([r["relevant"] and r["taken"] for r in by("off_topic")]),
        "off_topic_unknown_at_gap_rate": _rate([r["unknown_at_gap"] for r in by("off_topic")]),
        "off_topic_latency_median_s": _pct([r["latency"] for r in by("off_topic")]),
        "off_topic_heard_clearly": sum(bool(r["heard_clearly"]) for r in by("off_topic")),
        "off_topic_clear_unknown_at_gap_rate": _rate([r["unknown_at_gap"] for r in by("off_topic")
                                                      if r["heard_clearly"]]),
        "bystander_cases": len(by("not_addressed")),
        "bystander_answered": sum(bool(r["answered"]) for r in by("not_addressed")),
        "bystander_takeover_rate": _rate([r["bystander_takeover"] for r in by("not_addressed")]),
        "bystander_interrupted": sum(bool(r["bystander_interrupted"]) for r in by("not_addressed")),
        "game_noise_taking_rate": _rate([r["taken"] for r in by("game_noise")]),
        "game_noise_latency_median_s": _pct([r["latency"] for r in by("game_noise")]),
        "game_noise_relevance": _rate([r["relevant"] for r in by("game_noise") if r["taken"]]),
    }


def score_folder(cases_dir: Path, results_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score every case that has results; the summary lists cases without results."""
    results, missing = [], []
    for case_json in sorted(cases_dir.glob("*/case.json")):
        case = json.loads(case_json.read_text())
        folder = results_dir / case["id"]
        if not (folder / "npc.wav").exists():
            missing.append(case["id"])
            continue
        events_path = folder / "events.jsonl"
        events = (
            [json.loads(line) for line in events_path.read_text().splitlines() if line.strip()]
            if events_path.exists()
            else []
        )
        results.append(score_case(case, speech_runs(read_wav(folder / "npc.wav")), events))
    summary = summarize(results)
    summary["missing_cases"] = missing
    return summary, results
