"""Faults on a real sidecar process: a stall (SIGSTOP) and a crash (kill -9) mid-conversation.

The game loop keeps running through both (its calls never block), the client shows it is
reconnecting, and after a restart on the same address it reopens the session by itself and the
conversation goes on: a spoken question still gets its answer.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import numpy as np

from npc_voice.audio.format import CHUNK_SAMPLES
from npc_voice.speech.tts import Synthesizer, VoiceSettings
from npc_voice.transport.client import Reply, SidecarClient
from npc_voice.transport.process import SidecarProcess

PLAYER = VoiceSettings(voice="en-us+f3", pitch=60, rate=160)
FRAME_S = 0.02  # the game's frame (50 fps); a mic chunk every 10 frames


class GameLoop:
    """What a game does each frame: poll replies, and every 200 ms hand over a mic chunk."""

    def __init__(self, client: SidecarClient, session) -> None:  # noqa: ANN001
        self.client, self.session = client, session
        self.replies: list = []
        self.states: set[str] = set()
        self.frames = 0
        self.worst_call_s = 0.0

    def run_until(self, done: Callable[[], bool], timeout: float, mic: list[np.ndarray] | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = time.perf_counter()
            if self.frames % 10 == 0:
                chunk = mic.pop(0) if mic else np.zeros(CHUNK_SAMPLES, np.int16)
                self.session.send_mic(chunk)
            self.replies += self.session.replies()
            self.states.add(self.client.state)
            self.worst_call_s = max(self.worst_call_s, time.perf_counter() - t)
            self.frames += 1
            if done():
                return True
            time.sleep(FRAME_S)
        return False

    def steps_since(self, n: int) -> list[Reply]:
        return [r for r in self.replies[n:] if isinstance(r, Reply)]


def say(text: str) -> list[np.ndarray]:
    audio = (Synthesizer().synthesize(text, PLAYER).audio.astype(np.float32) * 0.5).astype(np.int16)
    full = np.concatenate([np.zeros(3200, np.int16), audio, np.zeros(16000 * 3, np.int16)])
    return list(np.pad(full, (0, -len(full) % CHUNK_SAMPLES)).reshape(-1, CHUNK_SAMPLES))


def test_stall_and_kill_9_then_the_conversation_goes_on() -> None:
    first = SidecarProcess(procs=1)  # the whole sidecar restarts here; a lost worker process: test_workers.py
    second: SidecarProcess | None = None
    first.wait_ready()
    client = SidecarClient(first.address)
    try:
        session = client.open_session(persona="blacksmith", npc_id="smith")
        game = GameLoop(client, session)
        assert game.run_until(lambda: session.opened and len(game.steps_since(0)) >= 5, 60)
        assert client.state == "connected"

        # a stall: the sidecar freezes for 4 s (a network stall looks the same to the client)
        os.kill(first.proc.pid, signal.SIGSTOP)
        assert game.run_until(lambda: client.state == "reconnecting", 10)
        os.kill(first.proc.pid, signal.SIGCONT)
        n = len(game.replies)
        assert game.run_until(lambda: client.state == "connected" and len(game.steps_since(n)) >= 3, 30)
        assert client.restarts == 0 and session.stats.reopened == 0  # same process: nothing was forgotten

        # a crash: kill -9, then a new sidecar on the same address
        first.kill()
        assert game.run_until(lambda: client.state == "reconnecting", 10)
        second = SidecarProcess(address=first.address, procs=1)
        ready = threading.Thread(target=second.wait_ready)
        ready.start()
        assert game.run_until(lambda: not ready.is_alive(), 120)  # the game keeps running while it loads
        n = len(game.replies)
        assert game.run_until(lambda: session.opened and len(game.steps_since(n)) >= 3, 30)
        assert client.state == "connected" and client.restarts == 1 and session.stats.reopened >= 1

        # the conversation goes on: the reopened session answers a question on topic
        question = say("My sword is broken. Can you fix it?")
        n = len(game.replies)
        game.run_until(lambda: not question, 60, mic=question)
        game.run_until(lambda: False, 2.0)
        responses = [e for r in game.steps_since(n) for e in r.events if e.type == "response"]
        # an answer begun in the gap between the sentences yields to the second one: the last answer stands
        assert responses and responses[-1].topic == "repair", responses

        assert {"connected", "reconnecting"} <= game.states
        # the game thread never waited on the network: a frame's calls never took a heartbeat's length
        assert game.worst_call_s < 1.0, game.worst_call_s
        print(
            f"frames {game.frames}, worst frame call {game.worst_call_s * 1000:.1f} ms, "
            f"restart start-up {second.startup_s:.1f} s, stats {session.stats}"
        )
    finally:
        client.close()
        if second is not None:
            second.stop()
        first.stop()


def test_a_network_stall_is_concealed_with_silence_counted_and_never_clicks() -> None:
    """Replies stop for 0.6 s mid-sentence: the buffer plays silence, counts it, and ramps both edges."""
    from npc_voice.audio.playback import FADE_SAMPLES, JitterBuffer

    t = np.arange(12 * CHUNK_SAMPLES) / 16000
    speech = (8000 * np.sin(2 * np.pi * 437 * t)).astype(np.int16)  # chunk edges fall mid-wave
    chunks = speech.reshape(-1, CHUNK_SAMPLES)
    arrivals = [0.2 * k for k in range(4)] + [0.2 * k + 0.6 for k in range(4, 12)]  # a 0.6 s stall after 4
    buf = JitterBuffer(target_s=0.04)
    out, block, now, k = [], 160, 0.0, 0
    while now < 3.4:
        while k < len(chunks) and arrivals[k] <= now:
            buf.push(chunks[k], now)
            k += 1
        out.append(buf.pull(block, now))
        now += block / 16000
    audio = np.concatenate(out).astype(np.int32)
    assert buf.stats.underruns >= 1 and buf.stats.concealed_samples >= int(0.5 * 16000)
    silent = np.flatnonzero(np.convolve(np.abs(audio) == 0, np.ones(1600), "valid") == 1600)
    assert len(silent), "the stall is played as silence"
    # no click: no sample-to-sample step larger than the tone's own slope plus one ramp step
    slope = np.abs(np.diff(speech.astype(np.int32))).max()
    assert np.abs(np.diff(audio)).max() <= slope + 8000 // FADE_SAMPLES + 2
    assert np.count_nonzero(audio) > 0.6 * len(speech)  # the speech itself was played


def test_the_sidecar_runs_the_npc_voice_that_started_it(tmp_path, monkeypatch) -> None:
    """Another npc_voice in the working directory (a checkout of an older commit, say) is not what the
    sidecar runs: benches compare commits by PYTHONPATH, and a game's folder must not shadow the plugin."""
    shadow = tmp_path / "npc_voice"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('the npc_voice of the working directory')\n")
    monkeypatch.chdir(tmp_path)
    sidecar = SidecarProcess(procs=1)
    try:
        sidecar.wait_ready(120)
    finally:
        sidecar.stop()
