"""The sidecar over real ZeroMQ: one reply per chunk, clear errors, sessions that survive bad input."""

from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest
import zmq

from npc_voice.audio.format import CHUNK_SAMPLES
from npc_voice.speech.tts import Synthesizer, VoiceSettings
from npc_voice.transport import protocol as p
from npc_voice.transport.client import ErrorReply, Reply, SidecarClient

PLAYER = VoiceSettings(voice="en-us+f3", pitch=60, rate=160)


def collect(session, n: int, timeout: float = 30.0) -> list[Reply | ErrorReply]:
    out: list[Reply | ErrorReply] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += session.replies()
        time.sleep(0.002)
    return out


def say(text: str, lead_s: float = 0.6, tail_s: float = 4.0) -> list[np.ndarray]:
    """The player saying ``text`` with silence around it, as 200 ms chunks."""
    audio = Synthesizer().synthesize(text, PLAYER).audio
    audio = (audio.astype(np.float32) * 0.5).astype(np.int16)
    full = np.concatenate([np.zeros(int(lead_s * 16000), np.int16), audio, np.zeros(int(tail_s * 16000), np.int16)])
    full = np.pad(full, (0, -len(full) % CHUNK_SAMPLES))
    return list(full.reshape(-1, CHUNK_SAMPLES))


def converse(session, chunks: list[np.ndarray]) -> list[Reply]:
    """Send ``chunks`` at the pace of a microphone; every step reply, in order."""
    replies: list = []
    for c in chunks:
        session.send_mic(c)
        time.sleep(0.2)
        replies += session.replies()
    return [r for r in replies + collect(session, len(chunks) - len(replies)) if isinstance(r, Reply)]


@pytest.fixture()
def client(sidecar: str):
    c = SidecarClient(sidecar)
    yield c
    c.close()


def open_session(client: SidecarClient, persona: str = "blacksmith"):
    s = client.open_session(persona=persona, npc_id="smith")
    assert s.wait_opened(60), s.error
    return s


def test_every_chunk_gets_exactly_one_reply_in_order(client: SidecarClient) -> None:
    s = open_session(client)
    for _ in range(10):
        s.send_mic(np.zeros(CHUNK_SAMPLES, np.int16))
    replies = collect(s, 10)
    assert [r.seq for r in replies] == list(range(10))
    assert all(isinstance(r, Reply) and r.pcm.shape == (CHUNK_SAMPLES,) for r in replies)
    time.sleep(0.3)
    assert s.replies() == []


def test_a_spoken_question_gets_a_spoken_answer_on_topic(client: SidecarClient) -> None:
    s = open_session(client)
    replies = converse(s, say("My sword is broken. Can you fix it?"))
    events = [e for r in replies for e in r.events]
    responses = [e for e in events if e.type == "response"]
    assert responses, [e.type for e in events]
    # The NPC may answer in the pause between the two sentences, as a person might; if it does and the player
    # goes on, that answer is withdrawn (``interrupted``) and the next one answers the whole turn.
    kinds = [e.type for e in events if e.type in ("response", "interrupted")]
    assert kinds[-1] == "response" and "response,response" not in ",".join(kinds), kinds
    assert responses[-1].topic == "repair", responses
    assert len(responses[-1].heard) > len(responses[0].heard) or len(responses) == 1, responses
    assert any(e.type == "transcript" and e.final for e in events)
    # the answer's voice is ready when it starts: it sounds where the reply that starts it says (its offset)
    first = next(i for i, r in enumerate(replies) if any(e.type == "response" for e in r.events))
    offset = next(e.offset for e in replies[first].events if e.type == "response")
    sound = np.concatenate([replies[first].pcm, replies[first + 1].pcm])[round(offset * 16000):]
    assert np.abs(sound[:1600]).max() > 1000, offset
    assert any(e.type == "visemes" for e in events) and any(e.type == "words" for e in events)


def test_silence_and_noise_never_take_the_floor(client: SidecarClient) -> None:
    s = open_session(client)
    rng = np.random.default_rng(0)
    for _ in range(30):
        s.send_mic((rng.standard_normal(CHUNK_SAMPLES) * 300).astype(np.int16))
    replies = collect(s, 30)
    assert not any(e.type == "response" for r in replies if isinstance(r, Reply) for e in r.events)
    assert all(np.abs(r.pcm).max() == 0 for r in replies if isinstance(r, Reply))


def test_unknown_persona_is_refused_clearly(client: SidecarClient) -> None:
    s = client.open_session(persona="dragon_king", npc_id="x")
    deadline = time.monotonic() + 30
    while s.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s.error is not None and "unknown_persona" in s.error and "blacksmith" in s.error


def raw_dealer(address: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 30000)
    sock.connect(address)
    return sock


def request(sock: zmq.Socket, frames: list[bytes]) -> p.Message:
    sock.send_multipart(frames)
    return p.decode(sock.recv_multipart())


def test_bad_messages_get_errors_and_the_session_lives_on(sidecar: str, client: SidecarClient) -> None:
    other = open_session(client)  # another client's session must not notice anything
    sock = raw_dealer(sidecar)
    opened = request(sock, p.encode(p.OpenSession(session="raw", persona="blacksmith", npc_id="x")))
    assert isinstance(opened, p.Opened)
    good = p.encode(p.MicChunk(session="raw", seq=0, t_capture=0.0, pcm=np.zeros(CHUNK_SAMPLES, np.int16)))
    bad = {
        "malformed": [b"\xc1not msgpack"],
        "unknown_type": [msgpack.packb({"v": 1, "type": "dance", "session": "raw"})],
        "bad_chunk": [good[0], b"\x00" * 1000],
        "no_session": p.encode(p.MicChunk(session="nobody", seq=0, t_capture=0.0,
                                          pcm=np.zeros(CHUNK_SAMPLES, np.int16))),
        "bad_version": [msgpack.packb({"v": 7, "type": "ping"})],
        "unexpected": p.encode(p.Pong()),
    }
    for code, frames in bad.items():
        reply = request(sock, frames)
        assert isinstance(reply, p.Error) and reply.code == code and reply.message, (code, reply)
    reply = request(sock, good)
    assert isinstance(reply, p.StepReply) and reply.seq == 0
    other.send_mic(np.zeros(CHUNK_SAMPLES, np.int16))
    assert isinstance(collect(other, 1)[0], Reply)
    closed = request(sock, p.encode(p.CloseSession(session="raw")))
    assert isinstance(closed, p.Closed)
    after = request(sock, good)
    assert isinstance(after, p.Error) and after.code == "no_session"
    sock.close(0)


def test_heartbeat_answers(client: SidecarClient) -> None:
    deadline = time.monotonic() + 10
    while not client.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.connected


def test_remote_bind_needs_explicit_permission(resources) -> None:
    from npc_voice.transport.server import Sidecar, is_loopback

    assert is_loopback("tcp://127.0.0.1:5571") and is_loopback("ipc:///tmp/x") and is_loopback("tcp://[::1]:1")
    assert not is_loopback("tcp://0.0.0.0:5571")
    with pytest.raises(ValueError, match="loopback"):
        Sidecar(resources, "tcp://0.0.0.0:5599")


def test_floor_events_report_the_model_and_the_action_in_every_step(client: SidecarClient) -> None:
    s = client.open_session(persona="blacksmith", npc_id="smith", floor=True)
    assert s.wait_opened(60), s.error
    replies = converse(s, say("Where can I buy a good sword?", lead_s=1.0))
    floors = [[e for e in r.events if e.type == "floor"] for r in replies]
    assert all(len(f) == 1 for f in floors)
    floor = [f[0] for f in floors]
    assert {f.action for f in floor} <= {"listen", "respond", "continue", "backchannel", "interrupted"}
    answered = next(i for i, r in enumerate(replies) if any(e.type == "response" for e in r.events))
    assert floor[answered].action == "respond"
    # every one says which rule decided: the answer by a listening rule, the wait before it by another
    assert all(f.rule and f.why for f in floor)
    assert floor[answered].rule.startswith("listening.")  # which one depends on how soon the read came in
    assert floor[1].rule == "listening.still_talking" and floor[answered + 2].rule == "speaking.nothing_heard"
    for f in floor:
        for prob in (f.p_yield, f.p_yield_soon, f.p_player, f.p_backchannel, f.p_interrupt, f.p_end):
            assert prob is None or 0.0 <= prob <= 1.0
    # the model hears the player only while they speak, and expects the turn's end before the NPC answers
    assert max(f.p_player for f in floor[1:5]) < 0.5 < max(f.p_player for f in floor[5:answered])
    assert max(max(f.p_yield, f.p_yield_soon) for f in floor[answered - 3 : answered + 1]) > 0.5
    # while the NPC answers, the backchannel/interruption heads are there; before, they are not
    assert floor[answered - 1].p_interrupt is None and floor[answered + 2].p_interrupt is not None


def test_sessions_not_asking_get_no_floor_events(client: SidecarClient) -> None:
    s = open_session(client)
    for _ in range(5):
        s.send_mic(np.zeros(CHUNK_SAMPLES, np.int16))
    replies = collect(s, 5)
    assert len(replies) == 5 and not any(e.type == "floor" for r in replies for e in r.events)


def test_without_the_learned_model_the_rules_go_on_and_the_model_only_guards_the_npcs_speech(resources) -> None:
    from npc_voice.engine.session import Session

    s = Session(resources, "blacksmith", "smith-degraded", simulated_clock=True, floor_events=True)
    silent = np.zeros(CHUNK_SAMPLES, np.int16)
    assert [e.type for e in s.step(silent, silent).events if e.type == "floor"] == ["floor"]
    resources.learned = False  # what the sidecar does at its second overload level
    try:
        steps = [s.step(c, silent) for c in say("Where is the castle?")]
        steps += [s.step(silent, silent) for _ in range(30)]  # the answer plays, then the NPC listens again
    finally:
        resources.learned = True
    events = [e for r in steps for e in r.events]
    assert any(e.type == "response" and e.topic == "directions" for e in events)
    start = next(i for i, r in enumerate(steps) if any(e.type == "speech_start" for e in r.events))
    end = next(i for i, r in enumerate(steps) if any(e.type == "speech_end" for e in r.events))
    # while the NPC listens the model is off (no floor events); while it speaks it runs, from a fresh window
    floors = [any(e.type == "floor" and e.p_player is not None for e in r.events) for r in steps]
    assert end - start > 5 and all(floors[start + 1 : end + 1])
    assert not any(floors[: start + 1]) and not any(floors[end + 1 :])
