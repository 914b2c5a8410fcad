"""Emotion in and out: prosody features, the tone model, the NPC's feelings, events, sentiment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from npc_voice.audio.format import SAMPLE_RATE, to_int16
from npc_voice.data import builtin_persona_dir
from npc_voice.features.prosody import FEATURE_NAMES, ProsodyTracker, chunks
from npc_voice.model.emotion import CLASSES, EmotionChange, NpcFeelings, PlayerTone, ToneEstimate, ToneModel
from npc_voice.model.sentiment import analyse
from npc_voice.train import emotion as train

DATA = train.DEFAULT_DATA
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="RAVDESS copy not present")


def voice(f0: float, level: float, seconds: float = 2.0) -> np.ndarray:
    """A voiced-speech stand-in: harmonics, a gliding pitch and syllable-rate amplitude modulation."""
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))) / SAMPLE_RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 10))
    x *= 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return to_int16(level * x / np.abs(x).max())


def features_of(pcm: np.ndarray) -> dict[str, float]:
    tracker = ProsodyTracker()
    for part in chunks(pcm):
        tracker.push(part, True)
    feats = tracker.end_utterance()
    assert feats is not None
    return dict(zip(FEATURE_NAMES, feats.tolist(), strict=True))


def test_features_are_finite_and_follow_level_and_pitch() -> None:
    base = features_of(voice(120, 0.1))
    assert all(np.isfinite(v) for v in base.values())
    louder = features_of(voice(120, 0.4))
    higher = features_of(voice(240, 0.1))
    assert louder["loud_p90_db"] - base["loud_p90_db"] == pytest.approx(12.0, abs=1.0)  # 4x amplitude
    assert higher["f0_mean_st"] - base["f0_mean_st"] == pytest.approx(12.0, abs=0.7)  # one octave
    assert 100 * 2 ** (base["f0_mean_st"] / 12) == pytest.approx(120, rel=0.05)
    assert base["voiced_ratio"] > 0.9


def test_silence_and_non_speech_give_no_utterance() -> None:
    tracker = ProsodyTracker()
    for part in chunks(voice(150, 0.3)):
        tracker.push(part, False)  # the engine says: not speech
    assert tracker.features() is None
    for part in chunks(np.zeros(SAMPLE_RATE, dtype=np.int16)):
        tracker.push(part, True)
    assert tracker.end_utterance() is None
    assert tracker.baseline_n == 0


def test_shipped_model_gives_a_distribution_and_a_final_event() -> None:
    model = ToneModel.shared()
    tone = PlayerTone(model)
    estimates = [tone.step(part, True) for part in chunks(voice(180, 0.3, seconds=2.4))]
    assert estimates[0] is None  # 200 ms is too little to judge
    est = estimates[-1]
    assert est is not None and est.emotion in CLASSES and not est.final
    assert sum(est.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    # The numpy inference path is the trained torch ensemble, number for number.
    mean, std = model.nets[0].mean.numpy(), model.nets[0].std.numpy()
    x = (mean + std * np.random.default_rng(0).normal(size=(5, mean.size))).astype(np.float32)
    probs, high = model.predict(x)
    with torch.inference_mode():
        outs = [net(torch.from_numpy(x)) for net in model.nets]
    ref_p = torch.stack([torch.softmax(o[0], dim=1) for o in outs]).mean(0).numpy()
    ref_h = torch.stack([torch.sigmoid(o[1]) for o in outs]).mean(0).numpy()
    assert np.allclose(probs, ref_p, atol=1e-5) and np.allclose(high, ref_h, atol=1e-5)
    assert all(0.0 <= p <= 1.0 for p in est.probabilities.values())
    assert -1.0 <= est.arousal <= 1.0 and -1.0 <= est.valence <= 1.0 and 0.0 <= est.intensity <= 1.0
    final = tone.end_of_speech()
    assert final is not None and final.final
    assert tone.tracker.baseline_n == 1
    events = [tone.event_for(e) for e in estimates]
    assert sum(e is not None for e in events) >= 1
    tone.event_for(final)  # sent only if it differs from what was already sent in this stretch
    assert tone.event_for(final) is None  # and never twice
    tone.step(chunks(voice(180, 0.3))[0], True)  # a new stretch begins: its verdict is always sent
    ev = tone.event_for(final)
    assert ev is not None and ev.who == "player" and ev.emotion == final.emotion


def statement(clip: train.Clip) -> int:
    return int(clip.path.stem.split("-")[4])  # type: ignore[union-attr]


@needs_data
def test_held_out_anger_is_heard_by_both_readers_and_calm_is_never_angry(tmp_path: Path) -> None:
    """Train a small prosody net and the voice read (Whisper's encoder states) on actors 01-08 (one of the two
    sentences, strong intensity and neutral, for speed), then judge actors 11 (male) and 12 (female): for each
    reader, their strong angry clips must score higher arousal than their calm clips, pair by pair; through the
    verdict as shipped (the mix, calibrated for ordinary conversation, which leans towards neutral) a really
    angry voice is still read as angry while a calm one never is."""
    clips = [c for c in train.list_clips(DATA)
             if (c.actor <= 8 and statement(c) == 1 and (c.strong or c.emotion == "neutral"))
             or (c.actor in (11, 12) and c.emotion in ("angry", "calm"))]
    table = train.build_table(clips, sessions=1, workers=2)
    train_rows = np.nonzero(table.actor <= 8)[0]
    prior = train.baseline_prior(table)
    net = train.train_net(table, train_rows, prior, seed=0, epochs=25, hidden=64)
    voice_read = train.train_voice(table, train_rows, seed=0)
    train.save_model([net], voice_read, table, train_rows, prior, tmp_path)
    model = ToneModel(tmp_path)
    assert model.voice is not None and model.voice.recogniser == "tiny.en"
    read_angry = 0
    for actor in (11, 12):
        held = np.nonzero(table.actor == actor)[0]
        strong = np.array([c.strong for c in clips if c.actor == actor])
        angry = (table.emotion[held] == "angry") & strong
        calm = table.emotion[held] == "calm"
        assert angry.sum() == 4 and calm.sum() == 8
        x = train.make_inputs(table, held, prior, np.random.default_rng(0), (0,))
        readers = (("prosody", train.predict([net], x)[1]), ("voice", voice_read.predict(table.voice[held])[1]))
        for name, high in readers:
            ordered = np.mean(high[angry][:, None] > high[calm][None, :])
            assert ordered >= 0.9, (name, actor, high[angry], high[calm])
        read, _ = train.read_rows(model, table, held, 0, 0)
        said = np.array([CLASSES[i] for i in read])
        read_angry += int(np.sum(said[angry] == "angry"))
        assert not np.any(said[calm] == "angry"), (actor, said[calm])
    assert read_angry >= 3  # of 8 strong angry clips (trained on 8 actors, one sentence each)


def test_npc_is_stung_by_an_insult_and_calms_down() -> None:
    feel = NpcFeelings({"baseline_mood": "content", "volatility": 0.5, "cares_about": ["the forge"]})
    rest = feel.current()
    insult = analyse("you are a useless old fool and your forge is a joke")
    feel.update(0.2, text_sentiment=insult)
    emotion, intensity, valence, arousal = feel.current()
    assert emotion == "angry" and valence < rest[2] - 0.3 and arousal > rest[3] + 0.3
    shift = feel.voice_shift()
    assert shift["volume"] > 0 and shift["rate"] > 0
    feel.update(0.2, text_sentiment=insult)  # the same transcript again: no second sting
    assert feel.current()[2] == pytest.approx(valence, abs=0.02)
    for _ in range(600):  # two minutes of 200 ms chunks with nothing new
        feel.update(0.2)
    assert feel.current()[0] == rest[0]
    assert np.allclose(feel.state, feel.baseline, atol=0.02)


def smith() -> NpcFeelings:
    from npc_voice.persona.loader import load_persona

    path = builtin_persona_dir() / "blacksmith.yaml"
    return NpcFeelings(load_persona(path).temperament)


def reading(emotion: str, intensity: float, final: bool = True) -> ToneEstimate:
    """A tone reading as ``PlayerTone`` gives it (the probabilities do not matter to the feelings)."""
    return ToneEstimate(emotion=emotion, probabilities={}, arousal=0.8 if emotion == "angry" else -0.2,
                        valence=-0.6 if emotion == "angry" else 0.1, intensity=intensity, speech_seconds=2.0,
                        final=final)


def test_one_angry_reading_of_polite_words_moves_the_npc_only_slightly() -> None:
    feel = smith()
    rest = feel.current()
    for _ in range(15):  # the running readings of a stretch are not evidence: each would count again
        feel.update(0.2, player_tone=reading("angry", 0.95, final=False))
    assert np.allclose(feel.state, feel.baseline, atol=1e-6)
    feel.update(0.2, player_tone=reading("angry", 0.95))  # the stretch's verdict, then the words
    feel.update(0.0, text_sentiment=analyse("I would like to buy a sword."))
    emotion, intensity, valence, arousal = feel.current()
    assert emotion == rest[0] != "angry"
    assert rest[2] - valence < 0.1 and arousal - rest[3] < 0.1


@pytest.mark.parametrize("voice_first", [True, False])
def test_an_insult_in_an_angry_voice_angers_the_smith_at_once(voice_first: bool) -> None:
    insult = analyse("You are a useless cheat, and your swords are junk!")
    words_only = smith()
    words_only.update(0.2, text_sentiment=insult)
    both = smith()
    steps = [dict(player_tone=reading("angry", 0.9)), dict(text_sentiment=insult)]
    for step in steps if voice_first else steps[::-1]:
        both.update(0.2, **step)
    emotion, intensity, valence, _ = both.current()
    assert emotion == "angry" and intensity >= 0.3  # what the bench counts as an angry NPC
    assert valence < words_only.current()[2] - 0.1  # the voice backs the words: more than the words alone
    assert both.event() is not None and both.event() is None  # told once


def test_an_angry_tone_that_persists_over_turns_counts_in_full() -> None:
    polite = ["Good morning.", "How much is a shield?", "Can you fix my helmet?", "Where is the inn?"]
    persistent, once = smith(), smith()
    once.update(0.2, player_tone=reading("angry", 0.9))
    once.update(0.0, text_sentiment=analyse(polite[0]))
    drop_once = once.baseline[0] - once.state[0]
    for k, text in enumerate(polite):
        for _ in range(20):  # 4 s between turns
            persistent.update(0.2)
        persistent.update(0.2, player_tone=reading("angry", 0.9))
        persistent.update(0.0, text_sentiment=analyse(text))
        if k == 2:
            assert persistent.baseline[0] - persistent.state[0] > 4 * drop_once  # three turns: taken seriously
    assert persistent.current()[0] == "angry"
    # A calm turn in between breaks the run: it starts again from a nudge.
    broken = smith()
    for emotion in ("angry", "neutral", "angry", "neutral"):
        for _ in range(20):
            broken.update(0.2)
        broken.update(0.2, player_tone=reading(emotion, 0.9))
    assert broken.current()[0] != "angry"


def test_npc_feelings_follow_game_state_and_line_tags() -> None:
    timid = NpcFeelings({"baseline_mood": "nervous", "volatility": 0.7})
    for _ in range(100):
        timid.update(0.2, game_state={"danger": 1.0})
    assert timid.current()[0] == "fearful"
    cheerful = NpcFeelings({"baseline_mood": "cheerful"})
    before = cheerful.current()[2]
    cheerful.update(0.2, line_tags=["sad"])
    assert cheerful.current()[2] < before


def test_events_fire_on_meaningful_change_only() -> None:
    ch = EmotionChange("player")
    assert ch.check("neutral", 0.1, 0.0, -0.4) is not None  # first reading
    assert ch.check("neutral", 0.12, 0.02, -0.38) is None  # the same, give or take
    assert ch.check("angry", 0.7, -0.5, 0.6) is None  # one chunk of "angry" is a flicker
    ev = ch.check("angry", 0.72, -0.5, 0.62)  # twice in a row: a change
    assert ev is not None and ev.emotion == "angry" and ev.who == "player"
    assert ch.check("angry", 0.75, -0.55, 0.65) is None
    ch.begin_segment()
    ev = ch.check("angry", 0.74, -0.5, 0.6, final=True)  # a new utterance's verdict is always told
    assert ev is not None
    assert ch.check("angry", 0.74, -0.5, 0.6, final=True) is None  # but only once

    feel = NpcFeelings({"baseline_mood": "content"})
    assert feel.event() is not None  # the game learns the starting mood
    for _ in range(20):
        feel.update(0.2)
        assert feel.event() is None  # resting: nothing to say
    feel.update(0.2, text_sentiment=analyse("thank you so much, this is wonderful work"))
    ev = feel.event()
    assert ev is not None and ev.who == "npc" and ev.valence > 0.4


HELDOUT_PHRASES = [  # written before any tuning of the anchors; none of them is an anchor
    ("you're a clumsy oaf and your hammer work is a joke", "insult"),
    ("what a waste of iron you are", "insult"),
    ("my grandmother could forge better than you", "insult"),
    ("you smell like a pig", "insult"),
    ("you're nothing but a lazy drunk", "insult"),
    ("honestly you are the worst blacksmith in the kingdom", "insult"),
    ("cheers, that was really helpful", "thanks"),
    ("i owe you one, my friend", "thanks"),
    ("this sword is magnificent, thank you", "thanks"),
    ("you've been a great help today", "thanks"),
    ("bless you for your kindness", "thanks"),
    ("marvellous craftsmanship", "thanks"),
    ("if you cross me i'll burn your forge to ashes", "threat"),
    ("open the till or i'll gut you", "threat"),
    ("you won't live to see tomorrow", "threat"),
    ("keep talking and you'll lose your teeth", "threat"),
    ("my men will tear this shop apart", "threat"),
    ("i know where your daughter sleeps", "threat"),
    ("i'm begging you, lend me a blade", "plea"),
    ("please, they will kill me if i don't pay", "plea"),
    ("spare me, i meant no harm", "plea"),
    ("i have no coin but please help my brother", "plea"),
    ("please sir, i have nothing left", "plea"),
    ("could you find it in your heart to help me", "plea"),
    ("how long will the repair take", "neutral"),
    ("is the mayor in town today", "neutral"),
    ("i need some nails for my fence", "neutral"),
    ("what metals do you work with", "neutral"),
    ("the market is busy this morning", "neutral"),
    ("where did you learn your trade", "neutral"),
]


def test_sentiment_by_meaning() -> None:
    insult, thanks = analyse("you're a worthless cheat"), analyse("thank you, friend, that's kind of you")
    assert insult.valence < 0 < thanks.valence
    assert insult.tag == "insult" and thanks.tag == "thanks"
    assert analyse("").tag == "neutral"
    hits = [analyse(text).tag == tag for text, tag in HELDOUT_PHRASES]
    assert np.mean(hits) >= 0.75  # measured 26/30 when written


def test_temperament_from_persona_file() -> None:
    from npc_voice.persona.loader import load_persona

    path = builtin_persona_dir() / "blacksmith.yaml"
    feel = NpcFeelings(load_persona(path).temperament)
    assert feel.temperament.baseline_mood == "content"
    assert feel.current()[2] > 0  # content rests on the pleasant side


# --- The whole engine, real audio: the smith's face after a polite purchase and after a rude, angry line ---

PLAYER_VOICE = "en-us+m3"


def engine_turn(resources, audio: np.ndarray, npc_id: str) -> tuple[list[tuple[float, object]], float]:
    """Play ``audio`` (then 4 s of silence) as the player's microphone into a blacksmith session; every event
    with the time its step ended, and when the player's turn ended (seconds)."""
    from npc_voice.audio.format import CHUNK_SAMPLES, silence
    from npc_voice.engine.session import Session

    lead = np.zeros(CHUNK_SAMPLES * 3, np.int16)
    body = np.concatenate([lead, audio])
    body = np.pad(body, (0, -body.size % CHUNK_SAMPLES + 20 * CHUNK_SAMPLES))
    session = Session(resources, "blacksmith", npc_id, seed=7, simulated_clock=True)
    played, out = silence(), []
    for k, chunk in enumerate(body.reshape(-1, CHUNK_SAMPLES)):
        result = session.step(chunk, played)
        played = result.pcm
        out += [((k + 1) * 0.2, e) for e in result.events]
    return out, (lead.size + audio.size) / SAMPLE_RATE


def spoken(text: str, pitch: int = 45, rate: int = 165) -> np.ndarray:
    from npc_voice.speech.tts import Synthesizer, VoiceSettings

    return Synthesizer().synthesize(text, VoiceSettings(voice=PLAYER_VOICE, pitch=pitch, rate=rate)).audio


def npc_emotions(events: list[tuple[float, object]]) -> list[tuple[float, object]]:
    from npc_voice.events import Emotion

    return [(t, e) for t, e in events if isinstance(e, Emotion) and e.who == "npc"]


def test_a_polite_purchase_keeps_the_smith_content(resources) -> None:
    """The issue's own case: "I would like to buy a sword." got an answer and a red face."""
    from npc_voice.events import Response

    events, _ = engine_turn(resources, spoken("I would like to buy a sword."), "smith-polite")
    answers = [e for _, e in events if isinstance(e, Response)]
    assert answers and answers[0].topic == "buy_sword"
    feelings = npc_emotions(events)
    assert feelings and feelings[0][1].emotion != "angry"  # his resting mood is told first
    assert all(not (e.emotion == "angry" and e.intensity >= 0.3) for _, e in feelings)


@needs_data
def test_a_rude_line_in_an_angry_voice_angers_the_smith_within_the_turn(resources) -> None:
    """One turn: a real actor shouting (RAVDESS actor 03, strong anger: real anger, though its words are no
    insult) and straight on, an insult. The words and the voice agree: the smith is angry as he answers."""
    from npc_voice.audio.format import to_float, to_int16
    from npc_voice.events import Response
    from npc_voice.train.dialogues import trim_silence

    shout = to_int16(trim_silence(to_float(train.read_wav(DATA / "Actor_03" / "03-01-05-02-01-01-03.wav"))))
    insult = spoken("You are a useless cheat, and your swords are junk!")
    gap = np.zeros(int(0.1 * SAMPLE_RATE), np.int16)  # no pause the smith would take the turn in
    events, turn_end = engine_turn(resources, np.concatenate([shout, gap, insult]), "smith-rude")
    players = [e for t, e in events if getattr(e, "who", None) == "player" and t <= turn_end + 1.0]
    assert any(e.emotion == "angry" and e.intensity >= 0.6 for e in players)  # the shout is heard as anger
    answers = [(t, e) for t, e in events if isinstance(e, Response)]
    assert len(answers) == 1 and "cheat" in answers[0][1].heard.lower()  # one turn, the insult heard
    angry = [t for t, e in npc_emotions(events) if e.emotion == "angry" and e.intensity >= 0.3]
    assert angry, [e for _, e in npc_emotions(events)]
    assert angry[0] <= answers[0][0] + 0.6  # within the turn: as he answers


@pytest.mark.skipif(not (train.DEFAULT_DATA.parent / "read_speech").is_dir(), reason="real recordings not present")
def test_a_calm_reader_is_not_read_angry_through_the_engines_tone_path() -> None:
    """``bench.natural_tone`` on one LibriSpeech reader (plain read speech, never trained on): every turn gets
    a verdict with the recogniser's read of the voice, and at most one turn in ten is told to the game as angry
    (the issue's bar; the one turn of this reader is a running prosody reading mid-sentence, its verdicts are
    all neutral or sad)."""
    from npc_voice.bench import natural_tone
    from npc_voice.features.asr import AsrModels

    sessions = natural_tone.read_speech_sessions(train.DEFAULT_DATA.parent / "read_speech")
    asr = AsrModels()
    try:
        m = natural_tone.measure(sessions[:1], ToneModel.shared(), asr)
    finally:
        asr.close()
    assert m["turns"] == len(sessions[0].turns) >= 5
    assert m["turns_read"] == m["turns"] and m["angry_turns"] <= 0.1 * m["turns"], m
