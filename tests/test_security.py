"""The locked door: loopback by default, CURVE for anything else, size limits, a cap on sessions per client.

Only loopback is ever a target here: the CURVE sidecar listens on tcp://127.0.0.1 with CURVE
enforced, and the non-loopback bind is refused before any socket exists.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq

from npc_voice.audio.format import CHUNK_SAMPLES
from npc_voice.transport import protocol as p
from npc_voice.transport.client import ClientCurve, Reply, SidecarClient
from npc_voice.transport.server import MAX_SESSIONS_PER_CLIENT, CurveKeys, Sidecar, generate_keys


def wait_for(cond, timeout: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_non_loopback_bind_needs_curve_keys(resources, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        Sidecar(resources, "tcp://0.0.0.0:5599")
    with pytest.raises(ValueError, match="CURVE"):
        Sidecar(resources, "tcp://0.0.0.0:5599", allow_remote=True)
    _, secret = generate_keys(tmp_path / "server", "server")
    # with keys the constructor accepts it (nothing is bound until serve(), and this test never serves)
    Sidecar(resources, "tcp://0.0.0.0:5599", allow_remote=True, curve=CurveKeys(secret, tmp_path / "clients"))


@pytest.fixture()
def keys(tmp_path: Path) -> dict[str, Path]:
    server_public, server_secret = generate_keys(tmp_path / "server", "server")
    generate_keys(tmp_path / "clients", "game")
    _, stranger_secret = generate_keys(tmp_path / "strangers", "stranger")
    return {
        "server_public": server_public,
        "server_secret": server_secret,
        "clients": tmp_path / "clients",
        "game_secret": tmp_path / "clients" / "game.key_secret",
        "stranger_secret": stranger_secret,
    }


@pytest.fixture()
def curve_sidecar(resources, keys: dict[str, Path]) -> Iterator[str]:
    server = Sidecar(resources, "tcp://127.0.0.1:*", curve=CurveKeys(keys["server_secret"], keys["clients"]))
    with server.running(30) as address:
        yield address


def test_curve_admits_only_listed_clients(curve_sidecar: str, keys: dict[str, Path]) -> None:
    plain = SidecarClient(curve_sidecar)
    stranger = SidecarClient(curve_sidecar, curve=ClientCurve(keys["stranger_secret"], keys["server_public"]))
    game = SidecarClient(curve_sidecar, curve=ClientCurve(keys["game_secret"], keys["server_public"]))
    try:
        sessions = {c: c.open_session(persona="blacksmith", npc_id="smith") for c in (plain, stranger, game)}
        assert sessions[game].wait_opened(60)
        sessions[game].send_mic(np.zeros(CHUNK_SAMPLES, np.int16))
        assert wait_for(lambda: any(isinstance(r, Reply) for r in sessions[game].replies()), 30)
        assert game.state == "connected"
        time.sleep(2 * game._heartbeat_s)  # several heartbeats later, the others have still heard nothing
        for refused in (plain, stranger):
            assert refused.state == "connecting" and not sessions[refused].opened
            assert sessions[refused].replies() == []
    finally:
        for c in (plain, stranger, game):
            c.close()


def test_session_cap_follows_the_key_not_the_connection(curve_sidecar: str, keys: dict[str, Path]) -> None:
    curve = ClientCurve(keys["game_secret"], keys["server_public"])
    first, second = SidecarClient(curve_sidecar, curve=curve), SidecarClient(curve_sidecar, curve=curve)
    try:
        held = [first.open_session(persona="blacksmith", npc_id=f"npc{i}") for i in range(MAX_SESSIONS_PER_CLIENT)]
        assert all(s.wait_opened(60) for s in held)
        extra = second.open_session(persona="blacksmith", npc_id="one-too-many")
        assert wait_for(lambda: extra.error is not None, 30)
        assert extra.error.startswith("capacity") and not extra.opened
    finally:
        first.close()
        second.close()


def raw_dealer(address: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 1500)
    sock.connect(address)
    return sock


def test_message_size_limits(sidecar: str) -> None:
    """One frame over ZMQ_MAXMSGSIZE: the connection is cut, no reply. Frames under it that add up to
    too much: a ``too_large`` error. Either way the sidecar keeps serving."""
    sock = raw_dealer(sidecar)
    sock.send_multipart([b"\x80", b"\x00" * (4 * p.MAX_MESSAGE_BYTES)])
    with pytest.raises(zmq.Again):
        sock.recv_multipart()
    sock.close(0)
    sock = raw_dealer(sidecar)
    sock.send_multipart([b"\x80", b"\x00" * (p.MAX_MESSAGE_BYTES // 2), b"\x00" * (p.MAX_MESSAGE_BYTES // 2)])
    reply = p.decode(sock.recv_multipart())
    assert isinstance(reply, p.Error) and reply.code == "too_large"
    sock.send_multipart(p.encode(p.Ping(t_sent=1.0)))
    assert isinstance(p.decode(sock.recv_multipart()), p.Pong)
    sock.close(0)


def test_per_client_session_cap(sidecar: str) -> None:
    greedy, other = SidecarClient(sidecar), SidecarClient(sidecar)
    try:
        held = [greedy.open_session(persona="blacksmith", npc_id=f"npc{i}") for i in range(MAX_SESSIONS_PER_CLIENT)]
        assert all(s.wait_opened(60) for s in held)
        extra = greedy.open_session(persona="blacksmith", npc_id="one-too-many")
        assert wait_for(lambda: extra.error is not None, 30) and extra.error.startswith("capacity")
        fine = other.open_session(persona="blacksmith", npc_id="neighbour")  # another game is not affected
        assert fine.wait_opened(60)
    finally:
        greedy.close()
        other.close()
