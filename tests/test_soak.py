"""A short soak: two sessions, one simulated minute of real conversation, nothing lost or refused."""

from __future__ import annotations

from npc_voice.bench.soak import STEPS_PER_MINUTE, soak


def test_two_sessions_for_a_simulated_minute(sidecar: str) -> None:
    report = soak(sidecar, sessions=2, minutes=1.0)
    print(f"soak: {report}")
    assert report.steps == 2 * STEPS_PER_MINUTE
    assert not report.errors and report.missing == 0
    assert report.responses >= 2  # the engine really talked, not just passed silence around
