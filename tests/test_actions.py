"""Actions on lines: what the game is told to do as the NPC says a line. Each fires once per spoken line, at its word,
never for the part of a line the player cut off; a line whose action the game would refuse (by its state) is not
chosen; the sidecar sends them only to a client that asked."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from npc_voice import events as ev
from npc_voice.audio.format import CHUNK_SAMPLES
from npc_voice.config import EngineConfig
from npc_voice.engine.clock import RealTimeClock, SimulatedClock
from npc_voice.engine.context import EngineParts
from npc_voice.engine.session import Session
from npc_voice.engine.speaker import Speaker
from npc_voice.engine.state import PersonaRef, SpeakingState, StretchState
from npc_voice.model.emotion import NpcFeelings
from npc_voice.persona.loader import LineAction, load_persona
from npc_voice.speech.marks import Mark
from npc_voice.speech.stream import LineStream
from npc_voice.transport import protocol as p
from tests.fakes import (
    FakeAccurateByLevel,
    FakeCanceller,
    FakeHeads,
    FakeLoaded,
    FakeMatcher,
    FakePersona,
    FakeRecognizer,
    FakeResources,
    FakeSynthesizer,
    FakeVAD,
    Immediate,
)

BLACKSMITH = Path(__file__).resolve().parents[1] / "assets" / "personas" / "blacksmith.yaml"
OFFER = LineAction(kind="offer", item="longsword", price=40, at="forty")
GIVE = LineAction(kind="give", item="longsword", price=40, at="yours")
SAY_HELLO = LineAction(kind="trigger", name="wave")  # at the line's first word


def synth(text: str):  # noqa: ANN201
    utt = FakeSynthesizer().synthesize(text)
    return utt.audio, utt.words, utt.visemes


def play(stream: LineStream, limit: int = 100) -> list[tuple[int, float, object]]:
    """Every mark the stream reports: (chunk, offset, payload)."""
    out = []
    for k in range(limit):
        chunk = stream.next_chunk()
        out += [(k, offset, payload) for offset, payload in chunk.marks]
        if chunk.finished:
            break
    return out


def word_time(stream: LineStream, word: str) -> float:
    """When ``word`` starts in the whole line, from the chunks' subtitle timing (what the game is told)."""
    for k in range(100):
        chunk = stream.next_chunk()
        for offset, w in chunk.words:
            if w.strip(".,").lower() == word:
                return 0.2 * k + offset
        if chunk.finished:
            break
    raise AssertionError(f"{word!r} never played")


def test_a_mark_is_reported_once_in_the_chunk_its_word_starts_at_that_word() -> None:
    text = "A fine longsword, forty gold. Forty, mind you. Balanced it myself."
    marks = [Mark("forty", "offer"), Mark(None, "start"), Mark("myself", "end")]
    reported = play(LineStream("l1", text, synth, Immediate(), lead_in=0.05, marks=marks))
    assert sorted(payload for _, _, payload in reported) == ["end", "offer", "start"]  # each once
    at = {payload: 0.2 * k + offset for k, offset, payload in reported}
    assert at["start"] == pytest.approx(word_time(LineStream("l1", text, synth, Immediate(), lead_in=0.05), "a"))
    # the first "forty", not the second: a mark waits for the first time the line says its word
    assert at["offer"] == pytest.approx(word_time(LineStream("l1", text, synth, Immediate(), lead_in=0.05), "forty"))
    assert at["start"] < at["offer"] < at["end"]


def test_a_line_cut_off_never_reports_the_marks_it_did_not_reach() -> None:
    stream = LineStream("l2", "Balanced it myself over many days. The price is forty gold.", synth, Immediate(),
                        marks=[Mark(None, "start"), Mark("forty", "offer")])
    reported = [payload for _, offset, payload in play(stream, limit=5)]  # one second of it
    assert reported == ["start"]
    stream.cancel()
    assert [m.payload for m in stream.unsaid_marks()] == ["offer"]
    for _ in range(40):
        assert not stream.next_chunk().marks  # whatever is asked of it now, the rest was never said


def test_let_me_finish_takes_the_sentence_up_again_without_firing_twice() -> None:
    stream = LineStream("l3", "Here, the longsword is yours. Mind the edge.", synth, Immediate(),
                        marks=[Mark("yours", "give"), Mark("edge", "warn")])
    seen = [payload for _, _, payload in play(stream, limit=8)]  # 1.6 s: "yours" (1.2 s) was said
    assert seen == ["give"]
    stream.interject(synth("Let me finish."))  # the sentence is said again after the aside
    seen += [payload for _, _, payload in play(stream)]
    assert seen == ["give", "warn"]


def speaker(voices: Any = None, tts: Any = None, simulated: bool = True) -> Speaker:
    loaded = FakeLoaded(FakePersona({}), FakeMatcher({}))
    feelings = NpcFeelings(loaded.persona.temperament)
    clock = SimulatedClock() if simulated else RealTimeClock(0.0)
    return Speaker("smith", tts or FakeSynthesizer(), voices or Immediate(), PersonaRef("smith", loaded),  # type: ignore[arg-type]
                   feelings, SpeakingState(), StretchState(), clock)


class SlowSynthesizer(FakeSynthesizer):
    """A live Piper sentence: it takes a while to synthesise."""

    def synthesize(self, text: str, voice: Any = None) -> Any:
        time.sleep(0.3)
        return super().synthesize(text, voice)


@pytest.mark.parametrize("simulated", [True, False])
def test_a_sentence_still_being_synthesised_is_waited_for_only_on_a_simulated_clock(simulated: bool) -> None:
    """A bench's steps outrun real time: there the next chunk waits for the sentence (and the step is charged
    for it); a game's step never blocks and plays silence until the sentence is ready."""
    with ThreadPoolExecutor(1) as pool:
        s = speaker(pool, SlowSynthesizer(), simulated)
        events: list[ev.Event] = []
        s.start_line("smith-1", "Aye, I can mend that.", pool.submit(s.synth, "Aye, I can mend that."), events, 0)
        t = time.perf_counter()
        pcm = s.next_chunk(events)
        took = time.perf_counter() - t
    if simulated:
        assert np.abs(pcm).max() > 1000 and any(isinstance(e, ev.Words) for e in events)
        assert took >= 0.2
    else:
        assert not pcm.any() and took < 0.1


def test_a_line_taken_up_again_after_a_false_cut_in_keeps_only_the_actions_it_had_not_reached() -> None:
    s = speaker()
    events: list[ev.Event] = []
    text = "A fine longsword, forty gold. Here, it is yours for the asking."
    s.start_line("smith-1", text, None, events, 0, actions=(OFFER, GIVE))
    for _ in range(8):  # 1.6 s: "forty" (0.9 s) said, "yours" (second sentence) not
        s.next_chunk(events)
    s.stop_line(events, "mm hm")
    said = [e for e in events if isinstance(e, ev.GameAction)]
    assert [(e.kind, e.line_id, e.index, e.word) for e in said] == [("offer", "smith-1", 0, "forty")]
    events.clear()
    assert s.speaking.cut is not None
    s.start_line("smith-2", s.speaking.cut.unsaid, None, events, 9)  # the cut-in was only "mm-hm": resume
    for _ in range(40):
        s.next_chunk(events)
    said = [e for e in events if isinstance(e, ev.GameAction)]
    assert [(e.kind, e.line_id, e.index, e.item, e.price) for e in said] == [("give", "smith-2", 1, "longsword", 40)]


def action_session(vad: list[int], utterances: list[list[str]], said: dict[int, str], line: str,
                   actions: tuple[LineAction, ...]) -> Session:
    persona = FakePersona({"buy_sword": line}, reactions={"interrupted": ["Hm? Go on."]},
                          actions={"buy_sword": actions})
    res = FakeResources(asr=FakeAccurateByLevel(said), loaded=FakeLoaded(persona, FakeMatcher({"sword": "buy_sword"})))
    parts = EngineParts(vad=lambda: FakeVAD([0.9 if level else 0.0 for level in vad]), canceller=FakeCanceller,
                        recognizer=lambda asr, lm: FakeRecognizer(*utterances), heads=lambda: FakeHeads(0.9),
                        use_endpoint=False, sentiment=lambda text: None)
    return Session(res, "smith", "smith", seed=1, simulated_clock=True, parts=parts,  # type: ignore[arg-type]
                   config=EngineConfig())


def step_all(session: Session, levels: list[int]) -> list[list[ev.Event]]:
    out = []
    for level in levels:
        out.append(session.step(np.full(CHUNK_SAMPLES, level, np.int16), None).events)
    session.close()
    return out


def test_an_answer_fires_its_action_once_at_its_word() -> None:
    mic = [0, 3000, 3000, 3000, 3000] + [0] * 30
    line = "A fine longsword, forty gold. Balanced it myself."
    steps = step_all(action_session(mic, [["how much", "how much is a sword"]], {3000: "How much is a sword?"},
                                    line, (SAY_HELLO, OFFER)), mic)
    events = [e for step in steps for e in step]
    (start,) = [e for e in events if isinstance(e, ev.SpeechStart)]
    actions = [e for e in events if isinstance(e, ev.GameAction)]
    assert [(a.kind, a.index, a.line_id) for a in actions] == [("trigger", 0, start.line_id),
                                                               ("offer", 1, start.line_id)]
    assert actions[1].item == "longsword" and actions[1].price == 40 and actions[1].word == "forty"
    for action, word in ((actions[0], "A"), (actions[1], "forty")):
        k = next(i for i, step in enumerate(steps) if action in step)
        words = [w for e in steps[k] if isinstance(e, ev.Words) for w in e.words]
        assert (action.offset, word) in [(o, w.strip(",.")) for o, w in words], "at its word, in its chunk"


def test_an_interrupted_line_never_sends_the_actions_of_its_unsaid_part() -> None:
    # The answer says its price late (about 4 s in); the player cuts in 1.2 s into it: "wait, stop".
    mic = [0, 3000, 3000, 3000, 3000] + [0] * 7 + [2000] * 6 + [0] * 40
    line = "A fine longsword. Balanced it myself over many long days. The price is forty gold."
    steps = step_all(action_session(mic, [["how much is a sword"], ["wait", "wait stop"]],
                                    {3000: "How much is a sword?", 2000: "Wait, stop."}, line, (SAY_HELLO, OFFER)),
                     mic)
    events = [e for step in steps for e in step]
    (answer,) = [e for e in events if isinstance(e, ev.Response)]
    assert answer.topic == "buy_sword"
    (cut,) = [e for e in events if isinstance(e, ev.Interrupted)]
    assert not any(w == "forty" for e in events if isinstance(e, ev.Words) for _, w in e.words), "never said"
    assert [(a.kind, a.line_id) for a in events if isinstance(a, ev.GameAction)] == [("trigger", cut.line_id)]


def test_a_line_whose_action_the_game_refuses_is_not_chosen() -> None:
    smith = load_persona(BLACKSMITH)
    rng = random.Random(7)
    poor = {"open_offer": "longsword", "gold": 25, "has_longsword": False}
    for _ in range(50):
        line = smith.choose_line("accept", poor, rng)
        assert not any(a.kind == "give" for a in line.actions)
        assert "forty gold" in line.text.lower()  # "Come back with forty gold."
    rich = dict(poor, gold=60)
    sale = smith.choose_line("accept", rich, rng)
    assert [(a.kind, a.item, a.price, a.at) for a in sale.actions] == [("give", "longsword", 40, "yours")]
    owned = dict(rich, has_longsword=True, open_offer="none")
    for _ in range(20):
        line = smith.choose_line("buy_sword", owned, rng)
        assert "already have" in line.text and not line.actions


def test_actions_go_only_to_a_client_that_asked_and_the_open_says_who_the_player_is() -> None:
    frames = p.encode(p.OpenSession(session="s", persona="blacksmith", npc_id="smith", player="save-1", actions=True))
    opened = p.decode(frames)
    assert isinstance(opened, p.OpenSession) and opened.player == "save-1" and opened.actions
    anonymous = p.OpenSession(session="s", persona="blacksmith", npc_id="smith")
    assert "player" not in anonymous.header()  # what an older sidecar was sent before
    decoded = p.decode(p.encode(anonymous))
    assert decoded.player is None and not decoded.actions
    for bad in ("", " ", "x" * (p.MAX_PLAYER_ID + 1), "a\nb", 7):
        header = dict(anonymous.header(), player=bad)
        import msgpack

        with pytest.raises(p.ProtocolError) as err:
            p.decode([msgpack.packb(header)])
        assert err.value.code == "bad_field"
    wire = ev.GameAction(offset=0.1, line_id="smith-2", index=0, kind="give", item="longsword", price=40).to_wire()
    assert ev.event_from_wire(wire) == ev.GameAction(offset=0.1, line_id="smith-2", index=0, kind="give",
                                                     item="longsword", price=40)
