"""Evidence several rules weigh, read off an observation: a cut-in word, the player going on with their turn,
a clear request, the duplex model hearing the player."""

from __future__ import annotations

from npc_voice.features.words import has_interrupt_cue, is_backchannel, words_of
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import FloorObservation


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


def silence_decision(rule: str, obs: FloorObservation, needed: float, reason: str) -> FloorDecision:
    """RESPOND once the player's silence reaches ``needed``, else LISTEN; the record says which tier."""
    action = Action.RESPOND if obs.silence_s >= needed else Action.LISTEN
    return FloorDecision(action, rule, f"{reason}: silence {obs.silence_s:.2f} of {needed:.2f} s")
