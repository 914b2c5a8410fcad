"""Fuzz the wire protocol decoder and a live sidecar with hypothesis-generated messages.

``python -m npc_voice.bench.fuzz --decoder 50000 --live 20000`` runs the big version (the test suite
runs a few thousand decoder examples and a few hundred live messages). Live fuzzing sends one
message at a time from a raw socket that holds an open session, and checks each answer against what
the protocol promises: a typed reply, the right ``seq`` bookkeeping, never silence. Meanwhile a
well-behaved client streams on its own session; it must not notice anything.
"""

from __future__ import annotations

import argparse
import collections
import math
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field

import msgpack
import numpy as np
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npc_voice.audio.format import CHUNK_BYTES, CHUNK_SAMPLES, CHUNK_SECONDS
from npc_voice.transport import protocol as p
from npc_voice.transport.client import Reply, SidecarClient

FIELDS = ["session", "seq", "t_capture", "played", "state", "persona", "npc_id", "format", "clock", "events",
          "compute_ms", "t_sent", "sessions", "code", "message", "lost", "instance", "cue"]
WEIRD_NUMBERS = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 2**64 - 1, -(2**63), 0, -1])
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | WEIRD_NUMBERS
    | st.text(max_size=40) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8) | st.binary(max_size=4), inner,
                                                                max_size=5),
    max_leaves=20,
)
# a mic's cue: the valid kinds and nil (no cue), near misses, and any value of the wrong type
GOOD_CUES = st.sampled_from(p.CUE_KINDS)
BAD_CUES = st.sampled_from(["", "Greeting", "goodbye", "greeting ", "idle"]) | values.filter(
    lambda v: v is not None and v not in p.CUE_KINDS)
cues = st.one_of(GOOD_CUES, st.none(), BAD_CUES)
PCM_SIZES = st.sampled_from([CHUNK_BYTES, CHUNK_BYTES, 0, 1, CHUNK_BYTES - 1, CHUNK_BYTES + 1, 2 * CHUNK_BYTES])
payloads = st.lists(PCM_SIZES.map(lambda n: b"\x01\x00" * (n // 2) + b"\x00" * (n % 2)), max_size=3)


def _pack(header: object) -> bytes:
    return msgpack.packb(header, use_bin_type=True)


ANY_SESSION = st.text(max_size=140)


def headers(session: st.SearchStrategy = ANY_SESSION) -> st.SearchStrategy[dict]:
    """Maps that look like headers: a version, a type (mostly real), and any subset of real fields."""
    return st.fixed_dictionaries(
        # mostly a real version and type, so the fuzz reaches the field checks behind them
        {"v": st.one_of(st.just(1), st.just(1), st.just(1), values),
         "type": st.one_of(*[st.sampled_from([*p.MESSAGE_TYPES, "teleport"])] * 3, values)},
        optional={"session": session | values, **{f: values for f in FIELDS[1:]}, "cue": cues},
    )


def mic_headers() -> st.SearchStrategy[dict]:
    """Well-formed ``mic`` headers but for the optional fields, so the fuzz reaches the cue and state checks."""
    return st.fixed_dictionaries(
        {"v": st.just(1), "type": st.just("mic"), "session": st.text(max_size=8), "seq": st.integers(0, 2**31),
         "t_capture": st.floats(0, 1e6)},
        optional={"cue": cues, "state": st.dictionaries(st.text(max_size=6), values, max_size=3)},
    )


def frames() -> st.SearchStrategy[list[bytes]]:
    """Any ZeroMQ message a peer could send: garbage, non-map msgpack, header-like maps, bad payloads."""
    return st.one_of(
        st.lists(st.binary(max_size=300), max_size=4),
        st.tuples(values.map(_pack), payloads).map(lambda t: [t[0], *t[1]]),
        st.tuples(headers().map(_pack), payloads).map(lambda t: [t[0], *t[1]]),
        mic_headers().map(lambda h: [_pack(h), b"\x01\x00" * CHUNK_SAMPLES]),
    )


def fuzz_decoder(examples: int) -> collections.Counter[str]:
    """Decode ``examples`` generated messages; every one must decode or raise a known ``ProtocolError``."""
    outcomes: collections.Counter[str] = collections.Counter()

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(frames())
    def run(msg: list[bytes]) -> None:
        try:
            decoded = p.decode(msg)
        except p.ProtocolError as err:
            assert err.code in p.ERROR_CODES and err.message, err
            outcomes[err.code] += 1
            return
        again = p.decode(p.encode(decoded))  # whatever decodes re-encodes to the same message
        assert type(again) is type(decoded) and again.header() == decoded.header()
        outcomes[f"ok:{decoded.TYPE}"] += 1

    run()
    return outcomes


@dataclass
class LiveReport:
    """What live fuzzing sent and got back."""

    sent: int = 0
    outcomes: collections.Counter = field(default_factory=collections.Counter)
    violations: list[str] = field(default_factory=list)
    bystander_replies: int = 0
    bystander_errors: int = 0
    flood_sent: int = 0
    flood_outcomes: collections.Counter = field(default_factory=collections.Counter)


SESSION = "fuzz"


def _mic(seq: int, state: dict | None = None, played: bool = False, cue: object = None) -> list[bytes]:
    pcm = np.zeros(CHUNK_SAMPLES, np.int16)
    msg = p.MicChunk(session=SESSION, seq=seq, t_capture=0.0, pcm=pcm, played=pcm if played else None,
                     state=state or {}, cue=cue)  # type: ignore[arg-type]  # bad cues on purpose
    return p.encode(msg)


def live_messages() -> st.SearchStrategy[tuple[str, list[bytes], int | None]]:
    """(kind, frames, seq of a well-formed chunk for the fuzz session or None)."""
    seqs = st.integers(0, 40)
    good = seqs.map(lambda s: ("chunk", _mic(s), s))
    weird_state = st.tuples(seqs, st.dictionaries(st.text(max_size=6), values, max_size=4)).map(
        lambda t: ("state", _mic(t[0], t[1]), t[0]))
    cued = st.tuples(seqs, GOOD_CUES).map(lambda t: ("chunk", _mic(t[0], cue=t[1]), t[0]))
    bad_cue = st.tuples(seqs, BAD_CUES).map(lambda t: ("bad_cue", _mic(t[0], cue=t[1]), t[0]))
    return st.one_of(
        good, good, weird_state, cued, bad_cue,
        frames().filter(bool).map(lambda f: ("random", f, None)),  # ZeroMQ cannot send zero frames
        st.tuples(headers(st.sampled_from([SESSION, "ghost", ""])).map(_pack), payloads).map(
            lambda t: ("header", [t[0], *t[1]], None)),
    )


class _Bystander(threading.Thread):
    """Another game streaming normally on the same sidecar while the fuzzer works."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.client = SidecarClient(address)
        self.session = self.client.open_session(persona="blacksmith", npc_id="bystander")
        self.stop = threading.Event()
        self.replies = self.errors = 0

    def run(self) -> None:
        self.session.wait_opened(60)
        while not self.stop.is_set():
            self.session.send_mic(np.zeros(CHUNK_SAMPLES, np.int16))
            time.sleep(CHUNK_SECONDS)  # a microphone's pace: faster, a slow machine's queue drops its chunks
            for r in self.session.replies():
                if isinstance(r, Reply):
                    self.replies += 1
                else:
                    self.errors += 1

    def finish(self) -> None:
        self.stop.set()
        self.join(5)
        time.sleep(0.5)
        for r in self.session.replies():
            self.replies += isinstance(r, Reply)
            self.errors += not isinstance(r, Reply)
        self.client.close()


def fuzz_sidecar(address: str, examples: int, flood: int = 200) -> LiveReport:
    """Send ``examples`` generated messages one at a time, then a flood of ``flood`` chunks at once."""
    report = LiveReport()
    bystander = _Bystander(address)
    bystander.start()
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 30_000)
    sock.setsockopt(zmq.ROUTING_ID, uuid.uuid4().bytes)
    sock.connect(address)

    def ask(msg: list[bytes]) -> p.Message:
        sock.send_multipart(msg)
        try:
            return p.decode(sock.recv_multipart())
        except zmq.Again:
            raise AssertionError("the sidecar did not answer") from None

    last: list[int] = []  # highest seq the sidecar accepted for the fuzz session
    extra_sessions: set[str] = set()

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(live_messages())
    def run(item: tuple[str, list[bytes], int | None]) -> None:
        kind, msg, seq = item
        reply = ask(msg)
        report.sent += 1
        key = reply.code if isinstance(reply, p.Error) else reply.TYPE
        report.outcomes[f"{kind}->{key}"] += 1
        if isinstance(reply, p.Opened):
            extra_sessions.add(reply.session)
        if seq is None:  # a generated header may still be a valid chunk or close for the fuzz session
            if isinstance(reply, p.StepReply) and reply.session == SESSION:
                last[:] = [reply.seq]
            elif isinstance(reply, p.Closed) and reply.session == SESSION:
                reopen()
            return
        if (kind == "state" and isinstance(reply, p.Error) and reply.code == "bad_field"):
            return
        if kind == "bad_cue":  # refused whatever its seq, and the session's seq bookkeeping is untouched
            if not (isinstance(reply, p.Error) and reply.code == "bad_field" and "cue" in reply.message):
                report.violations.append(f"seq {seq} with a bad cue: expected bad_field, got {key}")
            return
        if last and seq <= last[0]:
            if not (isinstance(reply, p.Error) and reply.code == "seq_duplicate"):
                report.violations.append(f"seq {seq} after {last[0]}: expected seq_duplicate, got {key}")
        elif isinstance(reply, p.StepReply):
            want = seq - last[0] - 1 if last else 0
            if reply.seq != seq or reply.lost != want:
                report.violations.append(f"seq {seq}: step for {reply.seq} with lost={reply.lost}, want {want}")
            last[:] = [seq]
        elif not (isinstance(reply, p.Error) and reply.code == "internal"):
            report.violations.append(f"seq {seq}: expected a step, got {key}")
        if seq >= 30:  # keep the seq window small so duplicates and gaps both keep happening
            assert isinstance(ask(p.encode(p.CloseSession(session=SESSION))), p.Closed)
            reopen()

    def reopen() -> None:
        opened = ask(p.encode(p.OpenSession(session=SESSION, persona="blacksmith", npc_id="fuzz")))
        assert isinstance(opened, p.Opened), opened
        last.clear()

    try:
        reopen()
        run()
        # a flood: chunks as fast as the socket takes them; each gets one step or an `overloaded` error
        base = (last[0] + 1) if last else 0
        for i in range(flood):
            sock.send_multipart(_mic(base + i))
        answered: set[int] = set()
        while len(answered) < flood:
            reply = p.decode(sock.recv_multipart())
            key = reply.code if isinstance(reply, p.Error) else reply.TYPE
            report.flood_outcomes[key] += 1
            seq = getattr(reply, "seq", None)
            if seq is None or seq in answered:
                report.violations.append(f"flood: unexpected or repeated answer {key} seq={seq}")
                break
            answered.add(seq)
        report.flood_sent = flood
        alive = ask(p.encode(p.Ping(t_sent=1.0)))
        if not isinstance(alive, p.Pong):
            report.violations.append(f"after the flood a ping got {alive.TYPE}")
        for sid in [SESSION, *extra_sessions]:
            sock.send_multipart(p.encode(p.CloseSession(session=sid)))
    finally:
        sock.close(0)
        bystander.finish()
    report.bystander_replies, report.bystander_errors = bystander.replies, bystander.errors
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decoder", type=int, default=50_000, help="decoder examples")
    ap.add_argument("--live", type=int, default=20_000, help="messages sent to a live sidecar")
    ap.add_argument("--flood", type=int, default=1000, help="chunks sent at once at the end")
    args = ap.parse_args()
    t = time.monotonic()
    dec = fuzz_decoder(args.decoder)
    print(f"decoder: {sum(dec.values())} messages in {time.monotonic() - t:.1f} s; outcomes {dict(dec.most_common())}")
    if not args.live:
        return
    import torch

    from npc_voice.engine.resources import EngineResources
    from npc_voice.transport.server import Sidecar

    torch.set_num_threads(1)
    res = EngineResources()
    server = Sidecar(res, f"ipc://{tempfile.mkdtemp(prefix='npc-fuzz-')}/s.sock")
    with server.running() as address:
        t = time.monotonic()
        live = fuzz_sidecar(address, args.live, args.flood)
        print(f"live: {live.sent} messages + a flood of {live.flood_sent} in {time.monotonic() - t:.1f} s")
        print(f"  outcomes {dict(live.outcomes.most_common())}")
        print(f"  flood {dict(live.flood_outcomes)}")
        print(f"  bystander: {live.bystander_replies} replies, {live.bystander_errors} errors")
        print(f"  violations: {len(live.violations)} {live.violations[:5]}")
        print(f"  sidecar error replies by code: {dict(server.errors.most_common())}")
    res.close()


if __name__ == "__main__":
    main()
