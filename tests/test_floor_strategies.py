"""The strategy sets and their arbiter: which rule decides, in which order, and what the decision record says;
the ``cascade`` set (pipecat's smart-turn, LiveKit's barge-in) as rules over the same observation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from npc_voice import events as ev
from npc_voice.audio.format import CHUNK_SAMPLES, silence
from npc_voice.config import CascadeConfig, FloorConfig
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation, Phase, phase_of
from npc_voice.floor.strategies import STRATEGIES, cascade_strategy, rules_strategy, strategy_for

RULES = rules_strategy(FloorConfig())
CASCADE = cascade_strategy()


def obs(**kw: object) -> FloorObservation:
    base = dict(npc_speaking=False, in_speech=False, speech_s=1.2, silence_s=0.0, turn_speech_s=1.2, words="")
    return FloorObservation(**{**base, **kw})  # type: ignore[arg-type]


def test_the_phase_picks_the_rules_and_each_decision_names_its_rule() -> None:
    assert phase_of(obs()) is Phase.LISTENING
    assert phase_of(obs(npc_speaking=True, in_speech=True)) is Phase.OVER_NPC
    assert phase_of(obs(npc_speaking=True, speech_s=0.3, silence_s=0.2)) is Phase.STRETCH_ENDED
    assert phase_of(obs(npc_speaking=True, speech_s=0.3, silence_s=0.2, stretch_judged=True)) is Phase.NPC_ALONE
    cases = [
        (obs(in_speech=True, words="can you"), Action.LISTEN, "listening.still_talking"),
        (obs(words="Can you fix my sword?", fit=0.9, silence_s=0.2), Action.RESPOND, "listening.clear_request"),
        (obs(words="I would like to buy", silence_s=0.5), Action.LISTEN, "listening.unfinished_or_unknown"),
        (obs(words="Who are you?", partial="who are you", fit=0.6, silence_s=0.4), Action.RESPOND,
         "listening.middling_fit"),
        (obs(words="do you sell", words_accurate=False, silence_s=0.4), Action.LISTEN, "listening.streaming_words"),
        (obs(npc_speaking=True, in_speech=True, speech_s=0.3, words="wait"), Action.INTERRUPTED, "speaking.cue_word"),
        (obs(npc_speaking=True, in_speech=True, speech_s=0.3, words="uh huh"), Action.CONTINUE,
         "speaking.short_stretch"),
        (obs(npc_speaking=True, in_speech=True, speech_s=1.2, words="m", stretch_words="Mm-hm."), Action.CONTINUE,
         "speaking.slow_backchannel"),
        (obs(npc_speaking=True, in_speech=True, speech_s=0.4, words="wait", stretch_player_p=0.1), Action.CONTINUE,
         "speaking.unknown_voice"),
        (obs(npc_speaking=True, speech_s=0.4, silence_s=0.2, words="okay"), Action.BACKCHANNEL, "ended.backchannel"),
        (obs(npc_speaking=True, speech_s=0.4, silence_s=0.2, stretch_judged=True), Action.CONTINUE,
         "speaking.nothing_heard"),
    ]
    for o, action, rule in cases:
        decision = RULES.decide(o)
        assert (decision.action, decision.rule) == (action, rule), o
        assert decision.why  # every rule says why in words and figures
    assert RULES.arbiter.names(Phase.LISTENING)[0] == "listening.still_talking"


def test_a_decision_record_reads_as_one_line_and_a_gate_overrules_it() -> None:
    d = RULES.decide(obs(words="Can you fix my sword?", fit=0.9, silence_s=0.2))
    assert d.describe() == "respond by listening.clear_request: fit 0.90: silence 0.20 of 0.14 s"
    gated = d.overruled(Action.LISTEN, "gate.voice_not_ready", "the answer's voice is not ready")
    assert (gated.action, gated.rule) == (Action.LISTEN, "gate.voice_not_ready") and d.action is Action.RESPOND
    assert FloorDecision(Action.BACKCHANNEL, "ended.backchannel").describe() == "backchannel by ended.backchannel"


def test_the_policies_are_chosen_by_name() -> None:
    assert [strategy_for(name, 0.5).name for name in STRATEGIES] == ["rules", "duplex", "cascade"]
    assert strategy_for("rules", 0.5).projection is not None and strategy_for("duplex", 0.5).needs_heads
    assert strategy_for("cascade", 0.5).needs_turn_model and strategy_for("cascade", 0.5).hears_player(0.0)
    with pytest.raises(ValueError, match="unknown floor policy 'moshi'"):
        strategy_for("moshi", 0.5)


def test_the_cascade_ends_a_turn_on_smart_turns_word_or_after_its_stop_secs() -> None:
    c = CascadeConfig()
    pause = obs(words="Can you fix my sword?", silence_s=c.vad_stop_s)
    assert CASCADE.decide(replace(pause, p_complete=0.9)).rule == "cascade.smart_turn"
    assert CASCADE.decide(replace(pause, p_complete=0.9)).action is Action.RESPOND
    assert CASCADE.decide(replace(pause, p_complete=0.2)).action is Action.LISTEN  # "I would like to buy..."
    assert CASCADE.decide(replace(pause, silence_s=0.1, p_complete=0.9)).action is Action.LISTEN  # VAD not stopped
    assert CASCADE.decide(replace(pause, p_complete=None)).action is Action.LISTEN
    long = CASCADE.decide(replace(pause, silence_s=c.stop_s, p_complete=None))
    assert (long.action, long.rule) == (Action.RESPOND, "cascade.stop_secs")
    # no fit, no words' ending, no projection: the cascade does not know the persona's topics
    assert CASCADE.projection is None


def test_the_cascade_barges_in_after_half_a_second_or_two_words_and_resumes_after_a_false_interruption() -> None:
    over = obs(npc_speaking=True, in_speech=True, speech_s=0.3, words="mm")
    assert CASCADE.decide(over).action is Action.CONTINUE
    assert CASCADE.decide(replace(over, speech_s=0.5)).rule == "cascade.barge_in"
    assert CASCADE.decide(replace(over, words="no wait")).action is Action.INTERRUPTED  # two words, early
    # no player head: echo that passes the canceller is the player too (what the bench's echo cases test)
    assert CASCADE.decide(replace(over, speech_s=0.6, stretch_player_p=0.0)).action is Action.INTERRUPTED
    ended = obs(npc_speaking=True, speech_s=0.3, silence_s=0.2, words="mm")
    assert CASCADE.decide(ended).action is Action.BACKCHANNEL
    # cut off by a cough: no words 2 s later, so the line is taken up again
    cough = obs(turn_speech_s=0.6, silence_s=2.0, words="", line_cut_off=True)
    resumed = CASCADE.decide(cough)
    assert (resumed.action, resumed.rule, resumed.resume) == (Action.RESPOND, "cascade.false_interruption", True)
    assert CASCADE.decide(replace(cough, silence_s=1.0)).action is Action.LISTEN
    assert not CASCADE.decide(replace(cough, words="How much is it?", p_complete=0.9)).resume


def test_a_cascade_session_answers_with_pipecats_smart_turn(resources) -> None:
    """The real analyzer from pipecat's wheel, fed and asked as pipecat does, in a real session."""
    pytest.importorskip("pipecat")
    from npc_voice.engine.session import Session
    from npc_voice.speech.tts import Synthesizer, VoiceSettings

    speech = Synthesizer().synthesize("Can you repair my armor?", VoiceSettings(voice="en-us+m3", rate=165)).audio
    mic = np.concatenate([np.zeros(CHUNK_SAMPLES, np.int16), speech.astype(np.int16),
                          np.zeros(10 * CHUNK_SAMPLES, np.int16)])
    mic = np.pad(mic, (0, -len(mic) % CHUNK_SAMPLES))
    session = Session(resources, "blacksmith", "cascade", seed=1, simulated_clock=True, policy="cascade",
                      floor_events=True)
    played, results = silence(), []
    for chunk in mic.reshape(-1, CHUNK_SAMPLES):
        results.append(session.step(chunk, played))
        played = results[-1].pcm
    session.close()
    answered = [r for r in results if any(isinstance(e, ev.Response) for e in r.events)]
    assert len(answered) == 1
    assert answered[0].decision.rule == "cascade.smart_turn"
    response = next(e for e in answered[0].events if isinstance(e, ev.Response))
    assert response.topic == "repair"
    floor = next(e for e in answered[0].events if isinstance(e, ev.Floor))
    assert floor.rule == "cascade.smart_turn" and "P(complete)" in (floor.why or "")
