"""The ``rules`` strategy set, rule by rule: when the player's turn is over, and what is a backchannel.
Pure functions of a frozen observation: no models, milliseconds."""

from __future__ import annotations

from dataclasses import replace

from npc_voice.config import FloorConfig, ProjectionConfig
from npc_voice.features.words import finish_cut_word, is_own_words, looks_incomplete, strip_discourse
from npc_voice.floor.decision import Action
from npc_voice.floor.observation import FloorObservation, Understood
from npc_voice.floor.strategies import StrategySet, rules_strategy

RULES = rules_strategy(FloorConfig())
GAP = ProjectionConfig().projected_gap_s


def obs(**kw) -> FloorObservation:
    base = dict(npc_speaking=False, in_speech=False, speech_s=1.2, silence_s=0.0, turn_speech_s=1.2, words="")
    base.update(kw)
    return FloorObservation(**base)


def decide(o: FloorObservation, accurate: bool = True, strategy: StrategySet = RULES) -> Action:
    return strategy.decide(replace(o, words_accurate=accurate)).action


def rule(o: FloorObservation, strategy: StrategySet = RULES) -> str:
    return strategy.decide(o).rule


def project(o: FloorObservation, strategy: StrategySet = RULES) -> float | None:
    assert strategy.projection is not None
    return strategy.projection.lead(o)


def patient(patience: float) -> StrategySet:
    return rules_strategy(FloorConfig.for_patience(patience))


def test_answers_after_a_short_silence_when_the_words_are_complete() -> None:
    assert decide(obs(words="where is the castle", silence_s=0.1)) is Action.LISTEN
    assert decide(obs(words="where is the castle", silence_s=0.4)) is Action.RESPOND


def test_words_that_look_unfinished_but_fit_a_topic_strongly_get_the_middling_gap_not_the_long_wait() -> None:
    """tiny.en wrote "Got any shields I could buy," for "Got any shields I could buy?" (tuning seed 7001)."""
    gap = FloorConfig().listening.end_silence_s
    shields = obs(words="Got any shields I could buy,", partial="gotten a shield killed law you", fit=0.85,
                  clarity=0.1, understood=Understood.TOPIC)
    assert decide(replace(shields, silence_s=gap - 0.05)) is Action.LISTEN
    assert decide(replace(shields, silence_s=gap + 0.05)) is Action.RESPOND
    assert rule(replace(shields, silence_s=gap + 0.05)) == "listening.strong_fit_unfinished"
    # the first half of a paused request, words that trail off, or no word from the recogniser on how sure it was:
    # the long silence, as before
    for o in (replace(shields, words="What I need most is", fit=0.68), replace(shields, words="Got any shields..."),
              replace(shields, understood=None, clarity=None)):
        assert decide(replace(o, silence_s=0.9)) is Action.LISTEN, o.words
        assert decide(replace(o, silence_s=1.25)) is Action.RESPOND, o.words


def test_a_clear_request_gets_a_human_gap_a_doubtful_one_waits() -> None:
    clear = obs(words="Can you fix my sword?", partial="can you fix my sword if", silence_s=0.22, fit=0.9)
    assert decide(clear, accurate=True) is Action.RESPOND  # the streaming words' "if" does not veto it
    # a human gap, not the short pause of a comma
    assert decide(replace(clear, silence_s=0.16), accurate=True) is Action.RESPOND
    assert decide(replace(clear, silence_s=0.128), accurate=True) is Action.LISTEN
    assert decide(clear, accurate=False) is Action.LISTEN  # the fit counts only for accurate words
    # Whisper wrote a sentence from the fragment "I would like to buy": it fits no topic well
    fragment = obs(words="I would like to mine.", partial="i would like to", fit=0.43)
    assert decide(fragment, accurate=True) is Action.LISTEN
    assert decide(obs(words="I would like to mine.", fit=0.43, silence_s=0.85), accurate=True) is Action.LISTEN
    assert decide(obs(words="I would like to mine.", fit=0.43, silence_s=1.25), accurate=True) is Action.RESPOND
    # a middling fit whose streaming words end unfinished: the recognisers disagree, wait as for a fragment
    bye = obs(words="I would like to bye.", partial="i'll if life survive for", fit=0.64)
    assert decide(replace(bye, silence_s=0.85), accurate=True) is Action.LISTEN
    assert decide(replace(bye, silence_s=1.25), accurate=True) is Action.RESPOND
    # a middling fit of words both recognisers hear finished: a longer gap (a completed fragment can be one)
    middling = obs(words="Who are you?", partial="who are you", fit=0.6)
    assert decide(replace(middling, silence_s=0.3), accurate=True) is Action.LISTEN
    assert decide(replace(middling, silence_s=0.36), accurate=True) is Action.RESPOND
    # ... unless it is a question that fits one topic plainly better than any other: it asks for an answer
    plain = replace(middling, fit=0.63, margin=0.27, silence_s=0.16)
    assert decide(plain, accurate=True) is Action.RESPOND
    assert decide(replace(plain, margin=0.1), accurate=True) is Action.LISTEN  # torn between two topics
    assert decide(replace(plain, fit=0.55), accurate=True) is Action.LISTEN
    # a statement that fits as well may be a fragment Whisper completed ("I would like to bye.")
    assert decide(replace(plain, words="I would like to bye."), accurate=True) is Action.LISTEN
    # unfinished accurate words wait longest, however well they fit
    assert decide(obs(words="Can you fix my", fit=0.8, silence_s=0.9), accurate=True) is Action.LISTEN


def test_waits_longer_when_the_words_stop_mid_sentence() -> None:
    assert looks_incomplete("I would like to buy")
    assert decide(obs(words="I would like to buy", silence_s=0.7)) is Action.LISTEN
    assert decide(obs(words="I would like to buy", silence_s=1.3)) is Action.RESPOND


def test_a_question_may_end_on_its_preposition() -> None:
    assert not looks_incomplete("Where did the dragon come from?")
    assert not looks_incomplete("Wait, what is this sword made of?")
    assert looks_incomplete("Where did the dragon come from")  # unpunctuated streaming words: not yet
    assert looks_incomplete("I would like to hear about")
    assert looks_incomplete("Can you tell me where?")


def test_a_question_inside_the_sentence_may_end_on_its_verb() -> None:
    assert not looks_incomplete("Can you tell me where the castle is?")
    assert not looks_incomplete("Can you tell me where? The castle is.")  # how tiny.en writes the pause in it
    assert not looks_incomplete("Do you know how much a good shield is")
    assert not looks_incomplete("I wonder who you are.")
    assert looks_incomplete("What I need most is")  # the wh-word opens the sentence: more to come
    assert looks_incomplete("And what I need most is")
    assert looks_incomplete("Can you tell me where is")  # no subject between: "...where is the inn?"
    assert looks_incomplete("My armor is")


def test_a_read_that_cut_its_last_word_is_finished_by_the_streaming_words_where_they_agree() -> None:
    assert finish_cut_word("Tell me about your four.", "tell me about your forge") == "tell me about your forge"
    assert finish_cut_word("What happened with the draft?", "what to the you the dragon") == (
        "what happened with the dragon")  # they agree on "the"; the misheard opening does not matter
    assert finish_cut_word("Why did you become a", "why did you become a smith") == "why did you become a smith"
    assert finish_cut_word("Tell me about your forge.", "tell me about your forge") is None  # nothing to add
    assert finish_cut_word("How much would you want?", "how much would you will you to") is None  # 3 more words
    assert finish_cut_word("How much would you want?", "how much would you sword") is None  # not the cut word
    assert finish_cut_word("I would like to bye.", "i'll if life survive") is None  # no agreement
    assert finish_cut_word("Hello.", "hello there") is None


def test_a_read_ending_on_a_comma_is_not_over() -> None:
    assert looks_incomplete("I heard rumours about a dragon,")
    assert not looks_incomplete("I heard rumours about a dragon.")
    assert looks_incomplete("Can you tell me where? The castle...")  # trailing off
    assert looks_incomplete("I'd like to buy, um")  # a filled pause holds the floor
    assert not looks_incomplete("Do you sell, uh, swords?")


def test_an_opener_alone_is_not_a_turn() -> None:
    assert strip_discourse("Wait, no, that's not what I meant. How much is a shield?") == "How much is a shield?"
    assert looks_incomplete("Wait, no, that's not what I meant.")
    assert not looks_incomplete("How much is a shield?")


def test_silence_noise_or_nothing_heard_never_takes_the_floor() -> None:
    assert decide(obs(words="", silence_s=5.0)) is Action.LISTEN
    assert decide(obs(words="hm", turn_speech_s=0.1, silence_s=5.0)) is Action.LISTEN


def test_short_speech_over_the_npc_is_a_backchannel() -> None:
    assert decide(obs(npc_speaking=True, in_speech=True, speech_s=0.3, words="uh huh")) is Action.CONTINUE
    assert decide(obs(npc_speaking=True, speech_s=0.4, silence_s=0.2, words="okay")) is Action.BACKCHANNEL


def test_a_cue_or_long_speech_over_the_npc_is_an_interruption() -> None:
    assert decide(obs(npc_speaking=True, in_speech=True, speech_s=0.3, words="wait")) is Action.INTERRUPTED
    assert decide(obs(npc_speaking=True, in_speech=True, speech_s=1.0, words="where")) is Action.INTERRUPTED


def test_a_slow_backchannel_is_told_from_an_interruption_by_its_accurate_read() -> None:
    over = dict(npc_speaking=True, in_speech=True, words="can a h")  # streaming words: garbage
    # past the usual backchannel length, the NPC waits a moment for the accurate read of the stretch
    assert decide(obs(speech_s=0.8, **over)) is Action.CONTINUE
    assert decide(obs(speech_s=1.0, **over)) is Action.INTERRUPTED  # the read is late: stop anyway
    for slow in ("M-M-H-M", "M-L-H-M.", "Mm-hm.", "Yeah, right.", "I see.", "Uh-huh.", "Oh, interesting.",
                 "Fair enough.", "Of course.", "Makes sense.", "I know."):
        assert decide(obs(speech_s=1.2, stretch_words=slow, **over)) is Action.CONTINUE, slow
    assert decide(obs(speech_s=1.6, stretch_words="Mm-hm.", **over)) is Action.INTERRUPTED  # too long
    for real in ("Yeah, but how much", "No, I meant the shield", "B-R-O-K-E-N", "Interesting. Where is it?",
                 "Good, now my sword", "Of course not"):
        assert decide(obs(speech_s=0.8, stretch_words=real, **over)) is Action.INTERRUPTED, real
    # a hum misread as one word, where the streaming words hear the hum: still a backchannel
    for odd in ("MMA", "7MA."):
        assert decide(obs(speech_s=0.9, stretch_words=odd, **dict(over, words="m m h m"))) is Action.CONTINUE
    assert decide(obs(speech_s=1.2, **dict(over, words="yeah"))) is Action.CONTINUE
    assert decide(obs(speech_s=1.6, **dict(over, words="yeah"))) is Action.INTERRUPTED  # too long
    # with a newer read on its way (reads run late under load) the moment lasts up to the longest backchannel
    assert decide(obs(speech_s=1.2, stretch_words="Come.", stretch_read_pending=True, **over)) is Action.CONTINUE
    assert decide(obs(speech_s=1.6, stretch_read_pending=True, **over)) is Action.INTERRUPTED
    assert decide(obs(speech_s=1.0, stretch_words="How much is", stretch_read_pending=True,
                             **over)) is Action.INTERRUPTED  # words that say something do not wait
    # one odd word (a hum half read) gets the same moment as no read at all
    assert decide(obs(speech_s=0.8, stretch_words="Come.", **over)) is Action.CONTINUE
    assert decide(obs(speech_s=1.0, stretch_words="Come.", **over)) is Action.INTERRUPTED


def test_misheard_streaming_words_alone_hold_the_turn_only_for_a_typical_pause() -> None:
    garbled = dict(words="do you feel the", partial="do you feel the")
    assert decide(obs(silence_s=0.4, **garbled), accurate=False) is Action.LISTEN
    assert decide(obs(silence_s=0.85, **garbled), accurate=False) is Action.RESPOND  # not the full 1.2 s
    complete = dict(words="do you sell swords", partial="do you sell swords")
    assert decide(obs(silence_s=0.3, **complete), accurate=False) is Action.LISTEN  # slower than Whisper's
    assert decide(obs(silence_s=0.4, **complete), accurate=False) is Action.RESPOND
    # with the accurate words in, their fit decides whether the streaming words' ending counts
    sure = dict(words="Do you sell swords?", partial="do you feel the", fit=0.8)
    assert decide(obs(silence_s=0.16, **sure), accurate=True) is Action.RESPOND


def test_patience_changes_how_readily_the_npc_yields_and_answers() -> None:
    guard, herbalist = patient(0.15), patient(0.9)
    over = obs(npc_speaking=True, in_speech=True, speech_s=0.7, words="where is")
    assert decide(over, strategy=herbalist) is Action.INTERRUPTED and decide(over, strategy=guard) is Action.CONTINUE
    cue = obs(npc_speaking=True, in_speech=True, speech_s=0.3, words="wait")
    assert decide(cue, strategy=herbalist) is Action.INTERRUPTED and decide(cue, strategy=guard) is Action.CONTINUE
    insisting = obs(npc_speaking=True, in_speech=True, speech_s=1.2, words="wait wait listen to me")
    assert decide(insisting, strategy=guard) is Action.INTERRUPTED
    pause = obs(words="where is the castle", partial="where is the castle", silence_s=0.3)
    assert decide(pause, strategy=guard) is Action.RESPOND and decide(pause, strategy=herbalist) is Action.LISTEN


def test_the_npcs_own_words_leaking_back_do_not_stop_it() -> None:
    said = ["This", "forge", "was", "my", "father's,", "and", "his", "father's"]
    assert is_own_words("this forge was", said) and is_own_words("my father's and his", said)
    assert not is_own_words("How much is a shield?", said) and not is_own_words("forge", said)
    over = dict(npc_speaking=True, in_speech=True, speech_s=1.2, words="this forge", stretch_words="This forge was")
    assert decide(obs(stretch_is_echo=True, **over)) is Action.CONTINUE
    assert decide(obs(**over)) is Action.INTERRUPTED  # the same words, not heard back: the player
    cue = dict(npc_speaking=True, in_speech=True, speech_s=0.3, words="wait", stretch_is_echo=True)
    assert decide(obs(**cue)) is Action.INTERRUPTED  # a cue word is the player's, early


def test_speech_over_the_npc_the_model_does_not_hear_as_the_player_is_echo() -> None:
    for heard in (0.9, None):  # the model hears the player, or there is no model: the rules alone
        assert decide(obs(npc_speaking=True, in_speech=True, speech_s=0.3, words="wait",
                                 stretch_player_p=heard)) is Action.INTERRUPTED
    echo = dict(npc_speaking=True, in_speech=True, stretch_player_p=0.05)
    assert decide(obs(speech_s=0.3, words="wait", **echo)) is Action.CONTINUE
    assert decide(obs(speech_s=1.2, words="three winters ago", stretch_words="Three winters ago it came",
                             **echo)) is Action.CONTINUE
    ended = obs(npc_speaking=True, in_speech=False, speech_s=0.4, silence_s=0.2, words="wait", stretch_player_p=0.05)
    assert decide(ended) is Action.BACKCHANNEL  # over: nothing to report, as ...
    assert not RULES.hears_player(ended.stretch_player_p)  # ... it was not the player
    # a voice the model never learned, saying something that is not the NPC's words, for 3 s: the player
    assert decide(obs(speech_s=3.2, words="no listen to me", stretch_words="No, listen to me, please, stop.",
                             **echo)) is Action.INTERRUPTED
    assert decide(obs(speech_s=3.2, words="three winters", stretch_words="Three winters ago it came",
                             stretch_is_echo=True, **echo)) is Action.CONTINUE


def test_a_turn_is_projected_over_only_when_words_fit_and_prosody_agree() -> None:
    ended = obs(words="Can you fix my sword?", partial="can you fix my sword", in_speech=True, fit=0.9,
                voice_gap_s=0.12, unread_s=0.15, p_end=0.9)
    # the voice-activity model still hears speech, but the voice has ended: answer a human gap after it
    assert abs(project(ended) - (GAP - 0.12)) < 1e-9
    assert project(replace(ended, voice_gap_s=0.3)) == 0.0  # the gap has passed: at once
    # a level, comma-like end ("My sword is broken, | can you fix it?"): only once the quiet has lasted
    assert project(replace(ended, p_end=0.2)) is None
    assert abs(project(replace(ended, p_end=0.2, voice_gap_s=0.16)) - (GAP - 0.16)) < 1e-9
    sure_of_a_pause = rules_strategy(FloorConfig().with_prosody(0.5, 0.01))
    assert project(replace(ended, p_end=0.001, voice_gap_s=0.16), sure_of_a_pause) is None  # the VAD rule decides
    # ...until a human gap has passed: as the VAD rule would a chunk later, when its silence catches up
    assert project(replace(ended, p_end=0.001, voice_gap_s=GAP), sure_of_a_pause) == 0.0
    # too little quiet yet (shorter than a stop's closure inside a word), or too much of the turn unread
    assert project(replace(ended, voice_gap_s=0.03)) is None
    assert project(replace(ended, unread_s=0.6)) is None
    # a middling fit, words ending unfinished, or no prosody model: wait for the silence (or the quiet)
    assert project(replace(ended, fit=0.6)) is None
    assert project(replace(ended, fit=0.62, margin=0.3)) is not None  # a question plainly about one topic
    assert project(replace(ended, words="Can you fix my")) is None
    assert project(replace(ended, partial="can you fix the")) is not None  # misheard last word: no veto
    assert project(replace(ended, p_end=None)) is None
    assert project(replace(ended, p_end=None, voice_gap_s=0.3)) == 0.0
    assert project(replace(ended, npc_speaking=True)) is None


def test_a_clear_question_that_fits_nothing_is_projected_only_on_the_prosodys_word() -> None:
    """Its ``unknown`` line at the human gap, as a topic's answer; on two players at once it waited 0.6-1.2 s for
    a whole read of the turn."""
    madrid = obs(words="What's the population of Madrid?", partial="what's the population of madrid", fit=0.31,
                 clarity=0.96, understood=Understood.UNKNOWN, voice_gap_s=0.12, unread_s=0.15, p_end=0.9)
    assert abs(project(madrid) - (GAP - 0.12)) < 1e-9
    # the tune is the only sign that no request follows: without the prosody's word, wait for the silence rules
    for p_end in (None, 0.2):
        assert project(replace(madrid, p_end=p_end)) is None
        assert project(replace(madrid, p_end=p_end, voice_gap_s=0.3)) is None
    # not heard clearly, a statement (a reader goes on), a fragment, or a read that misses too much of the turn
    assert project(replace(madrid, clarity=0.3, understood=Understood.UNCLEAR)) is None
    assert project(replace(madrid, words="My feet are killing me after that walk.")) is None
    assert project(replace(madrid, words="What's the population of")) is None
    assert project(replace(madrid, unread_s=0.45)) is None
    # a fragment of a turn the player paused in, which Whisper made a question of: the streaming words hold less
    fragment = replace(madrid, words="What time does that?", partial="what was", fit=0.35, p_end=0.8)
    assert project(fragment) is None
    assert project(replace(fragment, partial="what time does the train leave")) is not None


def test_a_read_made_before_the_last_words_projects_only_if_the_streaming_words_end_finished() -> None:
    # a busy machine finished its last read 0.45 s before the voice ended: "where is the" | "castle"
    stale = obs(words="Where is the castle?", partial="where is the castle", in_speech=True, fit=0.9,
                voice_gap_s=0.12, unread_s=0.45, p_end=0.9)
    assert project(stale) is not None
    # what the read missed may be the start of more ("... and"), or the streaming words say nothing
    assert project(replace(stale, partial="where is the castle and")) is None
    assert project(replace(stale, partial="")) is None
    # a recent read needs no such agreement (the streaming words' last word is often misheard)
    assert project(replace(stale, unread_s=0.2, partial="where is the castle and")) is not None
    assert project(replace(stale, unread_s=ProjectionConfig().stale_s + 0.05)) is None
    # a question that is clear only by its margin must be read to its end: "What are you doing?" | "with prices?"
    asked = replace(stale, words="What are you doing?", partial="what are you doing with prices", fit=0.63,
                    margin=0.25)
    assert project(asked) is None
    assert project(replace(asked, unread_s=0.2)) is not None


def test_a_cut_in_word_misheard_by_the_streaming_words_is_read_by_the_accurate_pass() -> None:
    ended = obs(npc_speaking=True, in_speech=False, speech_s=0.45, silence_s=0.1, words="where")
    assert decide(ended) is Action.BACKCHANNEL
    assert decide(replace(ended, stretch_words="Wait!")) is Action.INTERRUPTED
    assert decide(replace(ended, stretch_words="Wait!", stretch_is_echo=True)) is Action.BACKCHANNEL
    talking = replace(ended, in_speech=True, silence_s=0.0, speech_s=0.35)
    assert decide(replace(talking, stretch_words="Hold on.")) is Action.INTERRUPTED
    assert decide(replace(talking, stretch_words="Mm-hm.")) is Action.CONTINUE
    # the streaming words add a cue to a backchannel's tail; the accurate read of the stretch says "Okay."
    okay = replace(ended, words="okay wait", speech_s=0.55)
    assert decide(replace(okay, stretch_words="Okay.")) is Action.BACKCHANNEL
    assert decide(replace(okay, stretch_words="Okay.", stretch_read_pending=True)) is Action.INTERRUPTED
    assert decide(replace(okay, stretch_words="Okay, wait.")) is Action.INTERRUPTED
    assert decide(okay) is Action.INTERRUPTED  # no read yet: the cue word stops the NPC


def test_speech_that_begins_with_the_answer_and_says_more_than_a_backchannel_goes_on_with_the_turn() -> None:
    onset = obs(npc_speaking=True, in_speech=True, speech_s=0.45, stretch_at_onset=True, stretch_player_p=0.99,
                stretch_words="Where is it?")
    assert decide(onset) is Action.INTERRUPTED  # "I'm looking for the castle gate. | Where is it?"
    assert decide(replace(onset, stretch_words="Okay.")) is Action.CONTINUE  # "uh-huh" at the onset
    assert decide(replace(onset, stretch_words=None)) is Action.CONTINUE  # nothing read yet
    assert decide(replace(onset, stretch_is_echo=True)) is Action.CONTINUE  # its own voice leaking back
    assert decide(replace(onset, stretch_player_p=0.1)) is Action.CONTINUE  # not the player's voice
    assert decide(replace(onset, stretch_at_onset=False)) is Action.CONTINUE  # later: a backchannel
    # the stretch has ended: judged on its read, once that is in
    ended = replace(onset, in_speech=False, silence_s=0.1)
    assert decide(ended) is Action.INTERRUPTED
    assert decide(replace(ended, stretch_words="Mm-hm.")) is Action.BACKCHANNEL
    assert decide(replace(ended, stretch_words=None, stretch_read_pending=True)) is Action.CONTINUE
    assert decide(replace(ended, stretch_at_onset=False)) is Action.BACKCHANNEL


def test_a_stretch_over_the_npc_that_ended_is_judged_on_the_read_of_all_of_it() -> None:
    """"Sorry, stop." read as it was said is "Sorry" (or nothing: a read that ends inside "st|" can be no speech
    to Whisper), and the streaming words heard "so read to off": while the read of the whole stretch is on
    its way the NPC keeps talking and does not yet call it a backchannel; the read then decides."""
    ended = obs(npc_speaking=True, in_speech=False, speech_s=0.77, silence_s=0.16, words="so read to off",
                stretch_player_p=0.99, stretch_read_pending=True)
    assert decide(ended) is Action.CONTINUE
    assert decide(replace(ended, stretch_read_pending=False, stretch_words="Sorry, stop")) is Action.INTERRUPTED
    assert decide(replace(ended, stretch_read_pending=False, stretch_words="Uh-huh.")) is Action.BACKCHANNEL
    assert decide(replace(ended, stretch_read_pending=False)) is Action.BACKCHANNEL  # the read said nothing
    assert decide(replace(ended, speech_s=0.15)) is Action.BACKCHANNEL  # too short for a cue word
    assert decide(replace(ended, stretch_player_p=0.1)) is Action.BACKCHANNEL  # not the player: no wait
    # an impatient NPC does not stop for a cue word alone, so it has nothing to wait for
    assert decide(ended, strategy=patient(0.2)) is Action.BACKCHANNEL
