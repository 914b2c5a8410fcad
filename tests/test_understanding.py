"""Heard clearly but off-topic, a toss-up between two topics, or not heard clearly: what the words mean, the line
that answers them, the rule that times it, and the persona sections behind it. Fakes and hand-made
observations: milliseconds (the clarity model's own file is read, nothing runs)."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from npc_voice.config import FloorConfig, ListeningConfig, UnderstandingConfig
from npc_voice.engine.answers import UNKNOWN_TOPIC, WHICH_TOPIC, AnswerBuilder
from npc_voice.features.asr import Read
from npc_voice.features.words import key_word
from npc_voice.floor.decision import Action
from npc_voice.floor.evidence import understand
from npc_voice.floor.observation import FloorObservation, Understood
from npc_voice.floor.strategies import rules_strategy
from npc_voice.model.clarity import Clarity, agreement, features
from npc_voice.model.topics import TopicChoice
from npc_voice.persona.loader import PersonaError, load_persona
from tests.fakes import FakeLoaded, FakePersona, FakeResources, FakeSynthesizer
from tests.test_persona import GOOD, write

U = UnderstandingConfig()
RULES = rules_strategy(FloorConfig())
SURE, LOW = 0.95, 0.2


@pytest.mark.parametrize(("fit", "margin", "clarity", "can_ask", "meaning"), [
    (0.30, 0.0, SURE, True, Understood.UNKNOWN),  # "How do computers work?"
    (0.30, 0.0, LOW, True, Understood.UNCLEAR),  # "I knew can fall in formation"
    (0.47, 0.2, LOW, True, Understood.UNCLEAR),  # a weak fit the recogniser was unsure of
    (0.47, 0.2, SURE, True, Understood.TOPIC),  # ... heard clearly: a request in new words
    (0.55, 0.2, LOW, True, Understood.TOPIC),  # fitting well enough to answer anyway
    (0.55, 0.01, SURE, True, Understood.WHICH),  # two topics a hair apart, heard clearly: ask which
    (0.55, 0.01, SURE, False, Understood.TOPIC),  # ... unless the persona cannot name them
    (0.55, 0.01, LOW, True, Understood.UNCLEAR),
    (0.65, 0.01, SURE, True, Understood.TOPIC),  # both topics fit well: mostly both right
    (0.30, 0.0, None, True, None),  # no confidence (streaming words, Moonshine): decide as before
])
def test_what_words_mean(fit, margin, clarity, can_ask, meaning) -> None:
    assert understand(fit, margin, clarity, can_ask, U) is meaning


def test_the_recognisers_confidence_not_the_fit_tells_off_topic_from_misheard() -> None:
    assert understand(0.3, 0.0, SURE, True, U) is not understand(0.3, 0.0, LOW, True, U)


def test_key_word_echoes_only_names() -> None:
    assert key_word("I'm looking for information about Cambridge.") == "Cambridge"
    assert key_word("I live in New Jersey now.") == "New Jersey"
    assert key_word("Can you cut my hair?") is None  # "Hair? Never heard of it." would mock the player
    assert key_word("London is nice.") is None  # a sentence's first word is capitalised anyway


def test_clarity_features_and_the_fitted_model() -> None:
    sure = Read((("How do computers work?", -0.2), ("How do computers work.", -0.5)), (0.9, 0.95, 0.9, 0.92, 0.9))
    torn = Read((("Below there.", -0.9), ("Hello there.", -0.95)), (0.3, 0.05, 0.4))
    assert features(Read((("hi", -0.1),))) is None  # no token probabilities: nothing to judge
    f = features(sure)
    assert f is not None and f["agreement"] == 1.0 and f["margin"] == pytest.approx(0.3)
    assert agreement("Below there.", "Hello there.") == 0.5
    model = Clarity.load("tiny.en")
    assert model is not None, "models/clarity/tiny.en.json (python -m npc_voice.train.clarity)"
    assert model.p_clear(sure) > U.clear_p > model.p_clear(torn)


@pytest.mark.parametrize(("meaning", "name"), [(Understood.UNKNOWN, "listening.off_topic"),
                                               (Understood.UNCLEAR, "listening.not_heard_clearly"),
                                               (Understood.WHICH, "listening.which_topic")])
def test_each_meaning_has_its_rule_and_gap(meaning, name) -> None:
    gaps = {"listening.off_topic": ListeningConfig().end_silence_s,
            "listening.not_heard_clearly": ListeningConfig().unclear_silence_s,
            "listening.which_topic": ListeningConfig().end_silence_s}
    fit = 0.55 if meaning is Understood.WHICH else 0.3  # a toss-up is between two topics that fit, if weakly
    o = FloorObservation(npc_speaking=False, in_speech=False, speech_s=1.2, silence_s=0.0, turn_speech_s=1.2,
                         words="How do computers work?", fit=fit, margin=0.01, clarity=0.9, understood=meaning)
    assert RULES.decide(o).rule == name and RULES.decide(o).action is Action.LISTEN
    if meaning is Understood.UNKNOWN:  # the prosody hears the turn complete: the clear request's gap
        sure = replace(o, p_end=1.0, silence_s=ListeningConfig().sure_silence_s)
        assert RULES.decide(sure).action is Action.RESPOND
    done = RULES.decide(replace(o, silence_s=gaps[name]))
    assert done.rule == name and done.action is Action.RESPOND
    assert gaps["listening.off_topic"] < ListeningConfig().incomplete_silence_s  # no longer the 1.2 s wait


def statement(**kw) -> FloorObservation:
    """ "My feet are killing me after that walk.": heard clearly, fitting nothing, said in one stretch with a final
    fall."""
    base = dict(npc_speaking=False, in_speech=False, speech_s=1.6, silence_s=0.0, turn_speech_s=1.6,
                words="My feet are killing me after that walk.", fit=0.25, clarity=0.95, p_end=1.0,
                understood=Understood.UNKNOWN)
    return FloorObservation(**{**base, **kw})


def test_a_clear_statement_that_fits_nothing_is_answered_at_the_middling_gap() -> None:
    gap = ListeningConfig().end_silence_s
    early = RULES.decide(statement(silence_s=gap - 0.05))
    assert early.rule == "listening.off_topic_statement" and early.action is Action.LISTEN
    done = RULES.decide(statement(silence_s=gap))
    assert done.rule == "listening.off_topic_statement" and done.action is Action.RESPOND
    assert "P(end) 1.00" in done.why


@pytest.mark.parametrize("kw", [
    dict(turn_speech_s=4.5),  # a sentence after others in the same turn: someone reading or telling a story
    dict(p_end=0.4),  # the level tune of a clause: more is coming
    dict(p_end=None),  # no prosody model: as before
])
def test_a_statement_that_may_go_on_still_waits_the_long_silence(kw) -> None:
    o = statement(silence_s=ListeningConfig().end_silence_s + 0.1, **kw)
    assert RULES.decide(o).rule == "listening.unfinished_or_unknown" and RULES.decide(o).action is Action.LISTEN


def test_a_statement_not_heard_clearly_is_asked_again_not_answered_unknown() -> None:
    o = statement(silence_s=ListeningConfig().end_silence_s, clarity=0.2, understood=Understood.UNCLEAR)
    assert RULES.decide(o).rule == "listening.not_heard_clearly" and RULES.decide(o).action is Action.LISTEN


def test_a_toss_up_whose_streaming_words_end_unfinished_waits() -> None:
    o = FloorObservation(npc_speaking=False, in_speech=False, speech_s=1.2, silence_s=0.5, turn_speech_s=1.2,
                         words="Can you make me one.", partial="can you make me one of the", fit=0.59,
                         margin=0.0, clarity=0.9, understood=Understood.WHICH)
    assert RULES.decide(o).rule == "listening.torn_words" and RULES.decide(o).action is Action.LISTEN
    cut = replace(o, words="I would like to buy.", partial="i would like to buy")  # Whisper's period, a verb left
    assert RULES.decide(cut).rule == "listening.unfinished_or_unknown" and RULES.decide(cut).action is Action.LISTEN


@pytest.mark.parametrize("words", ["I would like to buy", "That's not.", "Sure."])
def test_unfinished_words_fragments_and_backchannels_still_wait(words: str) -> None:
    o = FloorObservation(npc_speaking=False, in_speech=False, speech_s=1.2, silence_s=0.7, turn_speech_s=1.2,
                         words=words, fit=0.3, clarity=0.9, understood=Understood.UNKNOWN)
    assert RULES.decide(o).rule == "listening.unfinished_or_unknown" and RULES.decide(o).action is Action.LISTEN
    unclear = replace(o, clarity=0.1, understood=Understood.UNCLEAR)
    assert words != "I would like to buy" or RULES.decide(unclear).rule == "listening.unfinished_or_unknown"


class TossUpMatcher:
    """Every text fits buy_sword 0.6 and buy_shield a hair less (a toss-up), or nothing (0.2) if it says 'weather'."""

    def match_after(self, text: str, previous: str | None) -> tuple[TopicChoice, bool]:
        if "weather" in text.lower() or "cambridge" in text.lower():
            return TopicChoice(topic="fallback", similarity=0.2, focus=text), False
        return TopicChoice(topic="buy_sword", similarity=0.55, focus=text, margin=0.01, runner_up="buy_shield"), False


def answers(which: bool = True) -> tuple[AnswerBuilder, FakeLoaded]:
    persona = FakePersona({"buy_sword": "A fine longsword.", "fallback": "Eh? Say that again."})
    if not which:
        persona.which_line = lambda *a: None  # type: ignore[method-assign]
    builder = AnswerBuilder(FakeResources(), FakeSynthesizer().synthesize, sentiment=lambda text: None)
    return builder, FakeLoaded(persona, TossUpMatcher())  # type: ignore[arg-type]


def test_the_answer_matches_the_meaning() -> None:
    builder, loaded = answers()
    rng = random.Random(1)
    off = builder.answer_for("I'm looking for information about Cambridge.", loaded, rng, {}, None, False,
                             clarity=SURE)
    assert off.choice.topic == UNKNOWN_TOPIC and off.text == "Cambridge? Never heard of it."
    assert off.understood is Understood.UNKNOWN and off.clarity == SURE
    misheard = builder.answer_for("The weather was strange", loaded, rng, {}, None, False, clarity=LOW)
    assert misheard.choice.topic == "fallback" and misheard.text == "Eh? Say that again."
    toss = builder.answer_for("Can you make me something?", loaded, rng, {}, None, False, clarity=SURE)
    assert toss.choice.topic == WHICH_TOPIC and toss.text == "buy_sword or buy_shield?"
    old = builder.answer_for("The weather was strange", loaded, rng, {}, None, False)  # no confidence
    assert old.choice.topic == "fallback" and old.understood is None
    builder, loaded = answers(which=False)
    plain = builder.answer_for("Can you make me something?", loaded, rng, {}, None, False, clarity=SURE)
    assert plain.choice.topic == "buy_sword"  # a persona that cannot ask which answers its best guess


UNKNOWN = """unknown:
  - "{said}? Never heard of it."
  - Can't help you there.
which:
  - "{first} or {second}, friend?"
"""


def test_persona_unknown_and_which_sections(tmp_path: Path) -> None:
    text = GOOD.replace("  buy:\n", "  buy:\n    name: a sword\n")
    text = text.replace("  fallback:\n", "  fallback:\n    name: nothing\n")
    p = load_persona(write(tmp_path, text + UNKNOWN))
    rng = random.Random(3)
    assert {p.unknown_line("Paris", {}, rng).text for _ in range(20)} == {"Paris? Never heard of it.",
                                                                           "Can't help you there."}
    assert {p.unknown_line(None, {}, rng).text for _ in range(10)} == {"Can't help you there."}
    assert p.which_line("buy", "fallback", {}, rng).text == "A sword or nothing, friend?"


def test_persona_sections_are_validated_with_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(PersonaError) as info:
        load_persona(write(tmp_path, GOOD.replace("      - A sword is {price}.", "      - A {said} is {price}.")))
    line = GOOD.splitlines().index("      - A sword is {price}.") + 1
    assert "only 'unknown' lines say" in str(info.value) and f"smith.yaml:{line}:" in str(info.value)
    with pytest.raises(PersonaError) as info:
        load_persona(write(tmp_path, GOOD + 'which:\n  - "{first}, is it?"\n'))
    text = str(info.value)
    which = GOOD.count("\n") + 1
    assert "does not say {second}" in text and "fewer have one" in text
    assert f"smith.yaml:{which}:" in text and f"smith.yaml:{which + 1}:" in text
    with pytest.raises(PersonaError) as info:
        load_persona(write(tmp_path, GOOD + 'unknown:\n  - "{said}? No."\n'))
    assert "every 'unknown' line has a condition or says {said}" in str(info.value)


def test_shipped_personas_have_unknown_and_which_lines() -> None:
    for path in sorted((Path(__file__).resolve().parents[1] / "assets" / "personas").glob("*.yaml")):
        p = load_persona(path)
        assert p.unknown and p.unknown_line(None, {}, random.Random(0)) is not None, path.name
        named = [t for t in p.topics.values() if t.name]
        assert p.which_line(named[0].id, named[1].id, {}, random.Random(0)) is not None, path.name


@pytest.mark.parametrize(("words", "asks"), [
    ("Do you sell candles?", True), ("Where can I get my hair cut?", True), ("It's good to see you.", True),
    ("Who painted the Mona Lisa", True), ("He makes me harshly feel.", False), ("My daughter turned six.", False),
    ("", False),
])
def test_words_that_ask_or_speak_to_the_listener(words: str, asks: bool) -> None:
    from npc_voice.features.words import speaks_to_listener

    assert speaks_to_listener(words) is asks
