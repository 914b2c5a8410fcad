"""Overload handling (degrade levels, notices, refusal) and the perf bench's measuring parts."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from npc_voice.audio.format import CHUNK_SAMPLES
from npc_voice.bench import perf
from npc_voice.transport.client import ErrorReply, Reply, SidecarClient
from npc_voice.transport.server import CALM_S, DEGRADE_ORDER, HOLD_S, LATE_S, PROBE_S, OverloadControl, Sidecar

CASES = Path("/work/shared/eval/dev")


# ------------------------------------------------------------------------------ the controller


def test_on_time_replies_never_degrade() -> None:
    ctl = OverloadControl()
    for i in range(1000):
        assert ctl.observe(LATE_S * 0.5, now=i * 0.01) == 0
    assert ctl.level == 0


def test_late_replies_degrade_one_level_at_a_time_in_order_and_calm_restores() -> None:
    ctl = OverloadControl()
    t = 0.0
    changes = []
    while t < 10 * HOLD_S:  # every reply late for a long time
        changes.append(ctl.observe(LATE_S * 2, now=t))
        t += 0.05
    assert changes.count(1) == len(DEGRADE_ORDER) and ctl.level == len(DEGRADE_ORDER)
    first, second = [i for i, c in enumerate(changes) if c == 1][:2]
    assert (second - first) * 0.05 >= HOLD_S - 1e-9  # the first step was given time to work
    assert ctl.off(DEGRADE_ORDER[0][0]) and ctl.off(DEGRADE_ORDER[-1][0])
    # on time again: one level back per CALM_S, never below 0
    down = []
    while t < 10 * HOLD_S + (len(DEGRADE_ORDER) + 2) * CALM_S + 1:
        down.append(ctl.observe(LATE_S * 0.1, now=t))
        t += 0.05
    assert down.count(-1) == len(DEGRADE_ORDER) and ctl.level == 0
    assert not ctl.off(DEGRADE_ORDER[0][0])


def test_with_no_replies_at_all_the_level_still_calms() -> None:
    """At the last level new sessions are refused: if the busy ones close, no reply comes to restore it."""
    ctl = OverloadControl()
    t = 0.0
    while ctl.level < len(DEGRADE_ORDER):
        ctl.observe(LATE_S * 2, now=t)
        t += 0.05
    assert ctl.calm(t) == 0  # just late: not yet
    steps = [ctl.calm(t + k * 0.5) for k in range(1, round((len(DEGRADE_ORDER) + 1) * CALM_S / 0.5) + 2)]
    assert steps.count(-1) == len(DEGRADE_ORDER) and ctl.level == 0


def test_a_level_stays_while_the_load_that_needed_it_does() -> None:
    """No flapping: undoing a level with as many sessions as needed it only makes the same replies late again."""
    ctl = OverloadControl()
    t = 0.0
    while ctl.level == 0:
        ctl.observe(LATE_S * 2, now=t, load=8)
        t += 0.05
    raised = t
    steps = []
    while t < raised + PROBE_S - 1:  # on time, same load: kept
        steps.append(ctl.observe(0.01, now=t, load=8))
        t += 0.05
    assert -1 not in steps and ctl.level == 1
    assert ctl.calm(t, load=4) == -1 and ctl.level == 0  # fewer sessions: undone at once (calm long enough)
    while ctl.level == 0:  # needed again; this time the load stays and the probe undoes it after PROBE_S
        ctl.observe(LATE_S * 2, now=t, load=8)
        t += 0.05
    raised = t
    kept = [ctl.calm(raised + k, load=8) for k in range(1, int(PROBE_S) - 1)]
    assert -1 not in kept and ctl.calm(raised + PROBE_S + 0.1, load=8) == -1


def test_a_few_late_replies_among_many_on_time_do_not_degrade() -> None:
    ctl = OverloadControl()
    for i in range(400):  # 2 late replies per 2 s window: under RAISE_LATE
        ctl.observe(LATE_S * 3 if i % 100 == 0 else 0.01, now=i * 0.01)
    assert ctl.level == 0


# ------------------------------------------------------------------------------ a live sidecar under load


@pytest.fixture()
def overloaded(resources, tmp_path):
    """A sidecar whose controller counts every reply as late (``late_s`` below any step time), and calms a
    level after a second without one (and after 2 s while as many sessions are back as needed it)."""
    server = Sidecar(
        resources, f"ipc://{tmp_path}/{uuid.uuid4().hex[:8]}.sock",
        overload=OverloadControl(late_s=-1.0, calm_s=1.0, probe_s=2.0),
    )
    with server.running(30):
        yield server
    resources.asr.accurate = resources.predictive = resources.learned = True  # the shared models outlive this sidecar


def test_overload_is_announced_applied_and_refuses_new_sessions(overloaded: Sidecar) -> None:
    client = SidecarClient(overloaded.bound_address)
    try:
        s = client.open_session(persona="blacksmith", npc_id="smith")
        assert s.wait_opened(60), s.error
        notices: list[str] = []

        def pace(until: Callable[[], bool]) -> None:
            """Paced chunks, so the queue never backs up; every reply counts as late by construction, which
            keeps the load on (a pause of ``calm_s`` would rightly undo a level)."""
            deadline = time.monotonic() + 30
            while not until() and time.monotonic() < deadline:
                s.send_mic(np.zeros(CHUNK_SAMPLES, np.int16))
                time.sleep(0.1)
                for r in s.replies():
                    if isinstance(r, Reply):
                        notices.extend(e.message for e in r.events if e.type == "notice" and e.code == "degraded")

        pace(lambda: overloaded.overload.level == len(DEGRADE_ORDER))
        assert overloaded.overload.level == len(DEGRADE_ORDER)
        assert overloaded.res.predictive is False  # level 1: no reading ahead
        assert overloaded.res.learned is False  # level 2: no duplex model in the steps while the NPC listens
        assert overloaded.res.asr.accurate is False  # level 3: no Whisper pass
        assert overloaded.res.asr.transcribe(np.ones(16000, np.int16)) == ""
        t = time.monotonic()
        pace(lambda: time.monotonic() - t > 0.5)
        assert [m.split(":")[0] for m in notices] == [f"level {i + 1}" for i in range(len(DEGRADE_ORDER))]
        assert "no reading ahead" in notices[0] and "duplex model off" in notices[1]
        assert "accurate transcript pass off" in notices[2]

        late = client.open_session(persona="blacksmith", npc_id="latecomer")
        pace(lambda: late.error is not None)
        assert overloaded.overload.level == len(DEGRADE_ORDER)
        assert not late.opened and late.error is not None and "overloaded" in late.error

        # short queue: a burst behind a busy step keeps only the newest waiting chunk
        seqs = [s.send_mic(np.zeros(CHUNK_SAMPLES, np.int16)) for _ in range(8)]
        got: list[Reply | ErrorReply] = []
        t = time.monotonic()
        while len(got) < len(seqs) and time.monotonic() - t < 30:
            got += [r for r in s.replies() if r.seq in seqs]
            time.sleep(0.005)
        dropped = [r for r in got if isinstance(r, ErrorReply) and r.code == "overloaded"]
        assert len(got) == len(seqs)  # still exactly one answer per chunk
        assert dropped and got[-1].seq == seqs[-1] and isinstance(got[-1], Reply)

        # the busy session goes: with no replies left to judge by, the levels still calm, and a new session
        # is welcome again (it used to be refused for good). The refused one's client asks again meanwhile; back
        # on the worker, it holds a level that one session needed for ``probe_s`` (2 s here) before it is probed
        s.close()
        deadline = time.monotonic() + 30
        while overloaded.overload.level and time.monotonic() < deadline:
            time.sleep(0.1)
        assert overloaded.overload.level == 0 and overloaded.res.asr.accurate and overloaded.res.predictive
        again = client.open_session(persona="blacksmith", npc_id="after-the-rush")
        assert again.wait_opened(60), again.error
        # the refused one was asked for again by the client, and opened once the rush was over
        assert late.wait_opened(30) and late.error is None
    finally:
        client.close()


def test_steps_beside_a_session_being_opened_are_not_judged_late(
    overloaded: Sidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A game opening its villagers costs the machine a second or so once; it must not degrade the sidecar
    (at the last level the villagers being opened would be refused)."""
    from npc_voice.transport import host as srv

    client = SidecarClient(overloaded.bound_address)
    try:
        first = client.open_session(persona="blacksmith", npc_id="smith")
        assert first.wait_opened(60), first.error

        class SlowOpen(srv.Session):
            def __init__(self, *args, **kwargs) -> None:
                time.sleep(2.5)  # a persona loading on a busy machine
                super().__init__(*args, **kwargs)

        monkeypatch.setattr(srv, "Session", SlowOpen)
        second = client.open_session(persona="blacksmith", npc_id="herbalist")
        for _ in range(15):  # 1.5 s of chunks while the open runs; every reply is late by construction
            first.send_mic(np.zeros(CHUNK_SAMPLES, np.int16))
            time.sleep(0.1)
        assert not second.opened and overloaded.overload.level == 0
        assert second.wait_opened(30), second.error
        deadline = time.monotonic() + 10  # and once it is open, late replies are judged again
        while overloaded.overload.level == 0 and time.monotonic() < deadline:
            first.send_mic(np.zeros(CHUNK_SAMPLES, np.int16))
            time.sleep(0.1)
        assert overloaded.overload.level > 0
    finally:
        client.close()


# ------------------------------------------------------------------------------ the bench's parts


def test_proc_readings_of_this_process() -> None:
    pid = os.getpid()
    before = perf.proc_cpu_s(pid)
    t = time.process_time()
    while time.process_time() - t < 0.3:
        pass
    assert perf.proc_cpu_s(pid) > before
    assert 10 < perf.proc_rss_mb(pid) < 100_000
    m = perf.machine()
    assert m["cores"] == os.cpu_count() and len(m["loadavg_1_5_15"]) == 3


@pytest.mark.skipif(not CASES.is_dir(), reason="eval cases not present")
def test_speech_loops_are_whole_chunks_of_different_cases() -> None:
    tracks = perf.speech_loops(CASES, 3)
    assert len(tracks) == 3 and all(t.shape[1] == CHUNK_SAMPLES and t.dtype == np.int16 for t in tracks)
    assert not np.array_equal(tracks[0][:20], tracks[1][:20])


@pytest.mark.skipif(not CASES.is_dir(), reason="eval cases not present")
def test_a_short_level_against_a_real_sidecar(sidecar: str, tmp_path: Path) -> None:
    r = perf.run_level(sidecar, os.getpid(), CASES, sessions=2, seconds=2.0, setup="in-process")
    assert r.steps + sum(r.errors.values()) == 20 and r.missing == 0
    assert r.compute_p50_ms > 0 and r.rtt_p50_ms >= r.compute_p50_ms * 0.5 and r.rss_mb > 10
    perf.write_report(tmp_path, {"machine": perf.machine(), "levels": [r.__dict__]})
    table = (tmp_path / "table.md").read_text().splitlines()
    assert len(table) == 3 and table[2].startswith("| in-process | 2 × 1 | 20 | ")
    assert r.process_cpu_pct["sidecar"] > 0 and r.machine_cpu_pct >= r.process_cpu_pct["sidecar"] * 0.5
    assert (tmp_path / "perf.png").stat().st_size > 1000
