"""Evidence several rules weigh, read off an observation: a cut-in word, the player going on with their turn,
a clear request, the duplex model hearing the player."""

from __future__ import annotations

from npc_voice.config import AddresseeConfig, UnderstandingConfig
from npc_voice.features.words import has_interrupt_cue, is_backchannel, looks_incomplete, speaks_to_listener, words_of
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import Addressee, FloorObservation, Understood


def heard_cue(obs: FloorObservation) -> bool:
    """A cut-in word in the speech over the NPC: in the streaming words, or in the stretch's accurate read
    (pocketsphinx often hears a lone "Wait!" as "where" or "when"; Whisper reads it right), unless that
    read is the NPC's own voice leaking back. The other way round, pocketsphinx sometimes adds a cue word to
    a backchannel's tail ("okay wait" for "Okay."): when the accurate read, with none newer on its way, says
    the stretch was only a backchannel, the streaming words' cue does not count."""
    read = obs.stretch_words
    if read is not None and not obs.stretch_is_echo:
        if has_interrupt_cue(read):
            return True
        if is_backchannel(read) and not obs.stretch_read_pending:
            return False
    return has_interrupt_cue(obs.words)


def goes_on(obs: FloorObservation) -> bool:
    """The player goes on with their turn over the onset of the NPC's answer: the stretch began with the
    answer and its accurate read is two words or more, not a backchannel and not the NPC's own voice."""
    read = obs.stretch_words
    return (obs.stretch_at_onset and read is not None and not obs.stretch_is_echo
            and len(words_of(read)) >= 2 and not is_backchannel(read))


def hears_player(player_p: float | None, threshold: float) -> bool:
    """The duplex model's highest P(player) over a stretch says it is the player (or the model did not run)."""
    return player_p is None or player_p >= threshold


def clear_request(words: str, fit: float | None, margin: float | None, sure_fit: float, question_fit: float,
                  question_margin: float) -> bool:
    """The accurate ``words`` plainly ask for one of the persona's topics: they fit it ``sure_fit`` well, or they
    are a question (Whisper heard its tune or its form: "?") that fits it ``question_fit`` well and
    ``question_margin`` better than any other. A question asks for an answer; a fragment Whisper completed is
    mostly a statement ("I would like to bye.")."""
    if fit is None:
        return False
    question = words.rstrip().endswith("?") and margin is not None and margin >= question_margin
    return fit >= sure_fit or (question and fit >= question_fit)


MIN_WORDS = 3  # "How do computers work?"; two words are more often a piece of a turn than a question


def whole_sentence(words: str) -> bool:
    """Words that say something whole: they end finished, are three words or more and no backchannel ("Sure.", a
    fragment like "That's not." are none)."""
    return not looks_incomplete(words) and not is_backchannel(words) and len(words_of(words)) >= MIN_WORDS


def asks_off_topic(words: str) -> bool:
    """Words heard clearly that fit nothing the persona knows are a question for it, not a piece of a turn or
    someone reading aloud: a whole sentence that asks something or speaks to the NPC ("Do you sell candles?"; a
    statement like "He makes me harshly feel." is more often a reader who goes on after the pause)."""
    return whole_sentence(words) and speaks_to_listener(words)


def silence_decision(rule: str, obs: FloorObservation, needed: float, reason: str) -> FloorDecision:
    """RESPOND once the player's silence reaches ``needed``, else LISTEN; the record says which tier."""
    action = Action.RESPOND if obs.silence_s >= needed else Action.LISTEN
    return FloorDecision(action, rule, f"{reason}: silence {obs.silence_s:.2f} of {needed:.2f} s")


def unanswered_decision(rule: str, obs: FloorObservation, drop_after_s: float, reason: str) -> FloorDecision:
    """LISTEN to speech that is not the NPC's to answer; once it has been quiet ``drop_after_s``, forget the turn
    (the player's own next words start afresh)."""
    quiet = not obs.in_speech and obs.silence_s >= drop_after_s
    return FloorDecision(Action.LISTEN, rule, reason + ("; forgotten" if quiet else ""), drops_turn=quiet)


def understand(fit: float | None, margin: float | None, clarity: float | None, can_ask_which: bool,
               config: UnderstandingConfig) -> Understood | None:
    """What the words mean, from their fit to the persona's best topic (and its ``margin`` over the next) and how
    sure the recogniser was that it heard them (``clarity``). The recogniser's confidence, not the fit, tells a
    question the persona has no answer for from a mishearing. None without both (streaming words only, or a
    recogniser that gives no confidence): the floor then waits as it always did."""
    if fit is None or clarity is None:
        return None
    clear = clarity >= config.clear_p
    if fit < config.unknown_fit:
        return Understood.UNKNOWN if clear else Understood.UNCLEAR
    if not clear and fit < config.unclear_fit:
        return Understood.UNCLEAR
    if fit < config.which_fit and margin is not None and margin < config.which_margin:
        if not clear:
            return Understood.UNCLEAR
        if can_ask_which:
            return Understood.WHICH
    return Understood.TOPIC


def not_addressed(a: Addressee | None, config: AddresseeConfig) -> str | None:
    """Why this speech is not the player talking to the NPC, or None if it may be. In order: the game says so
    (out of earshot, not facing; a push-to-talk key not held); another voice than the session's player; a voice
    blurred by a room's reverberation, as a voice metres off, across a hall or out of a TV is; a voice far quieter
    than the player's and a little blurred."""
    if a is None:
        return None
    if a.away is not None:
        return f"the game says the player is {a.away}"
    if a.key_up:
        return "push-to-talk, and the key was not held"
    if a.speech_s < config.min_speech_s:
        return None
    for sign in (_another_voice, _distant, _quieter_and_blurred):
        why = sign(a, config)
        if why is not None:
            return why
    return None


def blurred(a: Addressee | None, config: AddresseeConfig) -> str | None:
    """Why this voice sounds blurred by a room (not near the microphone), or None: its energy falls slowly
    (``reverberant_fall_db``; under ``noisy_blurred_fall_db`` where game noise holds falls up) and it is not loud
    (under ``blurred_level_db``, or ``blurred_below_player_db`` under the player's answered turns). Weaker than
    ``not_addressed``: a player can sound like this; ``listening.blurred_and_unclear`` weighs it only where the
    recogniser could not make the words out either."""
    if a is None or a.speech_s < config.min_speech_s or a.fall_db is None or a.level_db is None:
        return None
    noisy = a.snr_db is not None and a.snr_db < config.fall_snr_db
    if a.fall_db >= (config.noisy_blurred_fall_db if noisy else config.reverberant_fall_db):
        return None
    quiet = (a.level_db < config.blurred_level_db if a.player_level_db is None
             else a.level_db < min(config.blurred_level_db, a.player_level_db - config.blurred_below_player_db))
    if not quiet:
        return None
    return f"blurred: it falls at most {a.fall_db:.1f} dB per 10 ms, at {a.level_db:.0f} dBFS"


def _another_voice(a: Addressee, config: AddresseeConfig) -> str | None:
    if (a.voice_similarity is not None and a.speech_s >= config.voice_speech_s
            and a.voice_similarity < config.other_voice_similarity):
        return f"another voice than the player's (similarity {a.voice_similarity:.2f})"
    return None


def _distant(a: Addressee, config: AddresseeConfig) -> str | None:
    if a.fall_db is None or a.level_db is None or a.fall_db >= config.reverberant_fall_db:
        return None
    clear_of_noise = a.snr_db is None or a.snr_db >= config.fall_snr_db
    quiet = (a.level_db < config.distant_level_db if a.player_level_db is None
             else a.level_db < a.player_level_db - config.distant_below_player_db)
    if clear_of_noise and quiet:
        return f"distant or reverberant: it falls at most {a.fall_db:.1f} dB per 10 ms, at {a.level_db:.0f} dBFS"
    return None


def _quieter_and_blurred(a: Addressee, config: AddresseeConfig) -> str | None:
    if a.level_db is None or a.player_level_db is None or a.fall_db is None:
        return None
    if a.level_db < a.player_level_db - config.quieter_db and a.fall_db < config.quieter_fall_db:
        return f"{a.player_level_db - a.level_db:.0f} dB quieter than the player, and blurred"
    return None
