"""Wire protocol v1: round trips, and a clear error for every kind of bad message."""

from __future__ import annotations

import math

import msgpack
import numpy as np
import pytest

from npc_voice.audio.format import CHUNK_SAMPLES
from npc_voice.transport import protocol as p


def chunk(value: int = 0) -> np.ndarray:
    return np.full(CHUNK_SAMPLES, value, np.int16)


def frames_with(header: dict, *payloads: bytes) -> list[bytes]:
    return [msgpack.packb(header), *payloads]


def test_mic_chunk_round_trip_keeps_audio_reference_and_state() -> None:
    msg = p.MicChunk(session="s1", seq=7, t_capture=1.5, pcm=chunk(3), played=chunk(-2), state={"mood": "ok"})
    back = p.decode(p.encode(msg))
    assert isinstance(back, p.MicChunk)
    assert (back.session, back.seq, back.t_capture, back.state) == ("s1", 7, 1.5, {"mood": "ok"})
    assert np.array_equal(back.pcm, chunk(3))
    assert back.played is not None and np.array_equal(back.played, chunk(-2))


def test_mic_chunk_without_reference() -> None:
    back = p.decode(p.encode(p.MicChunk(session="s", seq=0, t_capture=0.0, pcm=chunk(1))))
    assert isinstance(back, p.MicChunk) and back.played is None


@pytest.mark.parametrize(
    "msg",
    [
        p.OpenSession(session="s", persona="blacksmith", npc_id="smith", state={"quest": 2}),
        p.OpenSession(session="s", persona="blacksmith", npc_id="smith", floor=True),
        p.OpenSession(session="s", persona="blacksmith", npc_id="smith", floor=True, why=True, policy="cascade"),
        p.CloseSession(session="s"),
        p.Ping(t_sent=3.0),
        p.Opened(session="s", persona="blacksmith", npc_id="smith"),
        p.Closed(session="s"),
        p.Pong(t_sent=3.0, sessions=2),
        p.Error(session="s", code="bad_chunk", message="why", seq=4),
    ],
)
def test_control_messages_round_trip(msg: p.Message) -> None:
    assert p.decode(p.encode(msg)) == msg


def test_step_reply_round_trip_carries_events() -> None:
    reply = p.StepReply(session="s", seq=3, pcm=chunk(9), events=[{"type": "backchannel", "heard": "uh-huh"}],
                        compute_ms=4.5)
    back = p.decode(p.encode(reply))
    assert isinstance(back, p.StepReply)
    assert back.events == reply.events and back.compute_ms == 4.5 and np.array_equal(back.pcm, chunk(9))


def code_of(frames: list[bytes]) -> str:
    with pytest.raises(p.ProtocolError) as info:
        p.decode(frames)
    assert info.value.message  # every error explains itself
    return info.value.code


def test_garbage_is_malformed() -> None:
    assert code_of([b"\xc1\xff\x00garbage"]) == "malformed"
    assert code_of([msgpack.packb([1, 2, 3])]) == "malformed"
    assert code_of([]) == "malformed"


def test_unknown_type_and_version() -> None:
    assert code_of(frames_with({"v": 1, "type": "teleport"})) == "unknown_type"
    assert code_of(frames_with({"v": 99, "type": "ping"})) == "bad_version"


def test_wrong_chunk_length_is_rejected_with_sizes() -> None:
    header = {"v": 1, "type": "mic", "session": "s", "seq": 1, "t_capture": 0.0}
    with pytest.raises(p.ProtocolError) as info:
        p.decode(frames_with(header, b"\x00" * 100))
    assert info.value.code == "bad_chunk" and "100 bytes" in info.value.message and info.value.seq == 1


def test_missing_reference_frame_is_rejected() -> None:
    header = {"v": 1, "type": "mic", "session": "s", "seq": 1, "t_capture": 0.0, "played": True}
    assert code_of(frames_with(header, chunk().tobytes())) == "bad_chunk"


def test_wrong_sample_rate_is_rejected_on_open() -> None:
    header = {"v": 1, "type": "open", "session": "s", "persona": "blacksmith", "npc_id": "x",
              "format": {"rate": 44100, "channels": 1, "sample_format": "s16le", "chunk_samples": 3200}}
    assert code_of(frames_with(header)) == "bad_format"


def test_field_types_are_checked() -> None:
    assert code_of(frames_with({"v": 1, "type": "mic", "session": "s", "seq": "one", "t_capture": 0.0},
                               chunk().tobytes())) == "bad_field"
    assert code_of(frames_with({"v": 1, "type": "open", "session": "s", "npc_id": "x"})) == "missing_field"
    assert code_of(frames_with({"v": 1, "type": "open", "session": "s", "persona": "blacksmith", "npc_id": "x",
                                "floor": 1})) == "bad_field"


def test_an_open_without_floor_asks_for_no_floor_events() -> None:
    header = {"v": 1, "type": "open", "session": "s", "persona": "blacksmith", "npc_id": "x"}
    opened = p.decode(frames_with(header))
    assert opened.floor is False and opened.why is False and opened.policy == "rules"  # a 2026-12-01 client


def test_an_unknown_policy_is_a_bad_field_naming_the_known_ones() -> None:
    header = {"v": 1, "type": "open", "session": "s", "persona": "blacksmith", "npc_id": "x", "policy": "moshi"}
    with pytest.raises(p.ProtocolError) as err:
        p.decode(frames_with(header))
    assert err.value.code == "bad_field" and "'rules', 'duplex', 'cascade'" in str(err.value)
    assert code_of(frames_with({**header, "policy": 3})) == "bad_field"


def test_non_finite_state_is_rejected() -> None:
    header = {"v": 1, "type": "mic", "session": "s", "seq": 1, "t_capture": 0.0, "state": {"x": math.nan}}
    assert code_of(frames_with(header, chunk().tobytes())) == "bad_field"


def test_oversized_message_is_rejected() -> None:
    assert code_of([b"\x80", b"\x00" * (p.MAX_MESSAGE_BYTES + 1)]) == "too_large"


@pytest.mark.parametrize("cue", p.CUE_KINDS)
def test_mic_chunk_round_trip_carries_a_cue(cue: str) -> None:
    back = p.decode(p.encode(p.MicChunk(session="s", seq=2, t_capture=0.0, pcm=chunk(), cue=cue)))
    assert isinstance(back, p.MicChunk) and back.cue == cue


def test_mic_chunk_without_cue_leaves_it_out_of_the_header() -> None:
    msg = p.MicChunk(session="s", seq=2, t_capture=0.0, pcm=chunk())
    assert "cue" not in msgpack.unpackb(p.encode(msg)[0])
    assert p.decode(p.encode(msg)).cue is None
    nil = {"v": 1, "type": "mic", "session": "s", "seq": 1, "t_capture": 0.0, "cue": None}
    assert p.decode(frames_with(nil, chunk().tobytes())).cue is None  # nil reads as no cue


@pytest.mark.parametrize("cue", ["hello", "", "Greeting", 1, True, ["greeting"], b"greeting"])
def test_a_bad_cue_is_a_bad_field_naming_the_valid_kinds(cue: object) -> None:
    header = {"v": 1, "type": "mic", "session": "s", "seq": 5, "t_capture": 0.0, "cue": cue}
    with pytest.raises(p.ProtocolError) as info:
        p.decode([msgpack.packb(header, use_bin_type=True), chunk().tobytes()])
    err = info.value
    assert err.code == "bad_field" and err.seq == 5 and err.session == "s"
    assert "cue" in err.message and all(repr(k) in err.message for k in p.CUE_KINDS)


def test_non_finite_numbers_are_bad_fields() -> None:
    assert code_of(frames_with({"v": 1, "type": "ping", "t_sent": math.nan})) == "bad_field"
    assert code_of(frames_with({"v": 1, "type": "mic", "session": "s", "seq": 1, "t_capture": math.inf},
                               chunk().tobytes())) == "bad_field"
