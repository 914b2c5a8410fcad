"""What an engine developer starts from: the pygame example, headless, and a client in "another language":
a reference client that speaks docs/protocol.md with zmq + msgpack + numpy only (no npc_voice import), as a
Godot, Unity or C++ client would, holding a conversation with a real sidecar."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import msgpack
import numpy as np
import zmq

REPO = Path(__file__).resolve().parents[1]
DEV = Path(os.environ.get("NPC_VOICE_SHARED", REPO.parent / "shared")) / "eval" / "dev"
QUESTION = DEV / "smooth_turn-000" / "user.wav"  # "I would like to buy a sword."


def test_the_pygame_example_holds_a_conversation_headless(tmp_path) -> None:
    assert len((REPO / "examples" / "talking_npc.py").read_text().splitlines()) <= 80
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "talking_npc.py"), "--audio", "silent",
         "--say", "I would like to buy a sword.", "--answers", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "smith [buy_sword]:" in done.stdout, done.stdout + done.stderr[-2000:]


# ---------------------------------------------------------------------------- the reference client

CHUNK = 3200  # 200 ms at 16 kHz


def header(kind: str, **fields) -> bytes:
    return msgpack.packb({"v": 1, "type": kind, **fields})


def receive(sock: zmq.Socket, timeout_s: float) -> tuple[dict, list[bytes]] | None:
    if not sock.poll(int(timeout_s * 1000)):
        return None
    frames = sock.recv_multipart()
    return msgpack.unpackb(frames[0]), frames[1:]


def test_a_client_in_another_language_speaks_the_protocol(tmp_path) -> None:
    address = f"ipc://{tempfile.mkdtemp(prefix='npc-ref-')}/sidecar.sock"
    sidecar = subprocess.Popen([sys.executable, "-P", "-m", "npc_voice.cli", "serve", "--address", address],
                               stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    try:
        assert sidecar.stdout is not None and "ready" in sidecar.stdout.readline()
        sock.connect(address)
        sock.send_multipart([header("ping", t_sent=1.5)])
        pong, _ = receive(sock, 10)
        assert pong["type"] == "pong" and pong["t_sent"] == 1.5
        sock.send_multipart([header("open", session="smith-1", persona="blacksmith", npc_id="smith",
                                    format={"rate": 16000, "channels": 1, "sample_format": "s16le",
                                            "chunk_samples": CHUNK})])
        opened, _ = receive(sock, 60)
        assert opened["type"] == "opened" and opened["protocol"] == 1, opened
        with wave.open(str(QUESTION)) as w:
            voice = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        voice = np.concatenate([voice, np.zeros(CHUNK * 10, "<i2")])  # and two seconds to answer in
        events, npc_audio, t0 = [], [], time.monotonic()
        for seq in range(len(voice) // CHUNK):
            while time.monotonic() - t0 < (seq + 1) * 0.2:  # a microphone delivers in real time
                time.sleep(0.005)
            mic = voice[seq * CHUNK : (seq + 1) * CHUNK].tobytes()
            sock.send_multipart([header("mic", session="smith-1", seq=seq, t_capture=time.monotonic() - t0,
                                        played=False), mic])
            while (msg := receive(sock, 0)) is not None:
                head, frames = msg
                assert head["type"] == "step", head
                events += head["events"]
                npc_audio.append(np.frombuffer(frames[0], "<i2"))
                assert len(frames[0]) == CHUNK * 2
        while (msg := receive(sock, 2)) is not None and len(npc_audio) < len(voice) // CHUNK:
            events += msg[0]["events"]
            npc_audio.append(np.frombuffer(msg[1][0], "<i2"))
        sock.send_multipart([header("close", session="smith-1")])
        while (msg := receive(sock, 10)) is not None and msg[0]["type"] == "step":
            pass
        assert msg is not None and msg[0]["type"] == "closed", msg
        answers = [e for e in events if e["type"] == "response"]
        assert answers and answers[0]["topic"] == "buy_sword", json.dumps(events)[:2000]
        assert np.abs(np.concatenate(npc_audio)).max() > 3000  # the answer came as audio too
        # Bad input gets a clear error, and the connection lives on.
        sock.send_multipart([header("mic", session="nobody", seq=0, t_capture=0.0, played=False), b"\0" * 6400])
        err, _ = receive(sock, 10)
        assert err["type"] == "error" and err["code"] == "no_session" and err["message"], err
    finally:
        sock.close(0)
        ctx.term()
        sidecar.terminate()
        sidecar.wait(20)
