"""Only answer the player: what the game says, the push-to-talk key, the room in the voice and the voice itself;
and the NPC pausing its line as soon as the player talks over it. Fakes and hand-made signals, except the
speaker encoder's own test (its packaged weights, ~2 s)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from scipy.signal import fftconvolve

from npc_voice import events as ev
from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE
from npc_voice.config import AddresseeConfig, EngineConfig, FloorConfig
from npc_voice.engine.context import EngineParts
from npc_voice.engine.session import Session
from npc_voice.engine.stages.addressee import frame_levels, level_and_fall
from npc_voice.engine.state import Attention
from npc_voice.floor.decision import Action
from npc_voice.floor.evidence import blurred, not_addressed
from npc_voice.floor.observation import Addressee, FloorObservation, Understood
from npc_voice.floor.strategies import rules_strategy
from npc_voice.speech.stream import LineStream
from tests.fakes import FakeAccurate, FakeCanceller, FakeHeads, FakeRecognizer, FakeResources, FakeVAD, Immediate

C = AddresseeConfig()


def syllables(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Voice-like bursts: 120-200 ms of a buzz, then 60-150 ms of silence, at -20 dBFS."""
    out = []
    while sum(map(len, out)) < seconds * SAMPLE_RATE:
        n = int(rng.uniform(0.12, 0.2) * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        out.append(np.sin(2 * np.pi * 140 * t) * np.sin(np.pi * np.arange(n) / n) ** 0.3 * 3000)
        out.append(np.zeros(int(rng.uniform(0.06, 0.15) * SAMPLE_RATE)))
    return np.concatenate(out)


def judged(x: np.ndarray) -> tuple[float | None, float | None]:
    """``level_and_fall`` over ``x`` cut into chunks as the engine hears it."""
    x = np.pad(x, (0, -len(x) % CHUNK_SAMPLES)).astype(np.int16)
    levels, tail = [], np.zeros(352, np.int16)
    for chunk in x.reshape(-1, CHUNK_SAMPLES):
        levels += [float("nan"), *frame_levels(tail, chunk).tolist()]
        tail = chunk[-352:]
    return level_and_fall(levels)


def test_a_reverberant_voice_falls_slower_than_a_dry_one() -> None:
    rng = np.random.default_rng(1)
    dry = syllables(2.0, rng)
    t = np.arange(int(0.8 * SAMPLE_RATE)) / SAMPLE_RATE
    room = rng.standard_normal(len(t)) * np.exp(-6.9 * t / 0.8)
    room = np.concatenate([[1.0], room[1:] * 0.5 / np.sqrt(np.sum(room**2))])  # tail 6 dB under the direct sound
    far = fftconvolve(dry, room)[: len(dry)]
    _, dry_fall = judged(dry)
    _, far_fall = judged(far)
    assert dry_fall is not None and far_fall is not None
    assert dry_fall > C.reverberant_fall_db > far_fall


@pytest.mark.parametrize(("evidence", "why"), [
    (Addressee(away="out of earshot"), "the game says the player is out of earshot"),
    (Addressee(key_up=True), "push-to-talk"),
    (Addressee(speech_s=1.2, voice_similarity=0.4), "another voice"),
    (Addressee(speech_s=1.0, fall_db=2.5, snr_db=25.0, level_db=-35.0), "distant or reverberant"),
    (Addressee(speech_s=1.0, fall_db=2.5, snr_db=25.0, level_db=-25.0, player_level_db=-18.0), "distant"),
    (Addressee(speech_s=1.0, fall_db=3.8, level_db=-40.0, player_level_db=-22.0, snr_db=25.0), "quieter"),
])
def test_what_says_speech_is_not_for_the_npc(evidence: Addressee, why: str) -> None:
    assert why in (not_addressed(evidence, C) or "")


@pytest.mark.parametrize("evidence", [
    None,
    Addressee(),
    Addressee(speech_s=0.3, fall_db=1.0, snr_db=30.0),  # too little voice to judge the room by
    Addressee(speech_s=1.0, fall_db=2.5, snr_db=8.0, level_db=-35.0),  # game noise, not a room, holds falls up
    Addressee(speech_s=1.0, fall_db=2.9, snr_db=30.0, level_db=-17.0),  # a loud voice that falls slowly: a player
    Addressee(speech_s=1.0, fall_db=5.0, snr_db=30.0, voice_similarity=0.85),
])
def test_the_player_is_answered(evidence: Addressee | None) -> None:
    assert not_addressed(evidence, C) is None


def test_the_rule_listens_then_forgets_the_turn() -> None:
    rules = rules_strategy(FloorConfig())
    away = Addressee(away="not facing the NPC")
    o = FloorObservation(npc_speaking=False, in_speech=False, speech_s=1.2, silence_s=0.05, turn_speech_s=1.2,
                         words="Can you fix my sword?", fit=0.9, margin=0.5, addressee=away)
    first = rules.decide(o)
    assert first.rule == "listening.not_addressed" and first.action is Action.LISTEN and not first.drops_turn
    later = rules.decide(FloorObservation(**{**o.__dict__, "silence_s": 0.5}))
    assert later.action is Action.LISTEN and later.drops_turn
    over = FloorObservation(npc_speaking=True, in_speech=True, speech_s=2.0, silence_s=0.0, turn_speech_s=2.0,
                            words="wait stop", stretch_words="Wait, stop!", addressee=away)
    assert rules.decide(over).rule == "speaking.not_addressed" and rules.decide(over).action is Action.CONTINUE
    assert rules.projection is not None and rules.projection.lead(
        FloorObservation(**{**o.__dict__, "voice_gap_s": 0.2, "unread_s": 0.0, "p_end": 1.0})) is None


@pytest.mark.parametrize(("evidence", "is_blurred"), [
    # a voice across a hall, louder than ``distant`` allows (tuning seed 7002: "Pass me the leg, woah hoo.")
    (Addressee(speech_s=1.6, fall_db=2.6, snr_db=32.0, level_db=-25.7), True),
    (Addressee(speech_s=2.3, fall_db=1.6, snr_db=14.9, level_db=-36.0), True),  # distant talk, near the noise
    (Addressee(speech_s=1.8, fall_db=2.7, snr_db=34.0, level_db=-25.0, player_level_db=-21.0), True),  # a companion
    (Addressee(speech_s=1.8, fall_db=2.7, snr_db=34.0, level_db=-20.0, player_level_db=-21.0), False),  # as loud
    (Addressee(speech_s=1.2, fall_db=2.9, snr_db=30.0, level_db=-17.0), False),  # a loud voice: a player
    (Addressee(speech_s=1.7, fall_db=3.4, snr_db=11.0, level_db=-26.6), False),  # a player under game noise
    (Addressee(speech_s=1.7, fall_db=5.6, snr_db=33.0, level_db=-25.0), False),  # a dry, quiet player
    (Addressee(speech_s=0.4, fall_db=1.5, snr_db=30.0, level_db=-30.0), False),  # too little voice to judge
])
def test_a_voice_blurred_by_the_room(evidence: Addressee, is_blurred: bool) -> None:
    assert (blurred(evidence, C) is not None) is is_blurred


def test_blurred_words_not_heard_clearly_are_not_answered_and_clear_ones_are() -> None:
    rules = rules_strategy(FloorConfig())
    hall = Addressee(speech_s=1.6, fall_db=2.6, snr_db=32.0, level_db=-25.7)
    o = FloorObservation(npc_speaking=False, in_speech=False, speech_s=1.6, silence_s=0.7, turn_speech_s=1.6,
                         words="Pass me the leg, woah hoo.", fit=0.3, margin=0.1, clarity=0.39,
                         understood=Understood.UNCLEAR, addressee=hall)
    unclear = rules.decide(o)
    assert unclear.rule == "listening.blurred_and_unclear" and unclear.action is Action.LISTEN and unclear.drops_turn
    # the same words from a dry voice get "say that again"
    dry = rules.decide(FloorObservation(**{**o.__dict__, "addressee": Addressee(**{**hall.__dict__, "fall_db": 6.0})}))
    assert dry.rule == "listening.not_heard_clearly" and dry.action is Action.RESPOND
    # heard clearly, the blurred voice is answered: "I don't know about that"
    clear = rules.decide(FloorObservation(**{**o.__dict__, "words": "Do you sell fresh bread?", "clarity": 0.9,
                                             "understood": Understood.UNKNOWN}))
    assert clear.action is Action.RESPOND


def session(vad: list[float], talk_mode: str = "open", player: float | None = None,
            hold_events: bool = False) -> Session:
    parts = EngineParts(vad=lambda: FakeVAD(vad), canceller=FakeCanceller,
                        recognizer=lambda asr, lm: FakeRecognizer(["can you fix my sword"], ["mm hm"]),
                        use_heads=player is not None, heads=None if player is None else lambda: FakeHeads(player),
                        use_endpoint=False, sentiment=lambda text: None)
    return Session(FakeResources(asr=FakeAccurate([("Can you fix my sword?", -0.2)])), "smith", "smith",  # type: ignore[arg-type]
                   seed=1, simulated_clock=True, parts=parts, config=EngineConfig(), talk_mode=talk_mode,
                   floor_events=player is not None, hold_events=hold_events)


def responses(s: Session, vad: list[float], **step: object) -> list[ev.Response]:
    out = []
    for p in vad:
        mic = np.full(CHUNK_SAMPLES, 3000 if p else 0, np.int16)
        out += [e for e in s.step(mic, None, **step).events if isinstance(e, ev.Response)]  # type: ignore[arg-type]
    return out


ASK = [0.0, 0.9, 0.9, 0.9, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_speech_while_the_game_says_the_player_is_away_is_not_answered_and_is_forgotten() -> None:
    s = session(ASK + ASK)
    assert responses(s, ASK, attention=Attention(in_earshot=True, facing=False)) == []
    assert s.context.turn.speech_s == 0.0  # forgotten: the next words start a turn of their own
    said = responses(s, ASK, attention=Attention(in_earshot=True, facing=True))
    assert [r.topic for r in said] == ["repair"]
    s.close()


def test_push_to_talk_answers_only_speech_with_the_key_held() -> None:
    s = session(ASK + ASK, talk_mode="push_to_talk")
    assert responses(s, ASK) == []
    assert [r.topic for r in responses(s, ASK, talking=True)] == ["repair"]
    s.close()
    with pytest.raises(ValueError, match="talk mode"):
        session(ASK, talk_mode="walkie")


def test_the_line_pauses_when_the_player_talks_over_it_and_goes_on_after_an_mm_hm() -> None:
    vad = ASK + [0.9, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # 0.4 s of "mm hm" over the answer
    s = session(vad, player=0.9, hold_events=True)
    steps = [s.step(np.full(CHUNK_SAMPLES, 3000 if p else 0, np.int16), None) for p in vad]
    s.close()
    held = [(k, e.held) for k, r in enumerate(steps) for e in r.events if isinstance(e, ev.Held)]
    assert [h for _, h in held] == [True, False], held
    paused, resumed = held[0][0], held[1][0]
    assert steps[paused].decision.rule == "gate.hold_line"
    assert not steps[paused].pcm.any() and steps[resumed + 1].pcm.any()  # silent while held, then speaks on
    events = [e for r in steps for e in r.events]
    assert any(isinstance(e, ev.Backchannel) for e in events) and not any(isinstance(e, ev.Interrupted)
                                                                         for e in events)


def test_a_held_line_takes_up_again_from_the_word_it_paused_in() -> None:
    words = [(0.0, "One"), (0.4, "fine"), (0.8, "sword")]
    audio = np.full(int(1.2 * SAMPLE_RATE), 1000, np.int16)
    line = LineStream("l1", "One fine sword.", lambda text: (audio, words, []), Immediate(),  # type: ignore[arg-type]
                      first=(audio, words, []))
    for _ in range(5):
        line.next_chunk()  # 1.0 s played
    line.hold(back_s=0.3)
    assert not line.next_chunk().pcm.any() and not line.finished
    line.release()
    again = line.next_chunk()
    assert again.pcm.any() and [w for _, w in again.words] == ["fine"]  # the word playing 0.3 s before the pause


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs the espeak-ng command")
def test_the_speaker_encoder_tells_one_voice_from_another() -> None:
    librosa = pytest.importorskip("librosa")
    from npc_voice.features.speaker import SpeakerEncoder, mel_filters

    assert np.allclose(mel_filters(), librosa.filters.mel(sr=16000, n_fft=400, n_mels=40), atol=1e-7)
    encoder = SpeakerEncoder.shared()
    assert encoder is not None, "the resemblyzer wheel ships the weights"

    def say(text: str, voice: str, pitch: int) -> np.ndarray:
        wav = subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "--stdout", text], capture_output=True,
                             check=True).stdout
        x = np.frombuffer(wav[44:], np.int16).astype(np.float32)  # 22.05 kHz
        return np.interp(np.arange(0, len(x), 22050 / 16000), np.arange(len(x)), x)

    a1 = encoder.embed(say("Could you fix my old sword for me today?", "en-us+m3", 35))
    a2 = encoder.embed(say("Where is the road to the castle gate?", "en-us+m3", 35))
    b = encoder.embed(say("I think the weather will turn cold tonight.", "en-us+f3", 60))
    # eSpeak NG's male variants sound alike to it (0.8-0.9); a woman's voice does not (about 0.6)
    assert float(a1 @ a2) > 0.8 and float(a1 @ a2) - float(a1 @ b) > 0.15
