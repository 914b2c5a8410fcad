"""A short soak: two sessions, half a simulated minute of real conversation, nothing lost or refused. The long
soak is ``npc-voice bench soak``; half a minute already holds 13 answers (and takes ~15 s instead of ~29 s)."""

from __future__ import annotations

from npc_voice.bench.soak import STEPS_PER_MINUTE, soak


def test_two_sessions_for_half_a_simulated_minute(sidecar: str) -> None:
    report = soak(sidecar, sessions=2, minutes=0.5)
    print(f"soak: {report}")
    assert report.steps == STEPS_PER_MINUTE  # 2 sessions x half a minute
    assert not report.errors and report.missing == 0
    assert report.responses >= 2  # the engine really talked, not just passed silence around
