"""The game side, headless (SDL dummy drivers), through the real sidecar: events reach the NPC sprite."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pygame
import pytest

from npc_voice import events as ev
from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE
from npc_voice.audio.virtual import ChunkAssembler, TypedMic
from npc_voice.game import NPCVoice, VoiceHub
from npc_voice.game import events as ge
from npc_voice.game.animation import Animator
from npc_voice.game.audio import Mixer, spatialise
from npc_voice.speech.cache import LineCache
from npc_voice.speech.marks import Mark
from npc_voice.speech.stream import LineStream
from npc_voice.speech.tts import VoiceSettings
from npc_voice.speech.voices import Voices
from tests.fakes import Immediate


def test_voices_are_placed_by_distance_and_direction() -> None:
    near_left = spatialise((0, 0), (-40, 0), 260)
    far_right = spatialise((0, 0), (200, 0), 260)
    assert near_left[0] > far_right[0] > 0 and near_left[1] < 0 < far_right[1]
    assert spatialise((0, 0), (300, 0), 260)[0] == 0.0
    mixer = Mixer()
    ch = mixer.add("a")
    ch.gain, ch.pan = 1.0, -0.8
    ch.buffer.push(np.full(CHUNK_SAMPLES, 8000, np.int16), 0.0)
    stereo, mono = mixer.pull(320, 1.0)
    assert np.abs(stereo[:, 0]).mean() > 3 * np.abs(stereo[:, 1]).mean()
    assert np.abs(mono).max() == 8000  # the echo reference is what the room hears, unpanned


def test_typed_lines_become_chunks_with_the_echo_reference() -> None:
    mic, asm = TypedMic(), ChunkAssembler()
    mic.say(np.arange(1, 5001, dtype=np.int16))
    for k in range(20):  # 20 ms blocks
        played = np.full(320, k, np.int16)
        asm.feed(mic.read(320), played, t_end=(k + 1) * 320 / SAMPLE_RATE)
    a, b = asm.chunks.get_nowait(), asm.chunks.get_nowait()
    assert np.array_equal(a.pcm, np.arange(1, CHUNK_SAMPLES + 1)) and b.pcm[1800:].max() == 0
    assert a.played[0] == 0 and a.played[-1] == 9 and b.played[0] == 10
    assert a.t_end == pytest.approx(0.2) and b.t_end == pytest.approx(0.4)
    assert not mic.speaking


BUBBLE_LINE = "Aye, I can mend that. Bring it here!"


@pytest.mark.parametrize("voice", [VoiceSettings(voice="en-us+m3"),
                                   VoiceSettings(engine="piper", model="en_US-joe-medium", voice="en-us+m3")],
                         ids=["espeak-ng", "piper"])
def test_the_bubble_reveals_the_line_as_written_word_by_word(voice: VoiceSettings, tmp_path: Path) -> None:
    """The synthesiser's word times, through the line's chunks, the wire and the game's events, to the bubble:
    each word appears as it is spoken, with the line's commas, full stop, "!" and capitals."""
    voices = Voices(LineCache(tmp_path / "lines"))

    def synth(text: str):  # noqa: ANN202 - as the engine's speaker: rendered ahead into the cache, then read back
        voices.render_into_cache(text, voice)
        utt = voices.synthesize(text, voice)
        return utt.audio, utt.words, utt.visemes

    line = LineStream("smith-1", BUBBLE_LINE, synth, Immediate(), marks=[Mark("that", "mend")])
    wire = [(0.0, ev.SpeechStart(offset=0.0, line_id="smith-1", text=BUBBLE_LINE))]
    marks = []
    for k in range(100):
        chunk = line.next_chunk()
        if chunk.words:
            wire.append((0.2 * k, ev.Words(offset=0.0, words=chunk.words)))
        marks += [0.2 * k + offset for offset, _ in chunk.marks]
        if chunk.finished:
            wire.append((0.2 * (k + 1), ev.SpeechEnd(offset=0.0, line_id="smith-1", completed=True)))
            break
    events = [ge.to_pygame("smith", base, ev.event_from_wire(e.to_wire())) for base, e in wire]
    timed = [w for e in events if e.type == ge.NPC_WORDS for w in e.words]
    assert [w for _, w in timed] == BUBBLE_LINE.split()  # the event carries each word as written
    # the action waiting for "that" (written "that.") still fires at that word: matching strips the punctuation
    assert marks == [pytest.approx(next(t for t, w in timed if w == "that."), abs=1e-3)]

    animator, shown, t, end = Animator(), [], 0.0, events[-1].t + 1.0
    while t < end:  # 10 ms frames, each handing the animator the events due by then
        while events and events[0].t <= t:
            animator.handle(events.pop(0))
        subtitle = animator.update(0.01, t).subtitle
        if subtitle and (not shown or shown[-1] != subtitle):
            shown.append(subtitle)
        t += 0.01
    assert shown[-1] == BUBBLE_LINE  # held after the line ends, as written
    tokens = BUBBLE_LINE.split()
    prefixes = [" ".join(tokens[:n]) for n in range(1, len(tokens) + 1)]
    assert all(s in prefixes for s in shown) and shown == sorted(shown, key=len)  # revealed word by word
    assert len(shown) >= len(tokens) - 1  # at most two words that start within one frame show together


def test_a_line_cut_after_a_comma_ends_in_a_dash_not_a_comma() -> None:
    animator = Animator()
    said = [ev.SpeechStart(offset=0.0, line_id="l1", text=BUBBLE_LINE),
            ev.Words(offset=0.0, words=[(0.0, "Aye,"), (0.4, "I")]),
            ev.Interrupted(offset=0.3, line_id="l1", heard="wait")]
    for event in said:
        animator.handle(ge.to_pygame("smith", 0.0, event))
    assert animator.update(0.01, 0.35).subtitle == "Aye—"


@pytest.fixture(scope="module")
def screen():
    pygame.init()
    surface = pygame.display.set_mode((640, 480))
    yield surface
    pygame.quit()


def run_frames(seconds: float, npcs: list[NPCVoice], hub: VoiceHub, screen, until=None) -> list[dict]:
    """The game loop: events to the components, update, draw; returns what the smith looked like."""
    frames = []
    clock = pygame.time.Clock()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        dt = clock.tick(60) / 1000.0
        events = pygame.event.get()
        for event in events:
            for npc in npcs:
                npc.process_events(event)
        hub.listen_from((100, 140), (0, -1))
        for npc in npcs:
            npc.update(dt)
        screen.fill((0, 0, 0))
        npcs[0].draw(screen, (100, 60))
        p = npcs[0].pose
        frames.append(dict(t=time.monotonic(), types=[e.type for e in events if getattr(e, "npc_id", "") == "smith"],
                           expression=p.expression, weight=p.expression_weight, mouth=p.mouth_open,
                           speaking=p.speaking, subtitle=p.subtitle, caption=p.caption, body=p.body,
                           level=npcs[0]._link.channel.level, other=[e.type for e in events
                                                                    if getattr(e, "npc_id", "") == "herbalist"]))
        if until is not None and until(frames[-1]):
            break
    return frames


def greeting_over(frame: dict, so_far: list[dict]) -> bool:
    """The smith's greeting has been said, or 4 s passed without one (a greeting is likely, not certain)."""
    so_far.append(frame)
    barked = any(ge.NPC_BARK in f["types"] for f in so_far)
    if barked:
        return not frame["speaking"] and ge.NPC_BARK not in frame["types"]
    return frame["t"] - so_far[0]["t"] > 4.0


def test_a_typed_conversation_reaches_the_npc_sprite(sidecar: str, screen) -> None:
    hub = VoiceHub(sidecar, audio="silent")
    smith = NPCVoice(hub, "smith", "blacksmith", position=(100, 100))
    herbalist = NPCVoice(hub, "herbalist", "herbalist", position=(200, 140))  # in earshot, not faced
    try:
        frames = run_frames(20, [smith, herbalist], hub, screen, until=lambda f: smith.ready and herbalist.ready)
        assert smith.ready and herbalist.ready and hub.addressee == "smith"
        # the player stands in earshot of both, so they may greet first: the question waits for the smith's
        waited: list[dict] = []
        run_frames(8, [smith, herbalist], hub, screen, until=lambda f: greeting_over(f, waited))
        hub.say("What can you tell me about the dragon?")
        frames = run_frames(20, [smith, herbalist], hub, screen, until=lambda f: "do" in f["subtitle"].split()
                             or len(f["subtitle"].split()) > 6)
        hub.say("Wait, stop. How much is a sword?")
        frames += run_frames(12, [smith, herbalist], hub, screen,
                             until=lambda f: ge.NPC_INTERRUPTED in f["types"])
        cut = len(frames) - 1
        frames += run_frames(1.0, [smith, herbalist], hub, screen)
    finally:
        smith.close()
        herbalist.close()
        hub.close()

    kinds = {t for f in frames for t in f["types"]}
    assert {ge.NPC_RESPONSE, ge.NPC_SPEECH_START, ge.NPC_WORDS, ge.NPC_VISEMES, ge.NPC_TRANSCRIPT} <= kinds
    talking = [f for f in frames[:cut] if f["speaking"]]
    assert talking, "the smith never started speaking"
    mouths = np.array([f["mouth"] for f in talking])
    assert mouths.max() > 0.5 and mouths.min() < 0.2  # the jaw opens and closes with the syllables
    assert any(f["body"] == "talking" for f in talking)
    assert any(f["weight"] > 0.1 and f["expression"] != "neutral" for f in frames)  # the face showed a feeling
    subtitles = [f["subtitle"] for f in talking if f["subtitle"]]
    assert subtitles and subtitles[0].split()[0].rstrip(",.") in ("Ah", "The", "Dragon", "That")
    assert len(subtitles[-1]) > len(subtitles[0])  # words appear as they are spoken
    assert any("dragon" in f["caption"].lower() for f in frames)  # what the smith heard
    assert ge.NPC_INTERRUPTED in frames[cut]["types"]
    after = frames[cut:]
    assert not after[0]["speaking"] and after[0]["body"] == "startled"
    assert after[0]["subtitle"].endswith("—")  # the line visibly stops mid-sentence
    late = [f for f in after if f["t"] > after[0]["t"] + 0.3 and ge.NPC_SPEECH_START not in f["types"]]
    quiet = [f for f in late if not f["speaking"]]
    assert quiet and max(f["level"] for f in quiet) < 0.01  # the flushed buffer plays nothing more of the line
    assert not any(ge.NPC_TRANSCRIPT in f["other"] or ge.NPC_RESPONSE in f["other"] for f in frames)


def test_the_demo_runs_headless_and_draws_the_village(sidecar: str, tmp_path: Path) -> None:
    from demo_game.game import Game

    shot = tmp_path / "village.png"
    # The shot waits (past these 60 frames) until the three villagers' sessions are open: up to ~1.2 s on a
    # 2-core machine when their personas are not loaded yet, longer on a busy one; the test is that they open.
    game = Game(audio="silent", sidecar=sidecar, screenshot=shot, frames=60)
    assert game.run() == 0
    image = pygame.image.load(str(shot))
    assert image.get_size() == (960, 640)
    pixels = pygame.surfarray.array3d(image)
    assert pixels.std() > 20  # a painted scene, not a blank window
    assert all(v.voice is not None and v.voice.ready for v in game.villagers)
