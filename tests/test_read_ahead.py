"""Predictive reading: the player's turn is read while they talk, on idle reading threads only, and the
answer is to the whole turn, never to a read the player talked past."""

from __future__ import annotations

import threading
import time

import numpy as np

from npc_voice import events as ev
from npc_voice.audio.format import CHUNK_SAMPLES, silence
from npc_voice.config import ListeningConfig
from npc_voice.engine.session import Session
from npc_voice.speech.tts import Synthesizer, VoiceSettings

PLAYER = VoiceSettings(voice="en-us+m3", pitch=45, rate=165)


def idle(resources) -> None:
    """Wait for reads left running by earlier tests' sessions."""
    deadline = time.monotonic() + 10
    while resources.reads_in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert resources.reads_in_flight == 0


def test_reading_ahead_only_takes_idle_reading_threads(resources) -> None:
    idle(resources)
    release = threading.Event()
    busy = [resources.read(release.wait, 10) for _ in range(resources.readers)]
    try:
        assert resources.read_ahead(lambda: "words") is None  # every reader busy: no speculation queued
        queued = resources.read(lambda: "needed")  # a read someone waits for still queues
    finally:
        release.set()
    assert queued.result(timeout=10) == "needed" and all(b.result(timeout=10) for b in busy)
    idle(resources)
    assert resources.read_ahead(lambda: "words").result(timeout=10) == "words"
    resources.predictive = False  # what the sidecar turns off first under overload
    try:
        assert resources.read_ahead(lambda: "words") is None
    finally:
        resources.predictive = True


def test_the_turn_is_read_while_the_player_talks_and_answered_whole(resources) -> None:
    idle(resources)
    speech = Synthesizer().synthesize("My sword is broken, can you fix it?", PLAYER).audio
    mic = np.concatenate([np.zeros(CHUNK_SAMPLES, np.int16), speech.astype(np.int16),
                          np.zeros(8 * CHUNK_SAMPLES, np.int16)])
    mic = np.pad(mic, (0, -len(mic) % CHUNK_SAMPLES))
    session = Session(resources, "blacksmith", "reader", seed=3, simulated_clock=True)
    read_while_talking = False
    responses: list[ev.Response] = []
    played = silence()
    for chunk in mic.reshape(-1, CHUNK_SAMPLES):
        result = session.step(chunk, played)
        played = result.pcm
        hearing, reader = session.context.hearing, session.context.reader
        if hearing.in_speech and hearing.below == 0 and reader.prepared is not None:
            read_while_talking = True  # a read of the words so far, with the voice still on
        responses += [e for e in result.events if isinstance(e, ev.Response)]
    session.close()
    assert read_while_talking
    assert len(responses) == 1 and responses[0].topic == "repair"
    assert "fix" in responses[0].heard.lower()  # the whole turn, not the read of "My sword is broken"


def test_a_turn_that_fits_nothing_is_read_again_in_the_quiet_and_not_answered_sooner(resources, monkeypatch) -> None:
    """Without the recogniser's confidence (``clarity`` None: a recogniser that does not say) words that fit nothing
    wait the long silence, and are read again in it."""
    idle(resources)
    monkeypatch.setattr(resources, "clarity", None)
    speech = Synthesizer().synthesize("The weather was strange on Tuesday.", PLAYER).audio.astype(np.int16)
    lead = np.zeros(CHUNK_SAMPLES, np.int16)
    mic = np.concatenate([lead, speech, np.zeros(12 * CHUNK_SAMPLES, np.int16)])
    mic = np.pad(mic, (0, -len(mic) % CHUNK_SAMPLES))
    reads: list[tuple[float, list[tuple[str, float]]]] = []  # (seconds of audio, readings) of every turn read
    read = resources.asr.read

    def spy(audio, *args, **kwargs):
        out = read(audio, *args, **kwargs)
        reads.append((audio.size / 16000, list(out.readings)))
        return out

    monkeypatch.setattr(resources.asr, "read", spy)
    session = Session(resources, "blacksmith", "again", seed=3, simulated_clock=True)
    responses: list[tuple[float, ev.Response]] = []
    played = silence()
    for i, chunk in enumerate(mic.reshape(-1, CHUNK_SAMPLES)):
        result = session.step(chunk, played)
        played = result.pcm
        responses += [((i + 1) * 0.2, e) for e in result.events if isinstance(e, ev.Response)]
    session.close()
    voice_end = (lead.size + speech.size) / 16000
    assert len(responses) == 1
    at, response = responses[0]
    assert response.confidence < 0.5  # words the blacksmith knows nothing of ...
    assert at - voice_end >= ListeningConfig().incomplete_silence_s  # ... wait the long silence, as before
    longest = max(seconds for seconds, _ in reads)
    assert longest >= voice_end + 0.4  # the turn was read again once the quiet had lasted
    pooled = {text for _, out in reads for text, _ in out}
    assert response.heard in pooled  # the answer is still one of Whisper's readings
