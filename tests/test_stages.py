"""The engine's stages and readers alone, on fakes (VAD, canceller, recogniser, accurate reader, synthesiser,
workers, persona): what each one does with its part of the step, in milliseconds."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest

from npc_voice import events as ev
from npc_voice.audio.echo import EchoStats
from npc_voice.audio.format import CHUNK_SAMPLES, silence
from npc_voice.config import EngineConfig, HearingConfig, OnsetConfig, ReadingConfig, ToneConfig
from npc_voice.engine.answers import AnswerBuilder
from npc_voice.engine.clock import SimulatedClock
from npc_voice.engine.context import EngineParts
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.session import Session
from npc_voice.engine.stages.echo_gate import EchoGate
from npc_voice.engine.stages.speech_tracking import SpeechTracking
from npc_voice.engine.stages.tone import Tone
from npc_voice.engine.state import (
    AnswerOnset,
    HearingState,
    PersonaRef,
    SpeakingState,
    StretchState,
    TurnSnapshot,
    TurnState,
)
from npc_voice.engine.turn_reader import HeardVoice, TurnReader
from npc_voice.floor.decision import Action
from npc_voice.model.emotion import CLASSES, NpcFeelings, ToneEstimate
from tests.fakes import FakeAccurate, FakeCanceller, FakeHeads, FakeRecognizer, FakeResources, FakeVAD, smith

HEARING = HearingConfig()
READING = ReadingConfig()


def gate(stats: EchoStats, p: float = 0.9, in_speech: bool = False) -> StepFrame:
    hearing = HearingState(silence_db=HEARING.silence_db, in_speech=in_speech)
    frame = StepFrame(index=0, mic=np.full(CHUNK_SAMPLES, 100, np.int16), played=None)
    EchoGate(HEARING, hearing, FakeVAD([p]), FakeCanceller(stats)).run(frame)
    return frame


def test_the_echo_gate_keeps_residual_echo_from_passing_for_the_player() -> None:
    echo_only = EchoStats(True, -20.0, -40.0, -21.0, 19.0, 1.0)  # 20 dB removed, output as expected of echo
    frame = gate(echo_only)
    assert frame.raw_probs is not None and frame.raw_probs.max() == pytest.approx(0.9)
    assert frame.probs is not None and frame.probs.max() < HEARING.speech_off  # not speech
    player = EchoStats(True, -20.0, -30.0, -21.0, 19.0, 9.0)  # far more left than echo would leave
    assert gate(player).probs.max() == pytest.approx(0.9)
    # a stretch that is going on needs less excess to go on than a new one to start
    going_on = EchoStats(True, -20.0, -35.0, -21.0, 19.0, 3.0)
    assert gate(going_on, in_speech=True).probs.max() == pytest.approx(0.9)
    assert gate(going_on, in_speech=False).probs.max() < HEARING.speech_off
    headset = EchoStats(True, -30.0, -31.0, -60.0, 0.0, 0.0)  # the canceller removed nothing: no echo path
    assert gate(headset).probs.max() == pytest.approx(0.9)


class Stretches:
    def __init__(self) -> None:
        self.opened = 0

    def new_stretch(self) -> None:
        self.opened += 1


def track(script: list[float], levels: list[int], speaking: SpeakingState | None = None):
    hearing, turn, stretch = HearingState(silence_db=HEARING.silence_db), TurnState(seed=0.5), StretchState()
    speaking, reader = speaking or SpeakingState(), Stretches()
    stage = SpeechTracking(HEARING, OnsetConfig(), hearing, turn, stretch, speaking, reader)
    frames = []
    for k, (p, level) in enumerate(zip(script, levels, strict=True)):
        frame = StepFrame(index=k, mic=silence(), played=None, clean=np.full(CHUNK_SAMPLES, level, np.int16),
                          probs=np.full(6 if k % 8 else 7, p, np.float32))
        stage.run(frame)
        frames.append((frame.started, hearing.in_speech, hearing.speech_s, hearing.silence_s))
    return frames, hearing, turn, stretch, reader


def test_speech_tracking_finds_stretches_and_where_the_voice_was_last_loud() -> None:
    frames, hearing, turn, stretch, reader = track([0.0, 0.9, 0.9, 0.1, 0.1], [0, 3000, 3000, 0, 0])
    assert [f[0] for f in frames] == [False, True, False, False, False]  # one stretch began, in chunk 1
    assert frames[2][1] and not frames[3][1]  # over after the hangover (3 quiet frames), within chunk 3
    assert frames[2][2] == pytest.approx(12 * 0.032)  # its length at frame resolution (6 frames a chunk here)
    assert frames[4][3] > frames[3][3] > 0  # silence since grows
    assert hearing.loud_end_s == pytest.approx(0.6)  # loud up to the end of chunk 2, silero heard it later
    assert turn.speech_s >= frames[2][2] and reader.opened == 1
    assert stretch.judged  # the NPC was silent: nothing to judge as a backchannel


def test_a_stretch_that_starts_over_the_npc_opens_one_to_judge_and_knows_the_answers_onset() -> None:
    line = SimpleNamespace(line_id="smith-1")
    onset = AnswerOnset("smith-1", 0.15, "Can you fix my sword?", TurnSnapshot(None, False, ""))
    _, _, _, stretch, _ = track([0.0, 0.9], [0, 3000], SpeakingState(line=line, onset=onset))  # type: ignore[arg-type]
    assert not stretch.judged and stretch.at_onset  # began 0.05-0.25 s after the answer's first sound
    late = AnswerOnset("smith-1", -0.5, "Can you fix my sword?", TurnSnapshot(None, False, ""))
    _, _, _, stretch, _ = track([0.0, 0.9], [0, 3000], SpeakingState(line=line, onset=late))  # type: ignore[arg-type]
    assert not stretch.judged and not stretch.at_onset


def reader_on(res: FakeResources, in_speech: bool, below: int, speech_s: float, loud_end_s: float,
              partial: str = "") -> TurnReader:
    hearing = HearingState(silence_db=HEARING.silence_db, in_speech=in_speech, below=below, voiced_end_s=loud_end_s,
                           loud_end_s=loud_end_s)
    turn = TurnState(seed=0.5, speech_s=speech_s, partial=partial)
    recognizer = FakeRecognizer()
    recognizer.start()
    recognizer.feed(np.zeros(int(loud_end_s * 16000), np.int16))
    answers = AnswerBuilder(res, lambda text: (np.zeros(1600, np.int16), [], []), lambda text: None)  # type: ignore[arg-type]
    return TurnReader(READING, res, recognizer, answers, PersonaRef("smith", smith()), {}, turn,  # type: ignore[arg-type]
                      hearing, SimulatedClock())


def test_the_turn_is_read_ahead_only_on_an_idle_reader_while_the_player_talks() -> None:
    busy = FakeResources(busy=True)
    talking = reader_on(busy, in_speech=True, below=0, speech_s=0.6, loud_end_s=1.0)
    talking.read_ahead(now_s=1.0)
    assert talking.prepared is None and busy.reads == 0  # every reader busy: no speculation queued
    idle = FakeResources()
    talking = reader_on(idle, in_speech=True, below=0, speech_s=0.6, loud_end_s=1.0)
    talking.read_ahead(now_s=1.0)
    assert talking.prepared is not None and idle.reads == 1 and talking.covers()
    answer = talking.ready_answer()
    assert answer is not None and answer.choice is not None and answer.choice.topic == "repair"


def test_a_fading_turn_gets_a_read_of_all_of_it_even_when_the_readers_are_busy() -> None:
    busy = FakeResources(busy=True)
    fading = reader_on(busy, in_speech=True, below=READING.fading_frames, speech_s=1.2, loud_end_s=1.2)
    fading.read_ahead(now_s=1.2)
    assert busy.reads == 1 and fading.covers()
    assert fading.turn_read() is not None and fading.turn_read().covers == pytest.approx(1.2)


def test_a_turn_that_fits_nothing_is_read_again_in_the_quiet_and_only_its_answer_changes() -> None:
    res = FakeResources(asr=FakeAccurate([("The weather was strange.", -0.3)], [("Can you fix it?", -0.4)]))
    reader = reader_on(res, in_speech=False, below=0, speech_s=1.2, loud_end_s=1.0)
    reader.read_ahead(now_s=1.2)  # the whole turn: it fits nothing
    first = reader.ready_answer()
    assert first is not None and first.choice.topic == "fallback"
    reader.read_ahead(now_s=1.2)  # 0.2 s of quiet: too soon to read again
    assert res.asr.calls == [1.0] and reader.answer_to_start(first) is first
    reader.read_ahead(now_s=1.0 + READING.read_again_after_s + 0.05)
    assert len(res.asr.calls) == 2
    second = reader.answer_to_start(first)
    assert second is not first and second.choice.topic == "repair"
    assert dict(second.readings) == {"The weather was strange.": -0.3, "Can you fix it?": -0.4}  # both reads


def test_a_read_cut_inside_its_last_word_is_finished_by_the_streaming_words() -> None:
    reader = reader_on(FakeResources(), in_speech=False, below=0, speech_s=1.2, loud_end_s=1.0,
                       partial="can i buy a new sword")
    cut = reader.answers.answer_for("Can I buy a new swo.", smith(), random.Random(1), {}, None, False)
    assert cut.choice.topic == "fallback"
    finished = reader.finished_by_streaming(cut, sure_fit=0.7)
    assert finished.heard == "can i buy a new sword" and finished.choice.topic == "buy_sword"
    reader.turn.partial = "can you tell me the way"  # the streaming words disagree: the read stands
    assert reader.finished_by_streaming(cut, sure_fit=0.7) is cut


def fake_session(vad: list[float], utterances: list[list[str]], *readings: list[tuple[str, float]],
                 policy: str = "rules", player: float | None = None) -> Session:
    """A session on fakes; ``player``: the duplex heads' P(player) (None: no duplex model, no floor events)."""
    parts = EngineParts(vad=lambda: FakeVAD(vad), canceller=FakeCanceller,
                        recognizer=lambda asr, lm: FakeRecognizer(*utterances), use_heads=player is not None,
                        heads=None if player is None else lambda: FakeHeads(player), use_endpoint=False,
                        sentiment=lambda text: None)
    return Session(FakeResources(asr=FakeAccurate(*readings)), "smith", "smith", seed=1,  # type: ignore[arg-type]
                   simulated_clock=True, policy=policy, parts=parts, config=EngineConfig(),
                   floor_events=player is not None)


def test_a_whole_step_on_fakes_answers_a_clear_request_and_says_which_rule_decided() -> None:
    vad = [0.0, 0.9, 0.9, 0.9, 0.9, 0.0, 0.0, 0.0, 0.0]
    session = fake_session(vad, [["can", "can you fix", "can you fix my sword"]], [("Can you fix my sword?", -0.2)])
    mic = [np.full(CHUNK_SAMPLES, level, np.int16) for level in (0, 3000, 3000, 3000, 3000, 0, 0, 0, 0)]
    results = [session.step(chunk, None) for chunk in mic]
    responses = [(k, e) for k, r in enumerate(results) for e in r.events if isinstance(e, ev.Response)]
    assert [e.topic for _, e in responses] == ["repair"]
    k = responses[0][0]
    assert results[k].decision.action is Action.RESPOND
    assert results[k].decision.rule in ("listening.projection", "listening.clear_request")
    assert all(r.decision.action is Action.LISTEN for r in results[:k])
    assert results[k - 1].decision.rule == "listening.still_talking"
    session.close()


def over_the_answer(player: float) -> list[list[ev.Event]]:
    """A question, its answer (five words: 1.5 s), and 0.2 s of speech over the answer ("mm-hm")."""
    vad = [0.0, 0.9, 0.9, 0.9, 0.9, 0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0]
    session = fake_session(vad, [["can you fix my sword"], ["mm hm"]], [("Can you fix my sword?", -0.2)],
                           player=player)
    steps = [session.step(np.zeros(CHUNK_SAMPLES, np.int16) if p == 0 else np.full(CHUNK_SAMPLES, 3000, np.int16),
                          None).events for p in vad]
    session.close()
    return steps


def test_a_stretch_over_the_npc_is_told_as_a_backchannel_only_if_it_was_the_player() -> None:
    for player, told, rule in ((0.9, True, "ended.backchannel"), (0.1, False, "gate.not_the_player")):
        steps = over_the_answer(player)
        events = [e for step in steps for e in step]
        assert [e.topic for e in events if isinstance(e, ev.Response)] == ["repair"]
        floors = [next(e for e in step if isinstance(e, ev.Floor)) for step in steps]
        ended = [f for f in floors if f.rule == rule]
        assert len(ended) == 1, [(f.action, f.rule) for f in floors]
        assert ended[0].action == ("backchannel" if told else "continue")
        assert any(isinstance(e, ev.Backchannel) for e in events) is told
        assert not any(isinstance(e, ev.Interrupted) for e in events)
        # judged once: after it, nothing over the NPC is left to decide
        after = floors[floors.index(ended[0]) + 1:]
        assert after and all(f.rule in ("speaking.nothing_heard", "listening.still_talking", "listening.waiting")
                             for f in after if f.action in ("continue", "listen"))


def reading(emotion: str, intensity: float) -> ToneEstimate:
    probs = {c: (1.0 - intensity if c == "neutral" else 0.0) for c in CLASSES}
    probs[emotion] = intensity if emotion != "neutral" else 1.0
    return ToneEstimate(emotion=emotion, probabilities=probs, arousal=0.5, valence=-0.5, intensity=intensity,
                        speech_seconds=2.0, final=True)


class FakeTone:
    """A tone reader whose prosody calls every stretch angry and whose voice read calls it plain."""

    hears_voices = True

    def __init__(self) -> None:
        self.voices: list[tuple[np.ndarray, str]] = []

    def step(self, pcm: np.ndarray, speaking: bool) -> ToneEstimate | None:
        return None

    def end_of_speech(self) -> ToneEstimate:
        return reading("angry", 0.7)

    def with_voice(self, voice: np.ndarray, recogniser: str) -> ToneEstimate:
        self.voices.append((voice, recogniser))
        return reading("neutral", 0.1)

    def event_for(self, estimate: ToneEstimate | None) -> ev.Emotion | None:
        return None if estimate is None else ev.Emotion(who="player", emotion=estimate.emotion,
                                                         intensity=estimate.intensity, valence=0.0, arousal=0.0)


class FakeTurnReads:
    def __init__(self) -> None:
        self.heard: HeardVoice | None = None

    def voice_of_turn(self) -> HeardVoice | None:
        return self.heard


def tone_steps(speech: list[bool], voice_at: int | None) -> tuple[list[list[str]], FakeTone]:
    """The player's tone told at each step (``speech``: the player speaking at the end of each chunk); the turn
    read's voice arrives at step ``voice_at``."""
    hearing, tone, reads = HearingState(silence_db=HEARING.silence_db), FakeTone(), FakeTurnReads()
    stage = Tone(ToneConfig(), tone, NpcFeelings(), hearing, reads, {})  # type: ignore[arg-type]
    told, was = [], False
    for k, speaking in enumerate(speech):
        if k == voice_at:
            reads.heard = HeardVoice(k * 0.2, np.ones(4, np.float32), "tiny.en")
        hearing.in_speech = speaking
        frame = StepFrame(index=k, mic=silence(), played=None, clean=silence(), was_speaking=was)
        stage.run(frame)
        told.append([e.emotion for e in frame.events if isinstance(e, ev.Emotion) and e.who == "player"])
        was = speaking
    return told, tone


def test_a_stretchs_tone_waits_for_the_turn_reads_voice_and_is_told_with_it() -> None:
    told, tone = tone_steps([True, True, False, False, False, False], voice_at=4)
    assert told == [[], [], [], [], ["neutral"], []]  # the prosody's "angry" is never told alone
    assert len(tone.voices) == 1 and tone.voices[0][1] == "tiny.en"


def test_without_a_turn_read_the_prosody_verdict_is_told_after_the_wait() -> None:
    wait_steps = int(ToneConfig().voice_wait_s / 0.2)
    told, tone = tone_steps([True, False] + [False] * (wait_steps + 2), voice_at=None)
    when = [k for k, t in enumerate(told) if t]
    assert [told[k] for k in when] == [["angry"]] and 1 + wait_steps <= when[0] <= 2 + wait_steps
    assert tone.voices == []


def test_a_held_verdict_goes_alone_when_the_player_speaks_again() -> None:
    told, _ = tone_steps([True, False, True, True], voice_at=None)
    assert told == [[], [], ["angry"], []]
