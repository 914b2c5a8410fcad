"""Ctrl-C and SIGTERM end the demo as Esc does: the game, headless, in a process of its own, is sent the signal
and must exit at once, cleanly (its shutdown ran, no traceback), leaving no process behind."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from demo_game.game import UP_LINE
from npc_voice.bench.perf import children

REPO = Path(__file__).resolve().parents[1]
QUIT_WITHIN_S = 5.0  # about a second on an idle machine; generous for a niced suite on two busy cores
# A shell without job control starts a background job with SIGINT ignored (Python then installs no Ctrl-C handler):
# the demo run so, which is how a game kept running while the sidecar it started stopped.
IGNORING_CTRL_C = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                   "os.execv(sys.executable, [sys.executable, '-m', 'demo_game', *sys.argv[1:]])")


def start_demo(tmp_path: Path, *args: str, ignoring_ctrl_c: bool = False) -> tuple[subprocess.Popen, queue.Queue]:
    """``python -m demo_game`` with no sound card, in a session of its own (a terminal's Ctrl-C goes to its whole
    process group); its stdout lines go to the queue as they come."""
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PYGAME_HIDE_SUPPORT_PROMPT": "1"}
    launch = ["-c", IGNORING_CTRL_C] if ignoring_ctrl_c else ["-m", "demo_game"]
    demo = subprocess.Popen([sys.executable, *launch, "--silent", "--save-dir", str(tmp_path / "save"), *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return demo, lines


def wait_for_line(lines: queue.Queue, text: str, timeout: float) -> list[str]:
    seen: list[str] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            line = lines.get(timeout=max(0.0, end - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"no {text!r} within {timeout} s: {seen}")


def quit_with(demo: subprocess.Popen, sig: int, group: bool = False) -> tuple[float, str]:
    """Send ``sig`` (to the whole process group, as a terminal's Ctrl-C does, if ``group``); seconds to exit and
    stderr. A demo still running after QUIT_WITHIN_S is killed, with its process group."""
    t0 = time.monotonic()
    (os.killpg if group else os.kill)(demo.pid, sig)
    try:
        demo.wait(QUIT_WITHIN_S)
    except subprocess.TimeoutExpired:
        os.killpg(demo.pid, signal.SIGKILL)
        demo.wait(10)
        pytest.fail(f"the demo was still running {QUIT_WITHIN_S} s after {signal.Signals(sig).name}")
    took = time.monotonic() - t0
    assert demo.stderr is not None
    return took, demo.stderr.read()


def alive(pids: list[int], within: float = 3.0) -> list[int]:
    """Which of ``pids`` still run after ``within`` s (a zombie has ended: only its parent has not looked yet)."""
    end = time.monotonic() + within
    while True:
        running = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError):
                continue
            if state != "Z":
                running.append(pid)
        if not running or time.monotonic() > end:
            return running
        time.sleep(0.1)


@pytest.mark.parametrize(("sig", "ignoring_ctrl_c"), [(signal.SIGINT, False), (signal.SIGTERM, False),
                                                     (signal.SIGINT, True)],
                         ids=["ctrl-c", "sigterm", "ctrl-c-started-ignored"])
def test_a_signal_ends_the_village_loop_as_esc_does(sidecar: str, tmp_path: Path, sig: int,
                                                    ignoring_ctrl_c: bool) -> None:
    demo, lines = start_demo(tmp_path, "--sidecar", sidecar, "--frametime", ignoring_ctrl_c=ignoring_ctrl_c)
    try:
        wait_for_line(lines, UP_LINE, 60)
        time.sleep(0.5)  # the loop draws the village for a while
        assert demo.poll() is None
        took, err = quit_with(demo, sig)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    out = "".join(iter(lines.get, None))
    assert demo.returncode == 128 + sig, err[-3000:]  # 130 for Ctrl-C, 143 for SIGTERM, as a shell reports them
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert "frame work time, idle" in out, out  # the shutdown ran: the --frametime report is printed on exit
    assert took < QUIT_WITHIN_S


def test_ctrl_c_while_the_villagers_wake_stops_the_sidecar_too(tmp_path: Path) -> None:
    """The demo starts its own sidecar; Ctrl-C at the terminal (the whole process group) while the models load ends
    the game and the sidecar, and every process either started."""
    demo, _ = start_demo(tmp_path)
    try:
        end = time.monotonic() + 30
        while not (family := children(demo.pid)) and time.monotonic() < end and demo.poll() is None:
            time.sleep(0.1)
        assert family, "the demo started no sidecar"
        time.sleep(1.0)  # loading: the game's loading screen runs, the sidecar imports its models
        family = children(demo.pid)
        took, err = quit_with(demo, signal.SIGINT, group=True)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    assert demo.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert alive(family) == [], f"left running: {family}"
    assert took < QUIT_WITHIN_S
