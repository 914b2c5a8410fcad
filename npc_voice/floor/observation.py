"""What the floor rules see in one chunk: a frozen observation, and the phase of the conversation it is in.

The engine builds one ``FloorObservation`` per decision from its state (``engine/stages/floor.py``); the
rules read nothing else, so a rule is a pure function of the observation and its config, testable in
milliseconds and replayable from a recording.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class DuplexOutputs:
    """The duplex model's heads for one chunk, as probabilities (``model/duplex.py``)."""

    shift: float
    soon: float
    silent: float  # while the NPC speaks: the player is not talking to it
    backchannel: float
    interrupt: float
    player: float


class Understood(enum.Enum):
    """What a read of the player's turn means to the persona."""

    TOPIC = "topic"  # a topic it knows: answer it
    UNKNOWN = "unknown"  # heard clearly, fits nothing it knows: say so in character ("Cambridge? Never heard of it.")
    WHICH = "which"  # heard clearly, two topics fit equally weakly: ask which ("A sword or a shield, friend?")
    UNCLEAR = "unclear"  # not heard clearly, and it fits no topic plainly: "say that again"


@dataclass(frozen=True, kw_only=True)
class Addressee:
    """Whether the speech of this turn (or of the stretch over the NPC) is the player talking to the NPC: what the
    game says, and what the sound says (``engine/stages/addressee.py``). None where not known."""

    away: str | None = None  # the game says the player cannot be talking to it: "out of earshot", "not facing"
    key_up: bool = False  # a push-to-talk session, and the key was not held while this was said
    speech_s: float = 0.0  # voiced time judged
    level_db: float | None = None  # its loud frames' level (dBFS)
    snr_db: float | None = None  # ... above the room's noise between voices
    player_level_db: float | None = None  # the player's, from the turns answered
    fall_db: float | None = None  # how fast its energy falls (90th percentile of 10 ms drops): near-field, dry
    tilt_db: float | None = None  # its 2-5 kHz over 0.3-1 kHz energy (a distant or loudspeaker voice is duller)
    voice_similarity: float | None = None  # cosine of its speaker embedding to the player's (None: no profile yet)


@dataclass(frozen=True, kw_only=True)
class FloorObservation:
    """What the floor rules see in one chunk."""

    npc_speaking: bool
    in_speech: bool  # the player is speaking at the end of this chunk
    speech_s: float  # length of the player's current stretch of speech (or the last one)
    silence_s: float  # silence since the player's last speech (0 while speaking)
    turn_speech_s: float  # voiced time in the player's current turn so far
    words: str  # best transcript of the current turn so far
    # ``words`` is the accurate read (Whisper); else the streaming words, whose last word is misheard too
    # often to hold a turn open.
    words_accurate: bool = True
    partial: str = ""  # the streaming (fast, often misheard) transcript of the same turn
    fit: float | None = None  # how well the accurate words fit the persona's best topic (cosine), if known
    margin: float | None = None  # how far that fit stands above the next topic's
    stretch_words: str | None = None  # the accurate read of the player's speech over the NPC, once ready
    # That read is the NPC's own words of the last seconds: its voice leaking back, not the player.
    stretch_is_echo: bool = False
    stretch_read_pending: bool = False  # a newer read of the stretch is on its way
    # The stretch over the NPC that ended has been judged already (a backchannel, or held): nothing to decide.
    stretch_judged: bool = False
    voice_gap_s: float | None = None  # quiet since the player's voice ended by its loudness (None: not ended)
    unread_s: float | None = None  # voice after the end of the audio ``words`` were read from
    p_end: float | None = None  # the prosody model's P(the turn is complete) where the voice ended
    # The duplex model's highest P(the player, not the NPC's echo or noise, speaks) over the chunks of the
    # stretch over the NPC (None: the model did not run).
    stretch_player_p: float | None = None
    # The stretch began as the NPC's answer began: the player was going on with their turn ("I'm looking
    # for the castle gate. | Where is it?"), not answering the NPC.
    stretch_at_onset: bool = False
    model: DuplexOutputs | None = None  # the duplex model's heads for this chunk (None: it did not run)
    model_previous: DuplexOutputs | None = None  # ... and for the chunk before
    # The smart-turn model's P(the turn is complete) on the turn's audio up to now (cascade strategy only).
    p_complete: float | None = None
    # The NPC was cut off in the player's current turn, and has the rest of its line to say.
    line_cut_off: bool = False
    # P(the accurate recogniser heard ``words`` right), from its own confidence (``model/clarity.py``); None: no
    # accurate read, or a recogniser that does not say.
    clarity: float | None = None
    # What ``words`` mean to the persona, from their fit and ``clarity`` (``floor/evidence.py``'s ``understand``): the
    # answer prepared for them says the same. None: the floor decides by fit alone, as before there was a clarity.
    understood: Understood | None = None
    addressee: Addressee | None = None  # who the speech is for (None: not judged, as before there was a judge)


class Phase(enum.Enum):
    """Where the conversation is in this chunk; each strategy set has an ordered list of rules per phase."""

    LISTENING = "listening"  # the NPC is silent: is the player's turn over?
    OVER_NPC = "speaking"  # the player speaks over the NPC: backchannel or interruption?
    STRETCH_ENDED = "ended"  # speech over the NPC has just ended, not yet judged
    NPC_ALONE = "alone"  # the NPC speaks and nobody speaks over it


def phase_of(obs: FloorObservation) -> Phase:
    if not obs.npc_speaking:
        return Phase.LISTENING
    if obs.in_speech:
        return Phase.OVER_NPC
    if obs.speech_s > 0 and obs.silence_s > 0 and not obs.stretch_judged:
        return Phase.STRETCH_ENDED
    return Phase.NPC_ALONE
