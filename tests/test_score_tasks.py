"""The scorer's figures for the held-out tasks: an off-topic turn answered with the unknown line at the normal gap,
speech not addressed to the NPC that it answered or not. Hand-made results: no audio model runs."""

from __future__ import annotations

import numpy as np

from npc_voice.bench.score import score_case, summarize

SR = 16000


def npc_runs(*spans: tuple[float, float]) -> list[tuple[float, float]]:
    return list(spans)


def test_an_off_topic_turn_answered_at_the_gap_and_heard_clearly() -> None:
    case = {"id": "off_topic-001", "task": "off_topic", "duration": 8.0,
            "user_segments": [{"start": 1.0, "end": 2.5, "text": "Do you sell candles?", "role": "turn"}],
            "expect": {"respond_after": 2.5, "topics": ["unknown"]}}
    events = [{"type": "transcript", "final": True, "t": 2.9, "text": "Do you sell candles?"},
              {"type": "response", "t": 2.9, "topic": "unknown", "text": "Candles? Not my trade."}]
    r = score_case(case, npc_runs((2.9, 5.0)), events)
    assert r["relevant"] and r["unknown_at_gap"] and r["heard_clearly"]
    late = score_case(case, npc_runs((3.8, 5.5)), [dict(e, t=3.8) for e in events])
    assert late["relevant"] and not late["unknown_at_gap"]  # 1.3 s: the old "unsure" wait
    misheard = [dict(events[0], text="Do you feel handles?"), dict(events[1], topic="fallback")]
    said_again = score_case(case, npc_runs((3.2, 5.0)), misheard)
    assert not said_again["relevant"] and not said_again["heard_clearly"] and said_again["say_again"]
    s = summarize([r, late, said_again])
    assert s["off_topic_unknown_rate"] == round(2 / 3, 3) and s["off_topic_heard_clearly"] == 2
    assert s["off_topic_clear_unknown_at_gap_rate"] == 0.5


def test_speech_not_addressed_to_the_npc_answered_or_not() -> None:
    case = {"id": "not_addressed-001", "task": "not_addressed", "duration": 10.0,
            "user_segments": [{"start": 1.0, "end": 4.0, "text": "Pass me the bread.", "role": "bystander"}],
            "expect": {"kind": "broadcast", "not_addressed": [[1.0, 4.0]], "no_takeover": [[1.0, 6.0]]}}
    quiet = score_case(case, [], [])
    assert not quiet["answered"] and not quiet["bystander_takeover"] and not quiet["bystander_interrupted"]
    answered = score_case(case, npc_runs((4.6, 7.0)), [{"type": "response", "t": 4.6, "topic": "fallback"}])
    assert answered["answered"] and answered["bystander_takeover"]
    s = summarize([quiet, answered])
    assert s["bystander_cases"] == 2 and s["bystander_answered"] == 1 and s["bystander_takeover_rate"] == 0.5
    assert np.isclose(s["bystander_takeover_rate"], 0.5)
