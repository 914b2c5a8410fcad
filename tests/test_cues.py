"""Greeting and farewell cues from the game to the NPC, and the barks that come back.

The client and hub tests talk to a scripted ROUTER peer over a real socket: it speaks the real
protocol and answers what a test needs (a refused chunk, a chunk that never arrived), which a real
sidecar cannot be made to do on cue. The last test runs the whole path through the real sidecar.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pygame
import pytest
import zmq

from npc_voice import events as ev
from npc_voice.audio.format import CHUNK_SAMPLES
from npc_voice.game import NPCVoice, VoiceHub
from npc_voice.game import events as ge
from npc_voice.game.animation import Animator
from npc_voice.transport import protocol as p
from npc_voice.transport.client import ClientSession, ErrorReply, Reply, SidecarClient

SILENCE = np.zeros(CHUNK_SAMPLES, np.int16)


class Peer:
    """The sidecar's side of the socket, driven by the test: receive what the client sent, answer as told."""

    def __init__(self, folder: Path) -> None:
        self.address = f"ipc://{folder}/{uuid.uuid4().hex[:8]}.sock"
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(self.address)
        self.identity = b""

    def expect(self, kind: type[p.Message], timeout: float = 5.0) -> p.Message:
        """The next message of ``kind`` (heartbeats are answered, other kinds skipped)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.sock.poll(50):
                continue
            identity, *frames = self.sock.recv_multipart()
            self.identity = identity
            msg = p.decode(frames)
            if isinstance(msg, p.Ping):
                self.send(p.Pong(t_sent=msg.t_sent, instance="peer"))
            elif isinstance(msg, kind):
                return msg
        raise AssertionError(f"no {kind.TYPE} within {timeout} s")

    def send(self, msg: p.Message) -> None:
        self.sock.send_multipart([self.identity, *p.encode(msg)])

    def open(self, session: ClientSession) -> None:
        opened = self.expect(p.OpenSession)
        assert isinstance(opened, p.OpenSession)
        self.send(p.Opened(session=opened.session, persona=opened.persona, npc_id=opened.npc_id))
        assert session.wait_opened(5)

    def mic(self) -> p.MicChunk:
        msg = self.expect(p.MicChunk)
        assert isinstance(msg, p.MicChunk)
        return msg

    def step(self, msg: p.MicChunk, lost: int = 0) -> None:
        self.send(p.StepReply(session=msg.session, seq=msg.seq, pcm=SILENCE, lost=lost))

    def close(self) -> None:
        self.sock.close(0)


@pytest.fixture()
def peer(tmp_path: Path) -> Iterator[Peer]:
    peer = Peer(tmp_path)
    yield peer
    peer.close()


@pytest.fixture()
def session(peer: Peer) -> Iterator[ClientSession]:
    client = SidecarClient(peer.address)
    s = client.open_session(persona="blacksmith", npc_id="smith")
    peer.open(s)
    yield s
    client.close()


def wait_reply(s: ClientSession, kind: type, timeout: float = 5.0) -> Reply | ErrorReply:
    """Block until the client delivered a reply of ``kind`` (so its bookkeeping is done)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for r in s.replies():
            if isinstance(r, kind):
                return r
        time.sleep(0.01)
    raise AssertionError(f"no {kind.__name__} within {timeout} s")


def test_the_latest_cue_rides_on_the_next_chunk_only(peer: Peer, session: ClientSession) -> None:
    with pytest.raises(ValueError, match="'greeting', 'farewell'"):
        session.cue("hello")
    session.send_mic(SILENCE)
    assert peer.mic().cue is None
    session.cue("greeting")
    session.cue("farewell")  # came and went before the next chunk: only the farewell counts
    session.send_mic(SILENCE)
    session.send_mic(SILENCE)
    assert [peer.mic().cue, peer.mic().cue] == ["farewell", None]


def test_a_cue_on_a_chunk_that_was_not_stepped_goes_again(peer: Peer, session: ClientSession) -> None:
    session.cue("greeting")
    session.send_mic(SILENCE)
    refused = peer.mic()
    assert refused.cue == "greeting"
    peer.send(p.Error(session=refused.session, code="overloaded", message="dropped", seq=refused.seq))
    wait_reply(session, ErrorReply)
    session.send_mic(SILENCE)
    again = peer.mic()
    assert again.cue == "greeting"  # the refused chunk's cue went on the next one
    peer.step(again)
    wait_reply(session, Reply)
    session.send_mic(SILENCE)
    plain = peer.mic()
    assert plain.cue is None  # stepped once: never sent twice
    peer.step(plain)
    wait_reply(session, Reply)

    # a chunk the sidecar never saw (its next step says ``lost``) loses no cue either
    session.cue("farewell")
    session.send_mic(SILENCE)
    vanished = peer.mic()
    session.send_mic(SILENCE)
    later = peer.mic()
    assert (vanished.cue, later.cue) == ("farewell", None)
    peer.step(later, lost=1)
    wait_reply(session, Reply)
    session.send_mic(SILENCE)
    assert peer.mic().cue == "farewell"


def test_a_failed_cue_never_replaces_a_newer_one(peer: Peer, session: ClientSession) -> None:
    session.cue("greeting")
    session.send_mic(SILENCE)
    first = peer.mic()
    session.cue("farewell")  # the player already left again
    peer.send(p.Error(session=first.session, code="internal", message="step failed", seq=first.seq))
    wait_reply(session, ErrorReply)
    session.send_mic(SILENCE)
    session.send_mic(SILENCE)
    assert [peer.mic().cue, peer.mic().cue] == ["farewell", None]


def test_the_hub_cues_greeting_on_entering_earshot_and_farewell_on_leaving(peer: Peer) -> None:
    hub = VoiceHub(peer.address, audio="silent")
    try:
        link = hub.attach("smith", "blacksmith")
        link.position, link.radius = (0.0, 0.0), 200.0
        hub.listen_from((100.0, 0.0))  # in earshot, but the session is not open yet: no greeting to nobody
        peer.open(link.session)
        cues = []

        def walk(x: float) -> None:
            hub.listen_from((x, 0.0))
            # two chunks: the second was surely made after the move (a cue never waits longer than one)
            cues.extend(peer.mic().cue for _ in range(2))

        # in at 0.6 r, out past 0.75 r; between the two nothing changes (someone standing on the edge)
        for x in (100.0, 130.0, 110.0, 140.0, 160.0, 130.0, 145.0, 115.0):
            walk(x)
        walk(5000.0)  # gone at once, far out of range: the farewell still gets its chunk
        assert [c for c in cues if c] == ["greeting", "farewell", "greeting", "farewell"]
    finally:
        hub.close()


def test_every_engine_event_has_a_pygame_type() -> None:
    assert set(ge.BY_KIND) == set(ev.EVENT_TYPES)  # else the hub could not post it
    bark = ev.Bark(offset=0.1, kind="greeting", line_id="smith-3", text="Mind the sparks!")
    event = ge.to_pygame("smith", 10.0, bark)
    assert event.type == ge.NPC_BARK and (event.kind, event.line_id, event.text) == ("greeting", "smith-3",
                                                                                       "Mind the sparks!")
    assert event.t == pytest.approx(10.1) and event.voice_event is bark


def test_the_npcs_own_mm_hm_nods_and_shows_in_the_bubble() -> None:
    animator = Animator()
    bark = ev.Bark(offset=0.0, kind="backchannel", line_id="h-4", text="Mm.")
    animator.handle(ge.to_pygame("herbalist", 100.0, bark))
    animator.handle(ge.to_pygame("herbalist", 100.0, ev.Words(offset=0.0, words=[(0.05, "Mm.")])))
    pose = animator.update(0.016, 100.3)
    assert pose.body == "nodding" and pose.subtitle == "Mm." and not pose.speaking
    assert animator.update(0.016, 102.0).subtitle == ""  # a short aside, not a held line


def test_the_npc_leans_in_as_the_model_expects_the_turn_to_end() -> None:
    animator = Animator()

    def floor(t: float, action: str, p_yield: float, soon: float) -> None:
        event = ev.Floor(action=action, p_yield=p_yield, p_yield_soon=soon, p_player=0.9)
        animator.handle(ge.to_pygame("smith", t, event))

    floor(100.0, "listen", 0.02, 0.05)  # the player is mid-sentence
    calm = animator.update(0.2, 100.2, listening=True).anticipation
    floor(100.2, "listen", 0.1, 0.9)  # their last words are ending
    for i in range(5):
        eager = animator.update(0.1, 100.3 + i * 0.1, listening=True).anticipation
    assert calm < 0.1 < 0.7 < eager
    floor(100.8, "respond", 0.95, 0.9)  # the NPC takes the turn: no more leaning in
    animator.handle(ge.to_pygame("smith", 100.8, ev.SpeechStart(offset=0.0, line_id="l1", text="Aye.")))
    for i in range(5):
        speaking = animator.update(0.1, 100.9 + i * 0.1).anticipation
    assert speaking < 0.1


def run_until(npc: NPCVoice, hub: VoiceHub, player: tuple[float, float], seconds: float, until) -> list:
    """The game loop with the player at ``player`` until ``until(barks so far)``; returns this NPC's barks."""
    seen = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for event in pygame.event.get():
            if npc.process_events(event) and event.type == ge.NPC_BARK:
                seen.append(event)
        hub.listen_from(player)
        npc.update(0.016)
        if until(seen):
            break
        time.sleep(0.016)
    return seen


def test_walking_up_and_away_makes_the_npc_greet_and_see_off_through_the_sidecar(sidecar: str) -> None:
    pygame.init()
    hub = VoiceHub(sidecar, audio="silent")
    npc = NPCVoice(hub, "herbalist", "herbalist", position=(0.0, 0.0), hearing_radius=200.0)
    far, near = (400.0, 0.0), (60.0, 0.0)
    barks: list = []
    try:
        run_until(npc, hub, far, 30, lambda _: npc.ready)
        assert npc.ready
        for _ in range(4):  # a greeting is likely, not certain (0.9 for her): come back until she greets
            got = run_until(npc, hub, near, 8, lambda s: any(e.kind == "greeting" for e in s))
            barks += got
            if got:  # the greeting's words show in her bubble as she says them, like any line
                first_word = got[-1].text.split()[0]
                run_until(npc, hub, near, 8, lambda _, w=first_word: w in npc.pose.subtitle)
                assert first_word in npc.pose.subtitle
            run_until(npc, hub, near, 10, lambda _: not npc.speaking)  # a farewell does not cut her greeting
            barks += run_until(npc, hub, far, 8, lambda s: any(e.kind == "farewell" for e in s))
            if any(e.kind == "greeting" for e in barks):
                break
    finally:
        npc.close()
        hub.close()
    kinds = [e.kind for e in barks]
    assert "greeting" in kinds and "farewell" in kinds, kinds
    texts = {e.kind: e.text for e in barks}
    assert texts["greeting"] == "Is that a visitor? Come in, come in!"  # her persona's line (no injury)
    assert texts["farewell"] == "Mind the roots on the path!"
