"""The persona's temperament at work in the engine: barks on the game's cues, idle chatter, reactions to
being cut off, holding the floor, the NPC's own "mm-hm", and follow-up topics."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from npc_voice import events as ev
from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE, silence
from npc_voice.engine.session import Session
from npc_voice.features.asr import Read
from npc_voice.speech.tts import Synthesizer, VoiceSettings

PLAYER = VoiceSettings(voice="en-us+m3", pitch=45, rate=165)


@pytest.fixture(scope="module")
def say():
    synth = Synthesizer()

    def spoken(text: str) -> np.ndarray:
        audio = synth.synthesize(text, PLAYER).audio
        return np.pad(audio, (0, -len(audio) % CHUNK_SAMPLES)).astype(np.int16)

    return spoken


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds / 0.2)) * CHUNK_SAMPLES, np.int16)


def run(session: Session, audio: np.ndarray, cue_at: dict[int, str] | None = None) -> list[list[ev.Event]]:
    """Step the session through ``audio`` (the player's microphone; a headset, so no echo path) and
    return each step's events; ``cue_at`` maps a step to a game cue."""
    out = []
    played = silence()
    for k, chunk in enumerate(audio.reshape(-1, CHUNK_SAMPLES)):
        result = session.step(chunk, played, cue=(cue_at or {}).get(k))
        played = result.pcm
        out.append(result.events)
    return out


def flat(steps: list[list[ev.Event]]) -> list[ev.Event]:
    return [e for events in steps for e in events]


def barks(steps: list[list[ev.Event]], kind: str) -> list[ev.Bark]:
    return [e for e in flat(steps) if isinstance(e, ev.Bark) and e.kind == kind]


def with_temper(session: Session, **temper: float) -> None:
    """The same persona with other temperament figures (as if its designer had written them)."""
    persona = session.loaded.persona
    persona = dataclasses.replace(persona, temperament=dataclasses.replace(persona.temperament, **temper))
    session.context.persona.loaded = dataclasses.replace(session.loaded, persona=persona)


def test_greeting_on_approach_and_farewell_on_leaving(resources) -> None:
    s = Session(resources, "blacksmith", "smith", seed=3, simulated_clock=True)
    with_temper(s, talkativeness=1.0)  # a chatty NPC always greets
    steps = run(s, quiet(6.0), cue_at={0: "greeting", 20: "farewell"})
    (greeting,) = barks(steps, "greeting")
    assert greeting.text in {"Mind the sparks!"}  # the only greeting without a quest condition
    starts = [e for e in flat(steps) if isinstance(e, ev.SpeechStart)]
    assert [e.line_id for e in starts][0] == greeting.line_id and len(starts) == 2
    (farewell,) = barks(steps, "farewell")
    assert farewell.text == "Safe roads."
    assert not any(isinstance(e, ev.Response) for e in flat(steps))  # barks answer no question


def test_idle_barks_only_while_the_player_is_near(resources) -> None:
    far = Session(resources, "herbalist", "herbs-far", seed=5, simulated_clock=True)
    assert not barks(run(far, quiet(70.0)), "idle")  # nobody around: nobody to chatter at
    near = Session(resources, "herbalist", "herbs-near", seed=5, simulated_clock=True)
    steps = run(near, quiet(70.0), cue_at={0: "greeting"})
    idles = barks(steps, "idle")
    assert idles, "a chatty NPC with the player standing by says something within a minute"
    terse = Session(resources, "herbalist", "herbs-terse", seed=5, simulated_clock=True)
    with_temper(terse, talkativeness=0.0)
    assert len(barks(run(terse, quiet(70.0), cue_at={0: "greeting"}), "idle")) < len(idles)


def test_a_cut_in_with_nothing_after_it_gets_go_on(resources, say) -> None:
    s = Session(resources, "blacksmith", "smith-cut", seed=1, simulated_clock=True)
    question = say("Tell me the story of your forge.")
    steps = run(s, np.concatenate([question, quiet(2.0)]))
    assert any(isinstance(e, ev.SpeechStart) for e in flat(steps)), "the NPC answered the question"
    steps = run(s, np.concatenate([say("Wait."), quiet(3.0)]))
    events = flat(steps)
    assert any(isinstance(e, ev.Interrupted) for e in events)
    (reaction,) = barks(steps, "interrupted")
    assert reaction.text in {"Hm? Go on.", "Aye, what is it?"}
    after = events.index(reaction)
    assert any(isinstance(e, ev.SpeechStart) and e.line_id == reaction.line_id for e in events[after:])
    assert not any(isinstance(e, ev.Response) for e in events[after:]), "no answer to a bare 'wait'"


def test_a_cut_in_with_a_question_is_answered_not_asked_to_go_on(resources, say) -> None:
    s = Session(resources, "blacksmith", "smith-q", seed=1, simulated_clock=True)
    run(s, np.concatenate([say("Tell me the story of your forge."), quiet(2.0)]))
    steps = run(s, np.concatenate([say("Wait, how much is a shield?"), quiet(3.0)]))
    assert not barks(steps, "interrupted")
    assert [e.topic for e in flat(steps) if isinstance(e, ev.Response)] in (["buy_shield"], ["prices"])


def test_an_impatient_npc_talks_through_a_short_cut_in(resources, say) -> None:
    s = Session(resources, "guard", "guard-1", seed=2, simulated_clock=True)
    run(s, np.concatenate([say("Can I enter the city?"), quiet(1.6)]))
    assert s.speaking, "the guard is answering"
    steps = run(s, np.concatenate([say("Wait!"), quiet(2.0)]))
    events = flat(steps)
    (held,) = barks(steps, "holds_floor")
    assert held.text in {"Let me finish!", "Quiet. I'm not done."}
    assert not any(isinstance(e, ev.Interrupted | ev.Backchannel) for e in events)
    assert not any(isinstance(e, ev.SpeechEnd) and not e.completed for e in events)


def test_a_patient_npc_yields_to_the_same_cut_in(resources, say) -> None:
    s = Session(resources, "blacksmith", "smith-yield", seed=2, simulated_clock=True)
    run(s, np.concatenate([say("Tell me the story of your forge."), quiet(2.0)]))
    assert s.speaking, "the smith is telling the story"
    steps = run(s, np.concatenate([say("Wait!"), quiet(1.0)]))
    assert any(isinstance(e, ev.Interrupted) for e in flat(steps))
    assert not barks(steps, "holds_floor")


def test_own_backchannels_in_the_pauses_of_a_long_turn(resources, say) -> None:
    story = np.concatenate([
        say("So yesterday I walked all the way up to the old mill and"), quiet(0.4),
        say("then I saw a big grey wolf near the river and"), quiet(0.4),
        say("it was limping because of a thorn in its paw and"), quiet(0.4),
        say("I pulled it out. Do you have a salve for wounds?"), quiet(3.0),
    ])
    eager = Session(resources, "herbalist", "herbs-bc", seed=4, simulated_clock=True)
    with_temper(eager, backchannel_rate=1.0)
    steps = run(eager, story)
    own = barks(steps, "backchannel")
    assert own, "an NPC that always backchannels said mm-hm in one of the pauses"
    assert all(b.text in {"Mm.", "Oh, dear.", "I see.", "Go on, dearie."} for b in own)
    events = flat(steps)
    first_answer = next(i for i, e in enumerate(events) if isinstance(e, ev.Response))
    assert all(events.index(b) < first_answer for b in own), "only in the player's turn, before the answer"
    assert not any(isinstance(e, ev.SpeechStart) for e in events[:first_answer]), "the floor stayed theirs"
    silent = Session(resources, "herbalist", "herbs-quiet", seed=4, simulated_clock=True)
    with_temper(silent, backchannel_rate=0.0)
    assert not barks(run(silent, story), "backchannel")


TWINS = """\
id: baker
name: Test Baker
voice:
  voice: en-us+f2
topics:
  bread:
    examples:
      - Do you sell bread?
      - I need something sweet to eat.
    lines: [Fresh loaves every morning.]
  cake:
    examples:
      - Do you sell cakes?
      - I want something sweet to eat.
    lines: [Honey cake, two coppers.]
  prices:
    examples:
      - What does it cost?
      - How much is it?
    lines: [Cheap enough.]
    follow_ups: [cake]
  fallback:
    lines: ["Eh?"]
"""


def test_a_follow_up_wins_a_near_tie(resources, tmp_path) -> None:
    from npc_voice.model.topics import TopicMatcher
    from npc_voice.persona.loader import load_persona

    path = tmp_path / "baker.yaml"
    path.write_text(TWINS, encoding="utf-8")
    matcher = TopicMatcher(load_persona(path), resources.embedder)
    tie = "Something sweet to eat, please."  # as close to bread's example as to cake's (within 0.01)
    scores = matcher.scores(tie)
    assert 0 < scores["bread"] - scores["cake"] < 0.01
    assert matcher.match(tie).topic == "bread"
    assert abs(matcher.match(tie).margin - (scores["bread"] - scores["cake"])) < 1e-6  # torn: the margin says so
    after, used = matcher.match_after(tie, "prices")
    assert after.topic == "cake" and used  # after the prices, the follow-up wins
    assert matcher.match_after(tie, "bread") == (matcher.match(tie), False)  # bread has no follow-ups
    clear, used = matcher.match_after("Do you sell bread?", "prices")
    assert clear.topic == "bread" and not used  # a clear answer is not bent by the bonus
    assert clear.margin > 0.1


def test_audio_of_a_bark_is_heard(resources) -> None:
    s = Session(resources, "blacksmith", "smith-audio", seed=3, simulated_clock=True)
    with_temper(s, talkativeness=1.0)
    pcm = []
    played = silence()
    for k in range(15):
        r = s.step(silence(), played, cue="greeting" if k == 0 else None)
        played = r.pcm
        pcm.append(r.pcm)
    audio = np.concatenate(pcm)
    assert np.abs(audio).max() > 1000 and np.count_nonzero(audio) > 0.3 * SAMPLE_RATE


def test_a_slow_backchannel_over_the_npc_is_not_an_interruption(resources) -> None:
    synth = Synthesizer()
    slow = synth.synthesize("Oh, I see.", VoiceSettings(voice="en-us+m3", rate=140)).audio
    assert len(slow) / SAMPLE_RATE > 0.9, "longer than the blacksmith's backchannel length alone allows"
    question = synth.synthesize("Tell me the story of your forge.", PLAYER).audio

    def over(murmur: np.ndarray, npc: str) -> list[list[ev.Event]]:
        s = Session(resources, "blacksmith", npc, seed=1, simulated_clock=True, floor_events=True)
        run(s, np.concatenate([np.pad(question, (0, -len(question) % CHUNK_SAMPLES)), quiet(2.0)]))
        assert s.speaking, "the smith is telling the story"
        return run(s, np.concatenate([np.pad(murmur, (0, -len(murmur) % CHUNK_SAMPLES)), quiet(1.0)]))

    steps = over(slow, "smith-slow-bc")
    events = flat(steps)
    assert not any(isinstance(e, ev.Interrupted) for e in events)
    assert any(isinstance(e, ev.Backchannel) for e in events)
    # the floor event says "backchannel" in the step that reports it, and the NPC just goes on after that
    said = [any(isinstance(e, ev.Backchannel) for e in step) for step in steps]
    floor = [next(e.action for e in step if isinstance(e, ev.Floor)) == "backchannel" for step in steps]
    assert floor == said
    real = synth.synthesize("And what about the price of a shield?", PLAYER).audio
    assert any(isinstance(e, ev.Interrupted) for e in flat(over(real, "smith-real-cut")))


def test_a_cut_in_that_was_only_mm_hm_lets_the_npc_take_up_its_line(resources) -> None:
    s = Session(resources, "blacksmith", "smith-resume", seed=1, simulated_clock=True)
    unsaid = "I swung my first hammer when I was nine. My father taught me."
    taken_up = s.context.answers.answer_for("M-M-H-M.", s.loaded, random.Random(1), {}, "forge_story", True, unsaid)
    assert taken_up.reaction == "resume" and taken_up.text == unsaid and taken_up.choice is None
    answers = s.context.answers
    asked = answers.answer_for("How much is a shield?", s.loaded, random.Random(1), {}, "forge_story", True, unsaid)
    assert asked.reaction is None and asked.choice is not None and asked.choice.topic in ("buy_shield", "prices")


def test_the_persona_picks_among_nearly_equal_readings(resources) -> None:
    """Of the recogniser's readings, one nearly as likely as the best wins by fitting a topic; one far less
    likely never does, so a real off-topic turn stays what it was."""
    matcher = resources.persona("blacksmith").matcher
    assert matcher.pick_reading([("Below there.", -0.35), ("Hello there.", -0.5)]) == "Hello there."
    # a best reading that already fits a topic well stands (it names the forge: the answer is the same)
    settled = [("Tell me I'm out of your forge.", -0.6), ("Tell me about your forge.", -0.7)]
    assert matcher.pick_reading(settled) == "Tell me I'm out of your forge."
    off_topic = [("My cat likes fish.", -0.2), ("Can you fix my sword?", -0.9)]
    assert matcher.pick_reading(off_topic) == "My cat likes fish."
    assert matcher.pick_reading([("Below there.", -0.35)]) == "Below there."


def test_a_reading_that_stops_at_the_first_sentence_of_a_paused_turn_loses_to_one_that_goes_on(resources) -> None:
    """Whisper's best reading of "How much would you want? | For that longsword?" may end at the first "?";
    a nearly as likely reading that goes on from it heard the rest, and is answered. One far less likely does
    not win: it may be an invented tail ("Thank you."); nor does one that only repeats the words before it."""
    matcher = resources.persona("blacksmith").matcher
    readings = [("How much would you want?", -0.462), ("How much would you want, for net longsword?", -0.468),
                ("how much would you want, for net longsword?", -0.496)]
    assert matcher.pick_reading(readings) == "How much would you want, for net longsword?"
    unlikely_tail = [("Can you fix my sword?", -0.3), ("Can you fix my sword? Thank you.", -0.9)]
    assert matcher.pick_reading(unlikely_tail) == "Can you fix my sword?"
    looped = [("I really like to hear.", -0.5), ("I really like to hear, I really liked to hear.", -0.55)]
    assert matcher.pick_reading(looped) == "I really like to hear."  # Whisper looping reads nothing more


def test_a_correction_is_about_what_the_player_wants_not_what_they_name_to_refuse(resources) -> None:
    matcher = resources.persona("blacksmith").matcher
    assert matcher.match("Hang on, I asked about the dragon, not the forge.").topic == "dragon_story"
    assert matcher.match("Not the forge, the dragon!").topic == "dragon_story"
    assert matcher.match("Tell me about the forge.").topic == "forge_story"


def test_the_streaming_words_answer_when_whisper_read_nothing_the_persona_knows(resources) -> None:
    """An accent tiny.en cannot read ("And it will dissolve the in stock today." for "Any good swords in stock
    today?"): pocketsphinx on the persona's own words still caught "swords", and is answered. Only then: a
    reading that fits a topic stands, and streaming words that fit nothing well leave the reading as it is
    (and "say that again" the answer)."""
    matcher = resources.persona("blacksmith").matcher
    misread = matcher.match("And it will dissolve the in stock today.").similarity
    assert matcher.streaming_instead(misread, "that hold swords and soft of it")
    assert not matcher.streaming_instead(misread, "culture fix boy only tough")
    assert not matcher.streaming_instead(misread, "")
    read = matcher.match("Any good swords in stock today?").similarity
    assert not matcher.streaming_instead(read, "that hold swords and soft of it")


def test_a_turn_whisper_misread_is_answered_from_the_streaming_words(resources, monkeypatch) -> None:
    """The session's read of a turn: Whisper's reading (fixed here to one it made of a held-out voice) fits
    nothing, the streaming words of the turn name the swords, and the answer is about swords; with streaming
    words that fit nothing either, the reading stands and the NPC asks again."""
    s = Session(resources, "blacksmith", "smith-streaming", seed=1, simulated_clock=True)
    misread = "And it will dissolve the in stock today."
    monkeypatch.setattr(resources.asr, "read", lambda audio, prompt=None: Read(((misread, -0.6),)))
    audio = np.zeros(SAMPLE_RATE, np.int16)

    def prepare(fast: str):
        return s.context.reader.prepare(audio, fast, s.loaded, 1.0, {}, None, False, "", "")

    swords = prepare("that hold swords and soft of it")
    assert swords.heard == "that hold swords and soft of it" and swords.choice.topic == "buy_sword"
    again = prepare("culture fix boy only tough")
    assert again.heard == misread and again.choice.topic == "fallback"
