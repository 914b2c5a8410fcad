"""Answering in the chunk where the player's voice ends: a human gap after the voice, not after the
voice-activity model's silence and the next chunk boundary; and yielding at once when the player was
only pausing and goes on before the answer's first sound reached them."""

from __future__ import annotations

import random
import threading
import time

import numpy as np

from npc_voice import events as ev
from npc_voice.audio.format import CHUNK_SAMPLES, CHUNK_SECONDS, SAMPLE_RATE, silence
from npc_voice.config import HearingConfig, ListeningConfig
from npc_voice.engine.session import Session
from npc_voice.speech.tts import Synthesizer, VoiceSettings

PLAYER = VoiceSettings(voice="en-us+m3", pitch=45, rate=165)

LOUD_BLOCK, LOUD_RANGE_DB = HearingConfig().loud_block, HearingConfig().loud_range_db
SURE_FIT = ListeningConfig().sure_fit


def _loud_blocks(audio: np.ndarray) -> np.ndarray:
    """Which 10 ms blocks the session counts as voice: within 25 dB of the loudest."""
    blocks = audio[: len(audio) // LOUD_BLOCK * LOUD_BLOCK].astype(np.float32).reshape(-1, LOUD_BLOCK) / 32768
    db = 10 * np.log10((blocks * blocks).mean(axis=1) + 1e-10)
    return db >= db.max() - LOUD_RANGE_DB


def voice_end(audio: np.ndarray) -> int:
    """Where the session finds the voice's end: the last loud 10 ms block."""
    return int(np.flatnonzero(_loud_blocks(audio))[-1] + 1) * LOUD_BLOCK


def placed(parts: list[np.ndarray], end_in_chunk: float) -> tuple[np.ndarray, int]:
    """The parts one after the other, shifted so the first part's voice ends ``end_in_chunk`` s into a
    chunk; returns the microphone audio and the sample where that voice ends."""
    first_end = voice_end(parts[0])
    lead = (round(end_in_chunk * SAMPLE_RATE) - first_end) % CHUNK_SAMPLES + CHUNK_SAMPLES
    audio = np.concatenate([np.zeros(lead, np.int16), *parts, np.zeros(6 * CHUNK_SAMPLES, np.int16)])
    return np.pad(audio, (0, -len(audio) % CHUNK_SAMPLES)), lead + first_end


def converse(resources, mic: np.ndarray) -> list[tuple[int, ev.Event, np.ndarray]]:
    session = Session(resources, "blacksmith", "projection", seed=5, simulated_clock=True)
    out, played = [], silence()
    for k, chunk in enumerate(mic.reshape(-1, CHUNK_SAMPLES)):
        result = session.step(chunk, played)
        played = result.pcm
        out += [(k, e, result.pcm) for e in result.events]
    session.close()
    return out


def test_a_clear_request_is_answered_a_human_gap_after_the_voice(resources) -> None:
    speech = Synthesizer().synthesize("Can you repair my armor?", PLAYER).audio
    mic, end = placed([speech], end_in_chunk=0.05)
    said = converse(resources, mic)
    starts = [(k, e, pcm) for k, e, pcm in said if isinstance(e, ev.SpeechStart)]
    assert len(starts) == 1
    k, start, pcm = starts[0]
    assert [e.topic for _, e, _ in said if isinstance(e, ev.Response)] == ["repair"]
    assert not [e for _, e, _ in said if isinstance(e, ev.Interrupted)]  # the answer stood
    # The reply to chunk k plays right after it: the answer's first sound comes a human gap after the
    # voice (waiting for the voice-activity model's silence would be a chunk later, 0.35 s or more).
    gap = (k + 1) * CHUNK_SECONDS + start.offset - end / SAMPLE_RATE
    assert 0.15 <= gap < 0.3
    assert not pcm[: round(start.offset * SAMPLE_RATE)].any() and pcm.any()


def test_a_stops_release_after_the_chunk_boundary_is_not_the_player_going_on(resources) -> None:
    """The closure before the last /t/ of "gate." is quiet enough to pass for the voice's end at a chunk
    boundary, so the answer may start then; the release burst that follows in the next chunk is the same
    word, not the player going on: the answer stands."""
    speech = Synthesizer().synthesize("I'm looking for the castle gate.", PLAYER).audio
    blocks = np.flatnonzero(_loud_blocks(speech))
    gap = np.flatnonzero(np.diff(blocks) > 1)[-1]  # the last quiet run inside the voice: the closure
    vowel_end, release = (blocks[gap] + 1) * LOUD_BLOCK, blocks[gap + 1] * LOUD_BLOCK
    closure = np.zeros(round(0.07 * SAMPLE_RATE), np.int16)  # a speaker's closure: 50-100 ms
    spoken = np.concatenate([speech[:vowel_end], closure, speech[release:]])
    mic, end = placed([spoken[:vowel_end], spoken[vowel_end:]], end_in_chunk=0.15)
    assert (end + len(closure)) % CHUNK_SAMPLES < 0.05 * SAMPLE_RATE  # the release falls in the next chunk
    said = converse(resources, mic)
    assert [type(e).__name__ for _, e, _ in said if isinstance(e, ev.Response | ev.SpeechStart | ev.Interrupted)] == [
        "Response", "SpeechStart"]
    k, start = next((k, e) for k, e, _ in said if isinstance(e, ev.SpeechStart))
    assert (k + 1) * CHUNK_SECONDS + start.offset - end / SAMPLE_RATE < 0.3  # from the vowel's end


def test_the_npc_yields_when_the_player_was_only_pausing(resources) -> None:
    tts = Synthesizer()
    first = tts.synthesize("I need a shield.", PLAYER).audio
    rest = tts.synthesize("And a helmet for my brother.", PLAYER).audio
    pause = np.zeros(round(0.15 * SAMPLE_RATE) - (len(first) - voice_end(first)), np.int16)
    mic, _ = placed([first, pause, rest], end_in_chunk=0.1)
    said = converse(resources, mic)
    kinds = [(k, type(e).__name__) for k, e, _ in said
             if isinstance(e, ev.Response | ev.SpeechStart | ev.Interrupted | ev.SpeechEnd)]
    # started in the pause, stopped in the next chunk, answered once the whole turn was said
    (k0, a), (_, b), (k1, c), (_, d) = kinds[:4]
    assert (a, b, c, d) == ("Response", "SpeechStart", "Interrupted", "SpeechEnd") and k1 == k0 + 1
    yielded = [e for _, e, _ in said if isinstance(e, ev.SpeechEnd)][0]
    assert yielded.completed is False
    final = [e for _, e, _ in said if isinstance(e, ev.Response)][-1]
    assert len([e for _, e, _ in said if isinstance(e, ev.Response)]) == 2
    assert "shield" in final.heard.lower() and "brother" in final.heard.lower()  # the whole turn


def test_a_read_that_cut_the_last_word_is_answered_on_the_words_the_streaming_recogniser_finished(resources) -> None:
    session = Session(resources, "blacksmith", "cut", seed=5)
    answers = session.context.answers
    stale = answers.answer_for("Tell me about your four.", session.loaded, random.Random(1), {}, None, False)
    assert stale.choice.similarity < SURE_FIT  # the cut word: no clear request
    session.context.turn.partial = "fairly young off the dragon"  # the streaming words disagree: the read stands
    assert session.context.reader.finished_by_streaming(stale, SURE_FIT) is stale
    session.context.turn.partial = "tell me about your forge"  # they heard the whole word
    finished = session.context.reader.finished_by_streaming(stale, SURE_FIT)
    assert finished.heard == "tell me about your forge" and finished.choice.topic == "forge_story"
    assert finished.choice.similarity >= SURE_FIT
    session.close()


def test_a_clear_request_read_just_before_its_last_word_is_finished_by_the_streaming_words(resources) -> None:
    session = Session(resources, "blacksmith", "cut", seed=5)
    answers = session.context.answers
    stale = answers.answer_for("Can I get a new sword from", session.loaded, random.Random(1), {}, None, False)
    assert stale.choice.similarity >= SURE_FIT  # a clear request, but it ends unfinished
    session.context.turn.partial = "can i get an is sword from the"  # the streaming words end unfinished too: it stands
    assert session.context.reader.finished_by_streaming(stale, SURE_FIT) is stale
    session.context.turn.partial = "can i get an is sword from you"
    finished = session.context.reader.finished_by_streaming(stale, SURE_FIT)
    assert finished.heard == "can i get a new sword from you" and finished.choice.topic == "buy_sword"
    session.close()


def test_the_npc_yields_to_a_player_going_on_over_its_answers_onset_and_answers_the_whole_turn(resources) -> None:
    """A first sentence that is a request of its own, a pause long enough to answer in, then the question
    it led to: the NPC may start in the pause, but speech that begins with its answer and says more than
    "uh-huh" is the player's turn going on. It stops, and answers both sentences."""
    tts = Synthesizer()
    first = tts.synthesize("I'm looking for the castle gate.", PLAYER).audio
    rest = tts.synthesize("Which way?", PLAYER).audio  # as short as a backchannel
    pause = np.zeros(round(0.45 * SAMPLE_RATE) - (len(first) - voice_end(first)), np.int16)
    mic, end = placed([first, pause, rest], end_in_chunk=0.05)
    said = converse(resources, mic)
    responses = [(k, e) for k, e, _ in said if isinstance(e, ev.Response)]
    resumed = (end / SAMPLE_RATE + 0.45) / CHUNK_SECONDS  # the chunk in which the second sentence begins
    assert len(responses) == 2 and responses[0][0] < resumed, responses  # an answer began in the pause ...
    yielded = [(k, e) for k, e, _ in said if isinstance(e, ev.SpeechEnd)]
    assert yielded and yielded[0][1].completed is False and yielded[0][0] < responses[1][0]  # ... and stopped
    final = responses[1][1]
    assert final.topic == "directions"
    assert "castle" in final.heard.lower() and "way" in final.heard.lower()  # the whole turn


def test_an_answer_starts_in_the_reply_that_carries_its_voice(resources) -> None:
    """Real time, with the voice thread busy (another NPC's line, say): the answer's events say its sound
    starts in their reply, so it waits for its first sentence's voice rather than start silent there."""
    speech = Synthesizer().synthesize("Can you repair my armor?", PLAYER).audio
    mic, _ = placed([speech], end_in_chunk=0.05)
    busy = threading.Event()
    resources.voices.submit(busy.wait, 30)
    session = Session(resources, "blacksmith", "busy-voice", seed=5)
    played, started = silence(), None
    try:
        for chunk in mic.reshape(-1, CHUNK_SAMPLES):
            result = session.step(chunk, played)
            played = result.pcm
            assert not [e for e in result.events if isinstance(e, ev.Response)]  # its voice is not ready
            time.sleep(CHUNK_SECONDS)
        read = session.context.reader.turn_read()
        assert read is not None and read.answer.choice.topic == "repair"  # the answer is known, its voice is not
        busy.set()
        for _ in range(5):
            result = session.step(silence(), played)
            played = result.pcm
            started = next((e for e in result.events if isinstance(e, ev.Response)), None)
            if started is not None:
                break
            time.sleep(CHUNK_SECONDS)
    finally:
        busy.set()
        session.close()
    assert started is not None and started.topic == "repair"
    assert np.abs(played[round(started.offset * SAMPLE_RATE):]).max() > 1000
