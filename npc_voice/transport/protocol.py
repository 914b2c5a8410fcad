"""Wire protocol v1: a msgpack header frame, then raw PCM frames. See docs/protocol.md.

Messages are typed, keyword-only dataclasses (pipecat's frame style). ``encode`` turns one into
ZeroMQ frames; ``decode`` turns frames back into a message or raises ``ProtocolError`` with a code
and a sentence a developer can act on. The decoder never trusts sizes or types from the peer.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack
import numpy as np

from npc_voice.audio.format import CHUNK_BYTES, CHUNK_SAMPLES, SAMPLE_FORMAT, SAMPLE_RATE
from npc_voice.floor.strategies import STRATEGIES

PROTOCOL_VERSION = 1
DEFAULT_ADDRESS = "tcp://127.0.0.1:5571"
MAX_HEADER_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 256 * 1024
MAX_STATE_ITEMS = 256
# what a ``mic`` message's optional ``cue`` may say: the player just came within earshot, or just left
CUE_KINDS = ("greeting", "farewell")
# an ``open`` message's ``talk_mode``: an open microphone (the engine tells the player's speech from the rest
# itself), or push-to-talk (only speech while the ``mic`` message's ``talking`` is true is the player's)
TALK_MODES = ("open", "push_to_talk")
# what a ``mic`` message's optional ``attention`` may say (each true or false; absent: not known)
ATTENTION_KEYS = ("in_earshot", "facing")
# every ``error.code`` the sidecar sends (docs/protocol.md explains each)
ERROR_CODES = frozenset({
    "malformed", "too_large", "bad_version", "unknown_type", "unexpected", "missing_field", "bad_field",
    "bad_chunk", "bad_format", "unknown_persona", "bad_persona", "session_exists", "capacity", "no_session",
    "overloaded", "seq_duplicate", "internal",
})


class ProtocolError(ValueError):
    """A message the sidecar (or client) cannot accept; ``code`` is stable, ``message`` explains."""

    def __init__(
        self, code: str, message: str, *, session: str | None = None, seq: int | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.session, self.seq = code, message, session, seq


@dataclass(frozen=True, kw_only=True)
class AudioFormat:
    """The PCM format of a session; v1 accepts exactly one."""

    rate: int = SAMPLE_RATE
    channels: int = 1
    sample_format: str = SAMPLE_FORMAT
    chunk_samples: int = CHUNK_SAMPLES


@dataclass(frozen=True, kw_only=True)
class Message:
    """Base of all wire messages."""

    TYPE: ClassVar[str] = ""
    session: str = ""

    def header(self) -> dict[str, Any]:
        out = {"v": PROTOCOL_VERSION, "type": self.TYPE}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                continue
            if dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            out[f.name] = value
        return out

    def payloads(self) -> list[bytes]:
        return []


# --- client to sidecar -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OpenSession(Message):
    """Start a conversation with one NPC; the sidecar answers ``Opened`` or ``Error``."""

    TYPE: ClassVar[str] = "open"
    persona: str
    npc_id: str
    format: AudioFormat = field(default_factory=AudioFormat)
    state: dict[str, Any] = field(default_factory=dict)
    # "realtime": chunks come every 200 ms and look-ahead work runs beside them. "simulated": a bench
    # sends chunks as fast as it gets replies, so look-ahead work is waited for and charged to the step.
    clock: str = "realtime"
    # True: every step carries a ``floor`` event (the model's probabilities and the action). Opt-in, so a
    # v1 client that predates the event never receives it.
    floor: bool = False
    # The floor's strategy set: "rules" (default), "duplex" or "cascade" (npc_voice/floor/strategies.py).
    policy: str = "rules"
    # True: ``floor`` events also say which rule decided and why (``rule``, ``why``). Opt-in for the same
    # reason as ``floor``: a client of revision 2026-12-01 rejects fields it does not know.
    why: bool = False
    talk_mode: str = "open"  # one of ``TALK_MODES``
    # True: this client drops its queued NPC audio on a ``held`` event (the NPC pauses its line when the player
    # talks over it). Opt-in: a client of an earlier revision rejects events it does not know.
    held: bool = False


@dataclass(frozen=True, kw_only=True)
class CloseSession(Message):
    """End a conversation; the sidecar frees its state and answers ``Closed``."""

    TYPE: ClassVar[str] = "close"


@dataclass(frozen=True, kw_only=True, eq=False)
class MicChunk(Message):
    """200 ms of player microphone, what the loudspeaker played meanwhile, and the NPC's game state.

    ``played`` is the echo reference: the NPC audio the client's speaker emitted during the same
    capture interval, sample-aligned with ``pcm`` (``None`` when the client cannot know it).
    ``cue`` is one of ``CUE_KINDS`` when the game saw the player come within earshot or leave it
    since the last chunk, so the NPC can greet them or say goodbye; it rides on audio because the
    engine only acts inside a step.
    """

    TYPE: ClassVar[str] = "mic"
    seq: int
    t_capture: float
    pcm: np.ndarray
    played: np.ndarray | None = None
    state: dict[str, Any] = field(default_factory=dict)
    cue: str | None = None
    # What the game knows of the player and this NPC now: {"in_earshot": bool, "facing": bool} (either may be
    # left out). Speech while the player is out of earshot or not facing the NPC is not answered.
    attention: dict[str, bool] | None = None
    talking: bool | None = None  # push-to-talk: the key is held in this chunk

    def header(self) -> dict[str, Any]:
        out = super().header()
        out["played"] = self.played is not None
        for name in ("cue", "attention", "talking"):
            if out[name] is None:
                del out[name]  # absent means not said: the header stays what a revision-1 sidecar expects
        return out

    def payloads(self) -> list[bytes]:
        frames = [np.ascontiguousarray(self.pcm, dtype="<i2").tobytes()]
        if self.played is not None:
            frames.append(np.ascontiguousarray(self.played, dtype="<i2").tobytes())
        return frames


@dataclass(frozen=True, kw_only=True)
class Ping(Message):
    """Heartbeat from the client; the sidecar answers ``Pong`` at once."""

    TYPE: ClassVar[str] = "ping"
    t_sent: float = 0.0


# --- sidecar to client -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Opened(Message):
    """The session exists; the client may stream microphone chunks."""

    TYPE: ClassVar[str] = "opened"
    persona: str
    npc_id: str
    protocol: int = PROTOCOL_VERSION
    format: AudioFormat = field(default_factory=AudioFormat)


@dataclass(frozen=True, kw_only=True, eq=False)
class StepReply(Message):
    """The one reply to a ``MicChunk``: the next 200 ms of NPC audio and this step's events."""

    TYPE: ClassVar[str] = "step"
    seq: int
    pcm: np.ndarray
    events: list[dict[str, Any]] = field(default_factory=list)
    compute_ms: float = 0.0
    # mic chunks of this session that never reached the sidecar just before this one (a seq gap)
    lost: int = 0

    def payloads(self) -> list[bytes]:
        return [np.ascontiguousarray(self.pcm, dtype="<i2").tobytes()]


@dataclass(frozen=True, kw_only=True)
class Closed(Message):
    """The session is gone."""

    TYPE: ClassVar[str] = "closed"


@dataclass(frozen=True, kw_only=True)
class Pong(Message):
    """Heartbeat answer, with the sidecar's load so the client can tell a live but busy sidecar."""

    TYPE: ClassVar[str] = "pong"
    t_sent: float = 0.0
    sessions: int = 0
    # changes when the sidecar restarts: the client then knows its sessions are gone and reopens them
    instance: str = ""


@dataclass(frozen=True, kw_only=True)
class Error(Message):
    """The request was refused; the session (if any) lives on unless ``code`` says otherwise."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    seq: int | None = None


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (OpenSession, CloseSession, MicChunk, Ping, Opened, StepReply, Closed, Pong, Error)
}


def encode(msg: Message) -> list[bytes]:
    """ZeroMQ frames for a message: msgpack header, then PCM payloads."""
    return [msgpack.packb(msg.header(), use_bin_type=True), *msg.payloads()]


def _unpack_header(frame: bytes) -> dict[str, Any]:
    if len(frame) > MAX_HEADER_BYTES:
        raise ProtocolError("too_large", f"header is {len(frame)} bytes; the limit is {MAX_HEADER_BYTES}")
    try:
        header = msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise ProtocolError("malformed", f"header frame is not valid msgpack ({type(exc).__name__})") from exc
    if not isinstance(header, dict):
        raise ProtocolError("malformed", f"header must be a msgpack map, got {type(header).__name__}")
    return header


def _pcm(frame: bytes, what: str, session: str, seq: int | None) -> np.ndarray:
    if len(frame) != CHUNK_BYTES:
        raise ProtocolError(
            "bad_chunk",
            f"{what} has {len(frame)} bytes; a chunk is {CHUNK_SAMPLES} samples of "
            f"16-bit mono at {SAMPLE_RATE} Hz = {CHUNK_BYTES} bytes",
            session=session,
            seq=seq,
        )
    return np.frombuffer(frame, dtype="<i2").astype(np.int16)


def _check_state(state: Any, session: str, seq: int | None) -> dict[str, Any]:
    """Game state is free-form but must be a small map of plain values with finite numbers."""
    if not isinstance(state, dict):
        raise ProtocolError(
            "bad_field", f"state must be a map, got {type(state).__name__}", session=session, seq=seq
        )
    if len(state) > MAX_STATE_ITEMS:
        raise ProtocolError(
            "bad_field",
            f"state has {len(state)} keys; the limit is {MAX_STATE_ITEMS}",
            session=session,
            seq=seq,
        )

    def ok(v: Any, depth: int) -> bool:
        if isinstance(v, float):
            return math.isfinite(v)
        if isinstance(v, bool | int | str) or v is None:
            return True
        if depth > 4:
            return False
        if isinstance(v, list):
            return all(ok(x, depth + 1) for x in v)
        if isinstance(v, dict):
            return all(isinstance(k, str) and ok(x, depth + 1) for k, x in v.items())
        return False

    for k, v in state.items():
        if not ok(v, 0):
            raise ProtocolError(
                "bad_field",
                f"state[{k!r}] holds a non-finite number, bytes or is nested too deep",
                session=session,
                seq=seq,
            )
    return state


def _field(
    header: dict[str, Any],
    name: str,
    kind: type | tuple[type, ...],
    session: str = "",
    required: bool = True,
    default: Any = None,
) -> Any:
    if name not in header:
        if required:
            raise ProtocolError(
                "missing_field", f"'{header.get('type')}' needs field '{name}'", session=session
            )
        return default
    value = header[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float, (int, float))):
        want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ProtocolError(
            "bad_field", f"field '{name}' must be {want}, got {type(value).__name__}", session=session
        )
    if isinstance(value, float) and not math.isfinite(value):  # a NaN time is garbage, and never equal to itself
        raise ProtocolError("bad_field", f"field '{name}' must be a finite number, got {value}", session=session)
    return value


def _clock(value: str, session: str) -> str:
    if value not in ("realtime", "simulated"):
        raise ProtocolError("bad_field", f"clock must be 'realtime' or 'simulated', got {value!r}", session=session)
    return value


def _policy(value: str, session: str) -> str:
    if value not in STRATEGIES:
        known = ", ".join(repr(k) for k in STRATEGIES)
        raise ProtocolError("bad_field", f"policy must be one of {known}; got {value[:40]!r}", session=session)
    return value


def _cue(header: dict[str, Any], session: str, seq: int) -> str | None:
    """The optional ``cue`` of a ``mic``: absent or nil is none; anything else must be a known kind."""
    value = header.get("cue")
    if value is None:
        return None
    kinds = ", ".join(repr(k) for k in CUE_KINDS)
    if not isinstance(value, str):
        raise ProtocolError(
            "bad_field", f"cue must be a string, one of {kinds}; got {type(value).__name__}", session=session, seq=seq
        )
    if value not in CUE_KINDS:
        raise ProtocolError(
            "bad_field", f"cue must be one of {kinds}; got {value[:40]!r}", session=session, seq=seq
        )
    return value


def _attention(header: dict[str, Any], session: str, seq: int) -> dict[str, bool] | None:
    """A ``mic``'s optional ``attention``: absent or nil is not known; else ``ATTENTION_KEYS`` to bools."""
    value = header.get("attention")
    if value is None:
        return None
    keys = ", ".join(ATTENTION_KEYS)
    if not isinstance(value, dict) or any(k not in ATTENTION_KEYS or not isinstance(v, bool) for k, v in value.items()):
        raise ProtocolError("bad_field", f"attention must be a map of {keys} to true/false; got {str(value)[:60]}",
                            session=session, seq=seq)
    return dict(value)


def _talk_mode(value: str, session: str) -> str:
    if value not in TALK_MODES:
        known = ", ".join(repr(k) for k in TALK_MODES)
        raise ProtocolError("bad_field", f"talk_mode must be one of {known}; got {value[:40]!r}", session=session)
    return value


def decode(frames: list[bytes]) -> Message:
    """Parse ZeroMQ frames into a typed message, or raise ``ProtocolError``."""
    if not frames:
        raise ProtocolError("malformed", "empty message")
    if sum(len(f) for f in frames) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"message exceeds {MAX_MESSAGE_BYTES} bytes")
    header = _unpack_header(frames[0])
    version = header.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            "bad_version", f"protocol version {version!r} not supported; this side speaks v{PROTOCOL_VERSION}"
        )
    mtype = header.get("type")
    cls = MESSAGE_TYPES.get(mtype) if isinstance(mtype, str) else None
    if cls is None:
        raise ProtocolError(
            "unknown_type", f"unknown message type {mtype!r}; known: {', '.join(MESSAGE_TYPES)}"
        )
    session = _field(header, "session", str, required=False, default="")
    if len(session) > 128:
        raise ProtocolError("bad_field", "session id longer than 128 characters")
    payloads = frames[1:]
    if cls is MicChunk:
        seq = _field(header, "seq", int, session)
        if seq < 0:
            raise ProtocolError("bad_field", f"seq must be >= 0, got {seq}", session=session)
        t_capture = _field(header, "t_capture", (int, float), session)
        has_played = _field(header, "played", bool, session, required=False, default=False)
        want = 2 if has_played else 1
        if len(payloads) != want:
            raise ProtocolError(
                "bad_chunk",
                f"mic message needs {want} PCM frame(s), got {len(payloads)}",
                session=session,
                seq=seq,
            )
        return MicChunk(
            session=session,
            seq=seq,
            t_capture=float(t_capture),
            pcm=_pcm(payloads[0], "microphone frame", session, seq),
            played=_pcm(payloads[1], "played (echo reference) frame", session, seq) if has_played else None,
            state=_check_state(header.get("state", {}), session, seq),
            cue=_cue(header, session, seq),
            attention=_attention(header, session, seq),
            talking=_field(header, "talking", bool, session, required=False, default=None),
        )
    if cls is StepReply:
        seq = _field(header, "seq", int, session)
        if len(payloads) != 1:
            raise ProtocolError("bad_chunk", "step reply needs one PCM frame", session=session, seq=seq)
        events = _field(header, "events", list, session, required=False, default=[])
        return StepReply(
            session=session,
            seq=seq,
            pcm=_pcm(payloads[0], "NPC audio frame", session, seq),
            events=events,
            compute_ms=float(
                _field(header, "compute_ms", (int, float), session, required=False, default=0.0)
            ),
            lost=_field(header, "lost", int, session, required=False, default=0),
        )
    if payloads:
        raise ProtocolError(
            "malformed", f"'{mtype}' carries no payload frames, got {len(payloads)}", session=session
        )
    if cls is OpenSession:
        fmt = _field(header, "format", dict, session, required=False, default={})
        try:
            audio = AudioFormat(**fmt)
        except TypeError as exc:
            raise ProtocolError("bad_format", f"format has unknown fields: {exc}", session=session) from exc
        if audio != AudioFormat():
            raise ProtocolError(
                "bad_format",
                f"audio format {dataclasses.asdict(audio)} not supported; v1 needs "
                f"{dataclasses.asdict(AudioFormat())}",
                session=session,
            )
        if not session:
            raise ProtocolError("missing_field", "'open' needs a non-empty 'session' id")
        return OpenSession(
            session=session,
            persona=_field(header, "persona", str, session),
            npc_id=_field(header, "npc_id", str, session),
            format=audio,
            state=_check_state(header.get("state", {}), session, None),
            clock=_clock(_field(header, "clock", str, session, required=False, default="realtime"), session),
            floor=_field(header, "floor", bool, session, required=False, default=False),
            policy=_policy(_field(header, "policy", str, session, required=False, default="rules"), session),
            why=_field(header, "why", bool, session, required=False, default=False),
            talk_mode=_talk_mode(_field(header, "talk_mode", str, session, required=False, default="open"), session),
            held=_field(header, "held", bool, session, required=False, default=False),
        )
    if cls is Opened:
        return Opened(
            session=session,
            persona=_field(header, "persona", str, session),
            npc_id=_field(header, "npc_id", str, session),
        )
    if cls is Ping:
        return Ping(
            session=session, t_sent=float(_field(header, "t_sent", (int, float), session, False, 0.0))
        )
    if cls is Pong:
        return Pong(
            session=session,
            t_sent=float(_field(header, "t_sent", (int, float), session, False, 0.0)),
            sessions=int(_field(header, "sessions", int, session, False, 0)),
            instance=_field(header, "instance", str, session, False, ""),
        )
    if cls is Error:
        seq = header.get("seq")
        return Error(
            session=session,
            code=_field(header, "code", str, session),
            message=_field(header, "message", str, session),
            seq=seq if isinstance(seq, int) else None,
        )
    return cls(session=session)
