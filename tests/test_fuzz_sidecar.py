"""Hypothesis fuzz of a live sidecar: every message answered as the protocol says, a bystander unharmed."""

from __future__ import annotations

from npc_voice.bench.fuzz import fuzz_sidecar


def test_live_sidecar_answers_every_fuzzed_message_and_others_stream_on(sidecar: str) -> None:
    report = fuzz_sidecar(sidecar, examples=300, flood=100)
    print(f"live fuzz: {report}")
    assert report.violations == []
    assert report.sent >= 250
    # the oracle was exercised: accepted chunks, repeated/late ones, broken state, bad cues, garbage
    keys = set(report.outcomes)
    assert {"chunk->step", "chunk->seq_duplicate", "bad_cue->bad_field", "random->malformed"} <= keys
    assert report.flood_sent == 100 and sum(report.flood_outcomes.values()) == 100
    assert report.bystander_replies > 0 and report.bystander_errors == 0
