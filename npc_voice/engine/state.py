"""The session's state between steps, as explicit objects the stages read and write.

- ``HearingState``: the player's voice as the voice-activity model and loudness hear it.
- ``TurnState``: the player's current turn (its words, its speech so far) and what the conversation
  carries from turn to turn (the last topic, a cut-off line), with ``reset``/``snapshot``/``restore``.
- ``StretchState``: the current stretch of the player's speech over the NPC.
- ``SpeakingState``: the NPC's line, its aside, and the first moments of an answer.
- ``PersonaRef``: the persona in use, swapped between turns when its file is edited.
- ``AddresseeState``: who the speech is for: what the game says, the voice's levels and speaker embedding, and
  the player's voice profile.
"""

from __future__ import annotations

import itertools
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from npc_voice.audio.format import silence
from npc_voice.engine.resources import LoadedPersona, PersonaProblem
from npc_voice.speech.stream import LineStream


@dataclass
class HearingState:
    """Frame-resolution tracking of the player's voice (silero frames of 32 ms, loudness blocks of 10 ms)."""

    silence_db: float
    in_speech: bool = False
    below: int = 0  # quiet frames in a row inside a stretch (its hangover)
    speech_s: float = 0.0  # length of the current (or last) stretch
    silence_s: float = 0.0  # since the last stretch ended
    heard_s: float = 0.0  # session audio time at the end of the last voice-activity frame
    voiced_end_s: float = 0.0  # ... at the end of the last frame taken for the player's voice
    loud_end_s: float = 0.0  # ... at the end of the stretch's last loud block (inf until one is loud)
    peak_db: float = 0.0  # the stretch's loudest block
    prev_chunk: np.ndarray = field(default_factory=silence)  # the chunk before this one (the recogniser's preroll)

    def __post_init__(self) -> None:
        self.peak_db = self.silence_db

    def quiet_for(self, now_s: float) -> float:
        """How long the voice has been quiet at session time ``now_s``, by its loudness."""
        return now_s - self.loud_end_s


@dataclass(frozen=True)
class VoiceEnd:
    """The prosody model's verdict on where the player's voice last ended."""

    at_s: float  # session time of that end (``HearingState.loud_end_s``)
    p_end: float  # P(the turn is complete there)


@dataclass(frozen=True)
class TurnSnapshot:
    """What an answer changes in the conversation, kept so a withdrawn answer can be undone."""

    previous_topic: str | None
    after_interrupt: bool
    unsaid: str


@dataclass
class TurnState:
    """The player's turn in progress, and what the conversation carries into it."""

    seed: float  # every read of one turn picks the same line for the same topic
    speech_s: float = 0.0  # voiced time in the turn so far
    partial: str = ""  # the streaming recogniser's words of the turn
    backchannel_mark_s: float = 0.0  # ``speech_s`` when the NPC last had a chance to say its own "mm-hm"
    voice_end: VoiceEnd | None = None
    previous_topic: str | None = None  # the topic last answered: its follow-ups win near-ties
    after_interrupt: bool = False  # the turn began by cutting the NPC off ...
    unsaid: str = ""  # ... which had this still to say
    carry: str = ""  # the words of a turn the NPC yielded in, which the rest of the turn goes on

    def reset(self, seed: float) -> None:
        """A new turn: its speech, words and seed (the conversation's carry-over stays)."""
        self.speech_s, self.seed, self.backchannel_mark_s, self.partial, self.voice_end = 0.0, seed, 0.0, "", None

    def snapshot(self) -> TurnSnapshot:
        return TurnSnapshot(self.previous_topic, self.after_interrupt, self.unsaid)

    def restore(self, snapshot: TurnSnapshot) -> None:
        self.previous_topic, self.after_interrupt, self.unsaid = (
            snapshot.previous_topic, snapshot.after_interrupt, snapshot.unsaid)

    def answered(self) -> None:
        """The NPC answered: what the turn carried is used up."""
        self.after_interrupt, self.unsaid, self.carry = False, "", ""


@dataclass
class StretchState:
    """The player's current stretch of speech, as far as it concerns the NPC's speech under it."""

    judged: bool = True  # judged already, or not over the NPC (only speech over the NPC can be a backchannel)
    held: bool = False  # a cut-in the NPC talked through with "let me finish": dropped when it ends
    at_onset: bool = False  # it began with the answer's first sound: the player going on with their turn
    player_p: float = 0.0  # the duplex model's highest P(player) over it
    model_heard: bool = False  # the duplex model ran in the latest step

    def heard_p(self) -> float | None:
        """The highest P(player) over the stretch, if the duplex model is running."""
        return self.player_p if self.model_heard else None


@dataclass(frozen=True)
class AnswerOnset:
    """An answer just begun: if the player turns out to have been going on with their turn, the NPC yields,
    the turn's words so far (``heard``) open the rest of it and the conversation is put back (``before``)."""

    line_id: str
    sound_s: float  # session audio time at which its first sound plays
    heard: str
    before: TurnSnapshot


@dataclass(frozen=True)
class ProjectedAnswer:
    """An answer started before the silence was heard: the step after decides whether it stands."""

    starts_in: float  # seconds into the next microphone chunk at which the answer's first sound plays
    loud_db: float  # a block this loud is the player's voice


@dataclass
class SpeakingState:
    """What the NPC is saying."""

    line: LineStream | None = None  # the line that holds the floor
    aside: LineStream | None = None  # its own "mm-hm" over the player's turn (the floor stays with them)
    line_step: int = 0  # the step at which ``line`` started
    held_line: str | None = None  # the line in which it already said "let me finish"
    onset: AnswerOnset | None = None
    projected: ProjectedAnswer | None = None
    line_ids: itertools.count = field(default_factory=lambda: itertools.count(1))


@dataclass
class PersonaRef:
    """The persona a session speaks as; a designer's edit is picked up between turns."""

    persona_id: str
    loaded: LoadedPersona
    problem: PersonaProblem | None = None  # the broken edit last reported to the game


@dataclass(frozen=True)
class Attention:
    """What the game says about the player and this NPC (the ``mic`` message's ``attention``): None, not said."""

    in_earshot: bool | None = None
    facing: bool | None = None

    @property
    def away(self) -> str | None:
        """Why the player cannot be talking to the NPC, if the game says so."""
        if self.in_earshot is False:
            return "out of earshot"
        if self.facing is False:
            return "not facing the NPC"
        return None


MAX_LEVEL_FRAMES = 1000  # 10 s of 10 ms frames: a turn's or a stretch's voice, bounded


@dataclass
class AddresseeState:
    """Who the current turn (or stretch over the NPC) is said to: what the game said while it was said, its
    voice's 10 ms levels, its speaker embedding; and the player's voice profile, from the turns answered."""

    push_to_talk: bool = False  # the session's ``talk_mode``: only speech with the key held is the player's
    attention: Attention = field(default_factory=Attention)
    away: str | None = None  # the game said the player was away while this was said
    key_held: bool = False  # push-to-talk: the key was held while this was said
    levels: list[float] = field(default_factory=list)  # 10 ms frame levels (dBFS) of its voiced chunks; nan: a gap
    speech_s: float = 0.0
    embedding: Future[np.ndarray] | None = None  # of its audio so far ...
    embedded_s: float = 0.0  # ... when it held this much speech
    folded: bool = False  # folded into the profile already
    profile: list[np.ndarray] = field(default_factory=list)  # the player's embeddings, from turns answered
    profile_levels: list[float] = field(default_factory=list)

    def reset(self) -> None:
        """A new turn or stretch: what the game said and the voice heard start again (the profile stays)."""
        if self.embedding is not None:
            self.embedding.cancel()
        self.away, self.key_held, self.levels, self.speech_s = None, False, [], 0.0
        self.embedding, self.embedded_s, self.folded = None, 0.0, False

    def voice(self) -> np.ndarray | None:
        """The player's voice profile: the mean of its embeddings, unit length (None: none yet)."""
        if not self.profile:
            return None
        mean = np.mean(self.profile, axis=0)
        return mean / (np.linalg.norm(mean) + 1e-9)
