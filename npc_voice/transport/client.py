"""Game-side client of the sidecar: non-blocking, background I/O, reconnecting.

The game thread never waits on the network: ``send_mic`` hands a chunk to the I/O thread and
returns; replies are collected with ``replies()`` (poll once per frame). One DEALER socket per
client carries any number of NPC sessions. ZeroMQ reconnects by itself; if the sidecar was
restarted and forgot a session, the client reopens it from what it holds (persona, NPC id, state).
``state`` tells the game what to show ("connecting", "connected", "reconnecting"); every session
counts what went missing on the way (``ClientSession.stats``). Queues are bounded: while the sidecar
is away the oldest outgoing audio is dropped, and a game that stops polling loses the oldest replies.
A cue (``ClientSession.cue``: the player came near or left) rides on the next chunk; if that chunk is
dropped or refused, the cue goes again on the one after, unless a newer cue replaced it.
An open refused for ``capacity`` (the sidecar is full or overloaded: "try later") is asked again after a
backoff of 1, 2, 4, then every 8 s, until it opens or the session is closed; ``error`` says why meanwhile.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq
import zmq.auth

from npc_voice import events as ev
from npc_voice.transport import protocol as p

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
DEAD_AFTER_S = 3.0
MAX_OUTBOX = 64
MAX_INBOX = 256  # replies (51 s of audio) kept for a game that stopped polling; the oldest go first
RETRY_OPEN_S = (1.0, 2.0, 4.0, 8.0)  # waits before asking again for a session refused for capacity


@dataclass(frozen=True)
class ClientCurve:
    """CURVE keys for a sidecar on a non-loopback address: this client's key pair and the sidecar's public key."""

    secret_file: Path  # this client's ``.key_secret`` file (its ``.key`` sits in the sidecar's clients folder)
    server_public_file: Path  # the sidecar's ``.key`` file


@dataclass
class SessionStats:
    """What one session went through on the wire; the game can show or log it."""

    sent: int = 0  # microphone chunks handed to the client
    replies: int = 0  # step replies delivered
    errors: collections.Counter = field(default_factory=collections.Counter)  # error replies by code
    missing_replies: int = 0  # chunks that got neither a step nor an error (lost on the way, or a restart)
    duplicate_replies: int = 0  # step replies for a seq already answered (dropped, never played twice)
    lost_chunks: int = 0  # chunks the sidecar saw missing before the ones it answered (its ``lost`` field)
    reopened: int = 0  # times the session was reopened on a restarted sidecar
    inbox_dropped: int = 0  # replies dropped because ``replies()`` was not called


@dataclass
class Reply:
    """One step reply as the game sees it; ``arrival`` is ``time.monotonic()`` on receipt."""

    seq: int
    pcm: np.ndarray
    events: list[ev.Event]
    compute_ms: float
    arrival: float


@dataclass
class ErrorReply:
    """An error the sidecar sent for this session (the session normally lives on)."""

    code: str
    message: str
    seq: int | None
    arrival: float


@dataclass
class _SessionInfo:
    persona: str
    npc_id: str
    state: dict[str, Any]
    clock: str
    floor: bool
    policy: str
    talk_mode: str = "open"
    inbox: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_INBOX))
    opened: threading.Event = field(default_factory=threading.Event)
    error: str | None = None
    refusals: int = 0  # capacity refusals of this open in a row
    retry_at: float | None = None  # when to ask again for a refused open (monotonic)
    stats: SessionStats = field(default_factory=SessionStats)
    last_step: int = -1  # highest seq answered by a step
    explained: set[int] = field(default_factory=set)  # seqs above last_step answered by an error
    reopening: bool = False  # an open was re-sent after a ``no_session`` and is not answered yet
    cue_lock: threading.Lock = field(default_factory=threading.Lock)
    cue: str | None = None  # waits for the next chunk
    cue_id: int = 0  # counts cues; only the latest one is ever sent again
    cues_sent: dict[int, tuple[int, str]] = field(default_factory=dict)  # seq -> (cue_id, cue) not yet stepped

    def set_cue(self, kind: str) -> None:
        with self.cue_lock:
            self.cue_id += 1
            self.cue = kind

    def take_cue(self, seq: int) -> str | None:
        """The cue for chunk ``seq``, if one waits; remembered until a step shows it was used."""
        with self.cue_lock:
            cue, self.cue = self.cue, None
            if cue is not None:
                self.cues_sent[seq] = (self.cue_id, cue)
            return cue

    def cue_failed(self, seqs: range) -> None:
        """These chunks were never stepped: their cue waits for the next chunk, if nothing newer came since."""
        with self.cue_lock:
            for seq in [s for s in self.cues_sent if s in seqs]:
                sent = self.cues_sent.pop(seq)
                if sent[0] == self.cue_id and self.cue is None:
                    self.cue = sent[1]

    def cue_used(self, seq: int) -> None:
        with self.cue_lock:
            for s in [s for s in self.cues_sent if s <= seq]:
                del self.cues_sent[s]

    def deliver(self, item: Reply | ErrorReply) -> None:
        if len(self.inbox) == self.inbox.maxlen:
            self.stats.inbox_dropped += 1
        self.inbox.append(item)

    def account_step(self, seq: int) -> bool:
        """Count the seqs skipped before this step; False for a reply to a seq already answered."""
        if seq <= self.last_step:
            self.stats.duplicate_replies += 1
            return False
        skipped = seq - self.last_step - 1
        self.stats.missing_replies += skipped - sum(1 for s in self.explained if s < seq)
        self.explained = {s for s in self.explained if s > seq}
        self.last_step = seq
        return True

    def account_error(self, seq: int | None) -> None:
        if seq is not None and seq > self.last_step and len(self.explained) < MAX_INBOX:
            self.explained.add(seq)

    def open_message(self, session: str) -> p.OpenSession:
        return p.OpenSession(
            session=session, persona=self.persona, npc_id=self.npc_id, state=self.state, clock=self.clock,
            floor=self.floor, policy=self.policy, why=self.floor,  # this client reads a floor event's rule
            talk_mode=self.talk_mode, held=True,  # this client drops queued audio on a ``held`` event
        )


class ClientSession:
    """One NPC conversation on a ``SidecarClient``."""

    def __init__(self, client: SidecarClient, session_id: str, info: _SessionInfo) -> None:
        self.client, self.id, self._info = client, session_id, info
        self._seq = itertools.count()

    @property
    def opened(self) -> bool:
        return self._info.opened.is_set()

    @property
    def error(self) -> str | None:
        """Why opening failed, if it did (for ``capacity`` the open is being retried; cleared once it opens)."""
        return self._info.error

    @property
    def stats(self) -> SessionStats:
        """Counters of what was sent, answered, missing or duplicated (updated by the I/O thread)."""
        return self._info.stats

    def wait_opened(self, timeout: float) -> bool:
        """Block until the sidecar confirmed the session (for tools and tests, not the game loop)."""
        return self._info.opened.wait(timeout)

    def cue(self, kind: str) -> None:
        """Tell the NPC the player just came within earshot (``"greeting"``) or left (``"farewell"``).

        Never blocks: the cue rides on the next ``send_mic``; of several cues before it only the latest
        counts (a player who came and went again needs no greeting).
        """
        if kind not in p.CUE_KINDS:
            raise ValueError(f"cue must be one of {', '.join(map(repr, p.CUE_KINDS))}; got {kind!r}")
        self._info.set_cue(kind)

    def send_mic(
        self,
        pcm: np.ndarray,
        played: np.ndarray | None = None,
        state: dict[str, Any] | None = None,
        t_capture: float | None = None,
        attention: dict[str, bool] | None = None,
        talking: bool | None = None,
    ) -> int:
        """Queue one 200 ms microphone chunk (and the echo reference); returns its sequence number.
        ``attention``: what the game knows now ({"in_earshot": ..., "facing": ...}); ``talking``: a push-to-talk
        session's key is held."""
        seq = next(self._seq)
        self._info.stats.sent += 1
        if state:
            self._info.state.update(state)
        msg = p.MicChunk(
            session=self.id,
            seq=seq,
            t_capture=time.monotonic() if t_capture is None else t_capture,
            pcm=pcm,
            played=played,
            state=dict(state or {}),
            cue=self._info.take_cue(seq),
            attention=attention,
            talking=talking,
        )
        self.client._post(msg)
        return seq

    def replies(self) -> list[Reply | ErrorReply]:
        """Everything that arrived for this session since the last call."""
        out = []
        while True:
            try:
                out.append(self._info.inbox.popleft())
            except IndexError:
                return out

    def close(self) -> None:
        self.client._post(p.CloseSession(session=self.id))
        self.client._forget(self.id)


class SidecarClient:
    """A connection to one sidecar; thread-safe; its I/O runs on a daemon thread."""

    def __init__(
        self, address: str = p.DEFAULT_ADDRESS, heartbeat_s: float = HEARTBEAT_S, curve: ClientCurve | None = None
    ) -> None:
        self.address = address
        self.curve = curve
        self.ctx = zmq.Context.instance()
        self._heartbeat_s = heartbeat_s
        self._outbox: queue.Queue[p.Message] = queue.Queue(maxsize=MAX_OUTBOX)
        self._sessions: dict[str, _SessionInfo] = {}
        self._lock = threading.Lock()
        self._wake_addr = f"inproc://npc-voice-client-{uuid.uuid4().hex}"
        self._wake_pull = self.ctx.socket(zmq.PULL)
        self._wake_pull.bind(self._wake_addr)
        self._wake_push = self.ctx.socket(zmq.PUSH)
        self._wake_push.setsockopt(zmq.LINGER, 0)
        self._wake_push.connect(self._wake_addr)
        self._stop = threading.Event()
        self.last_pong = 0.0
        self.dropped = 0
        self.reconnects = 0  # heartbeats came back after the sidecar was silent for DEAD_AFTER_S
        self.restarts = 0  # the sidecar answering is a new process: every session was reopened
        self._instance = ""
        self._thread = threading.Thread(target=self._run, name="npc-voice-client", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        """True while heartbeats come back."""
        return time.monotonic() - self.last_pong < DEAD_AFTER_S

    @property
    def state(self) -> str:
        """"connecting" (never heard the sidecar), "connected", or "reconnecting" (it went silent)."""
        if self.last_pong == 0.0:
            return "connecting"
        return "connected" if self.connected else "reconnecting"

    def open_session(
        self,
        *,
        persona: str,
        npc_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
        clock: str = "realtime",
        floor: bool = False,
        policy: str = "rules",
        talk_mode: str = "open",
    ) -> ClientSession:
        """Ask the sidecar for a session; returns at once (see ``ClientSession.opened``).

        ``clock="simulated"`` is for benches that send chunks faster than real time. ``floor=True`` asks for
        a ``floor`` event in every step (the duplex model's probabilities, the action and the rule that took
        it). ``policy``: the floor's strategy set, ``rules``, ``duplex`` or ``cascade``. ``talk_mode``: ``open``
        (an open microphone) or ``push_to_talk`` (only speech sent with ``talking=True`` is the player's).
        """
        sid = session_id or f"{npc_id}-{uuid.uuid4().hex[:8]}"
        info = _SessionInfo(persona=persona, npc_id=npc_id, state=dict(state or {}), clock=clock, floor=floor,
                            policy=policy, talk_mode=talk_mode)
        with self._lock:
            self._sessions[sid] = info
        self._post(info.open_message(sid))
        return ClientSession(self, sid, info)

    def close(self) -> None:
        """Close every session and stop the I/O thread."""
        with self._lock:
            sids = list(self._sessions)
        for sid in sids:
            self._post(p.CloseSession(session=sid))
        time.sleep(0.05)
        self._stop.set()
        self._wake()
        self._thread.join(2.0)

    # ------------------------------------------------------------------ internals

    def _forget(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def _wake(self) -> None:
        with self._lock, contextlib.suppress(zmq.Again):
            self._wake_push.send(b"", flags=zmq.NOBLOCK)

    def _post(self, msg: p.Message) -> None:
        try:
            self._outbox.put_nowait(msg)
        except queue.Full:
            self.dropped += 1  # the sidecar is unreachable; the newest audio matters more than the oldest
            try:
                self._unsent(self._outbox.get_nowait())
                self._outbox.put_nowait(msg)
            except (queue.Empty, queue.Full):
                self._unsent(msg)
        self._wake()

    def _unsent(self, msg: p.Message) -> None:
        """A message was dropped before it left: a cue it carried waits for the next chunk."""
        if isinstance(msg, p.MicChunk) and msg.cue is not None:
            with self._lock:
                info = self._sessions.get(msg.session)
            if info is not None:
                info.cue_failed(range(msg.seq, msg.seq + 1))

    def _run(self) -> None:
        dealer = self.ctx.socket(zmq.DEALER)
        # a fixed identity survives reconnects, so a network blip keeps the sidecar's sessions
        dealer.setsockopt(zmq.ROUTING_ID, uuid.uuid4().bytes)
        if self.curve is not None:
            public, secret = zmq.auth.load_certificate(str(self.curve.secret_file))
            server_public, _ = zmq.auth.load_certificate(str(self.curve.server_public_file))
            dealer.curve_secretkey = secret
            dealer.curve_publickey = public
            dealer.curve_serverkey = server_public
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.SNDHWM, 64)
        dealer.setsockopt(zmq.RCVHWM, 256)
        dealer.setsockopt(zmq.RECONNECT_IVL, 100)
        dealer.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        dealer.setsockopt(zmq.MAXMSGSIZE, p.MAX_MESSAGE_BYTES)
        dealer.connect(self.address)
        poller = zmq.Poller()
        poller.register(dealer, zmq.POLLIN)
        poller.register(self._wake_pull, zmq.POLLIN)
        next_ping = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_ping:
                    self._send(dealer, p.Ping(t_sent=now))
                    next_ping = now + self._heartbeat_s
                next_retry = self._retry_opens(dealer, now)
                events = dict(poller.poll(max(1, int((min(next_ping, next_retry) - now) * 1000))))
                if self._wake_pull in events:
                    while self._wake_pull.poll(0):
                        self._wake_pull.recv()
                    while True:
                        try:
                            self._send(dealer, self._outbox.get_nowait())
                        except queue.Empty:
                            break
                if dealer in events:
                    while dealer.poll(0):
                        self._receive(dealer.recv_multipart())
        finally:
            dealer.close(0)
            self._wake_pull.close(0)
            with self._lock:
                self._wake_push.close(0)

    def _send(self, dealer: zmq.Socket, msg: p.Message) -> None:
        try:
            dealer.send_multipart(p.encode(msg), flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            self._unsent(msg)

    def _receive(self, frames: list[bytes]) -> None:
        now = time.monotonic()
        try:
            msg = p.decode(frames)
        except p.ProtocolError as err:
            log.warning("bad message from sidecar: %s", err)
            return
        if isinstance(msg, p.Pong):
            self._on_pong(msg, now)
            return
        with self._lock:
            info = self._sessions.get(msg.session)
        if info is None:
            return
        if isinstance(msg, p.Opened):
            info.reopening = False
            info.error, info.refusals, info.retry_at = None, 0, None
            info.opened.set()
        elif isinstance(msg, p.StepReply):
            if not info.account_step(msg.seq):
                return
            info.stats.replies += 1
            info.stats.lost_chunks += msg.lost
            info.cue_failed(range(msg.seq - msg.lost, msg.seq))  # chunks the sidecar never saw
            info.cue_used(msg.seq)
            typed = []
            for raw in msg.events:
                try:
                    typed.append(ev.event_from_wire(raw))
                except (TypeError, ValueError) as exc:
                    log.warning("unknown event from sidecar: %s", exc)
            info.deliver(Reply(seq=msg.seq, pcm=msg.pcm, events=typed, compute_ms=msg.compute_ms, arrival=now))
        elif isinstance(msg, p.Error):
            info.stats.errors[msg.code] += 1
            info.account_error(msg.seq)
            if msg.seq is not None:
                info.cue_failed(range(msg.seq, msg.seq + 1))  # an error answers a chunk that was not stepped
            if msg.code == "no_session" and info.opened.is_set():
                # the sidecar restarted and forgot us: reopen from what we hold
                self._reopen(msg.session, info)
            elif msg.code == "session_exists" and not info.opened.is_set():
                # sessions are keyed by this client's identity, so it is ours: a reopen met the first open
                info.reopening = False
                info.opened.set()
            elif not info.opened.is_set() and msg.code in (
                "unknown_persona",
                "bad_persona",
                "capacity",
                "bad_format",
            ):
                info.error = f"{msg.code}: {msg.message}"
                if msg.code == "capacity":
                    info.retry_at = now + RETRY_OPEN_S[min(info.refusals, len(RETRY_OPEN_S) - 1)]
                    info.refusals += 1
            info.deliver(ErrorReply(code=msg.code, message=msg.message, seq=msg.seq, arrival=now))

    def _retry_opens(self, dealer: zmq.Socket, now: float) -> float:
        """Ask again for the opens refused for capacity whose wait is over; returns when the next one is due."""
        with self._lock:
            waiting = [(sid, info) for sid, info in self._sessions.items() if info.retry_at is not None]
        due = now + self._heartbeat_s
        for sid, info in waiting:  # retry_at is only set and cleared on this (the I/O) thread
            if info.retry_at <= now:
                info.retry_at = None
                self._send(dealer, info.open_message(sid))
            else:
                due = min(due, info.retry_at)
        return due

    def _reopen(self, sid: str, info: _SessionInfo) -> None:
        info.reopening = True
        info.opened.clear()
        info.stats.reopened += 1
        self._post(info.open_message(sid))

    def _on_pong(self, msg: p.Pong, now: float) -> None:
        if self.last_pong and now - self.last_pong >= DEAD_AFTER_S:
            self.reconnects += 1
        self.last_pong = now
        if msg.instance and msg.instance != self._instance:
            if self._instance:
                # a new sidecar process: it knows none of our sessions, so reopen them all now
                self.restarts += 1
                with self._lock:
                    sessions = list(self._sessions.items())
                log.warning("sidecar restarted; reopening %d session(s)", len(sessions))
                for sid, info in sessions:
                    if not info.reopening:  # a no_session from the new sidecar may have beaten this pong
                        self._reopen(sid, info)
            self._instance = msg.instance
