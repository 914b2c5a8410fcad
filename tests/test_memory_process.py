"""Memory through a real sidecar process: the player is remembered across a kill -9 in the middle of an answer (at
most the turn being answered is lost, the file is sound), and a new sidecar on the same file answers from it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from npc_voice import events as ev
from npc_voice.audio.format import CHUNK_SAMPLES
from npc_voice.memory import MemoryStore
from npc_voice.speech.tts import Synthesizer, VoiceSettings
from npc_voice.transport.client import ClientSession, Reply, SidecarClient
from npc_voice.transport.process import SidecarProcess

PLAYER = VoiceSettings(voice="en-us+f3", pitch=60, rate=160)
STATE = {"has_longsword": False, "gold": 100, "open_offer": "none"}


def spoken(text: str, quiet_s: float = 4.0) -> list[np.ndarray]:
    audio = (Synthesizer().synthesize(text, PLAYER).audio.astype(np.float32) * 0.5).astype(np.int16)
    full = np.concatenate([np.zeros(3200, np.int16), audio, np.zeros(int(16000 * quiet_s), np.int16)])
    return list(np.pad(full, (0, -len(full) % CHUNK_SAMPLES)).reshape(-1, CHUNK_SAMPLES))


def converse(session: ClientSession, chunks: list[np.ndarray],
             until: Callable[[list[ev.Event]], bool] = lambda events: False, timeout: float = 90.0) -> list[ev.Event]:
    """Send the chunks one reply at a time (a simulated-clock session); stop early once ``until`` holds."""
    events: list[ev.Event] = []
    deadline = time.monotonic() + timeout
    for chunk in chunks:
        seq = session.send_mic(chunk, state=STATE)
        while time.monotonic() < deadline:
            got = [r for r in session.replies() if isinstance(r, Reply)]
            events += [e for r in got for e in r.events]
            if any(r.seq == seq for r in got):
                break
            time.sleep(0.002)
        if until(events):
            return events
    return events


def answered(events: list[ev.Event]) -> list[str]:
    return [e.topic for e in events if isinstance(e, ev.Response)]


def test_memory_survives_a_kill_9_mid_conversation_losing_at_most_the_turn_being_answered(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    first = SidecarProcess(memory=path)
    second: SidecarProcess | None = None
    client: SidecarClient | None = None
    try:
        first.wait_ready()
        client = SidecarClient(first.address)
        session = client.open_session(persona="blacksmith", npc_id="smith", player="clara", clock="simulated",
                                      state=STATE)
        assert session.wait_opened(60)
        said: list[str] = []
        for question in ("My name is Clara.", "How much is a longsword?"):
            events = converse(session, spoken(question, quiet_s=12.0),
                              until=lambda es: any(isinstance(e, ev.SpeechEnd) for e in es))
            said += answered(events)
        assert said == ["about_self", "buy_sword"]
        # the third question's answer is a long story: kill -9 while the NPC tells it
        events = converse(session, spoken("Tell me about the dragon.", quiet_s=8.0),
                          until=lambda es: any(isinstance(e, ev.Response) for e in es))
        assert answered(events) == ["dragon_story"] and not any(isinstance(e, ev.SpeechEnd) for e in events)
        first.kill()
        client.close()
        client = None

        store = MemoryStore(path)
        try:
            assert store.integrity() == "ok"
            kept = store.load("clara", "smith")
        finally:
            store.close()
        topics = [t.topic for t in kept.turns]
        assert topics[:2] == ["about_self", "buy_sword"] and len(topics) >= 2  # only the story may be lost
        assert kept.facts == {"player_name": "Clara"} and kept.visits == 1

        # a new sidecar on the same file: the smith remembers the price he gave her, and her name
        second = SidecarProcess(memory=path)
        second.wait_ready()
        client = SidecarClient(second.address)
        session = client.open_session(persona="blacksmith", npc_id="smith", player="clara", clock="simulated",
                                      state=STATE)
        assert session.wait_opened(60)
        events = converse(session, spoken("How much is a longsword?", quiet_s=6.0),
                          until=lambda es: any(isinstance(e, ev.Response) for e in es))
        (answer,) = [e for e in events if isinstance(e, ev.Response)]
        assert answer.topic == "buy_sword" and answer.text.startswith("As I said, forty gold")
    finally:
        if client is not None:
            client.close()
        first.stop()
        if second is not None:
            second.stop()
