"""Typed events the engine emits and the game receives.

Each event is a frozen dataclass with a ``Literal`` ``type`` field (LiveKit agents' style), built
with keyword-only arguments. On the wire an event is a plain dict (``to_wire``/``event_from_wire``).

``offset`` ties an event to the NPC audio of the reply that carries it: seconds from the start of
that reply's 200 ms chunk. The client turns it into a playback time, so a ``response`` event is
stamped at the moment the player hears the answer begin. Events that are not about NPC audio
(transcripts, what the player's voice sounds like) leave ``offset`` as ``None`` and are stamped when
the reply arrives.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of all events; never sent itself."""

    type: str
    offset: float | None = None

    def to_wire(self) -> dict[str, Any]:
        """A msgpack-friendly dict; ``None`` fields are left out."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True, kw_only=True)
class SpeechStart(Event):
    """The NPC starts speaking a line (audio of this reply, at ``offset``)."""

    type: Literal["speech_start"] = "speech_start"
    line_id: str
    text: str


@dataclass(frozen=True, kw_only=True)
class SpeechEnd(Event):
    """The NPC finished a line, or stopped it (``completed`` False)."""

    type: Literal["speech_end"] = "speech_end"
    line_id: str
    completed: bool


@dataclass(frozen=True, kw_only=True)
class Response(Event):
    """The NPC begins an answer to the player: the topic it chose and what it says."""

    type: Literal["response"] = "response"
    topic: str
    text: str
    confidence: float
    heard: str


@dataclass(frozen=True, kw_only=True)
class Interrupted(Event):
    """The NPC cut its own speech because the player took the floor."""

    type: Literal["interrupted"] = "interrupted"
    line_id: str
    heard: str


@dataclass(frozen=True, kw_only=True)
class Held(Event):
    """The NPC paused its line as the player began to talk over it (``held`` True: the client drops the NPC audio it
    has queued, as for ``interrupted``), or takes it up again from where it paused (False: it was only "mm-hm")."""

    type: Literal["held"] = "held"
    line_id: str
    held: bool


@dataclass(frozen=True, kw_only=True)
class Backchannel(Event):
    """The player said "uh-huh" or the like; the NPC keeps talking."""

    type: Literal["backchannel"] = "backchannel"
    heard: str


@dataclass(frozen=True, kw_only=True)
class Bark(Event):
    """The NPC says a line of its own that answers no question: a bark or a reaction from its persona.

    ``greeting``/``farewell`` when the game cues the player's approach or departure, ``idle`` when the
    player is near but quiet, ``interrupted`` when the player cut in and then said nothing more ("Hm? Go
    on."), ``holds_floor`` when an impatient NPC keeps talking over a cut-in ("Let me finish."), and
    ``backchannel`` for the NPC's own "mm-hm" while the player talks at length. Except ``backchannel``
    (a short aside that leaves the floor with the player), the line is spoken like any other and has
    its own ``speech_start``/``speech_end``, words and visemes.
    """

    type: Literal["bark"] = "bark"
    kind: Literal["greeting", "idle", "farewell", "interrupted", "holds_floor", "backchannel"]
    line_id: str
    text: str


@dataclass(frozen=True, kw_only=True)
class Transcript(Event):
    """What the NPC heard the player say so far (``final`` once the player's stretch of speech ends)."""

    type: Literal["transcript"] = "transcript"
    text: str
    final: bool


@dataclass(frozen=True, kw_only=True)
class Words(Event):
    """Subtitle timing for the NPC's speech in this reply: ``[(offset_s, word), ...]``, each word as the line writes
    it, punctuation and capitals kept ("Aye,"); compare words with ``npc_voice.speech.marks.spoken_word``."""

    type: Literal["words"] = "words"
    words: list[tuple[float, str]] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Visemes(Event):
    """Mouth shapes for lip sync in this reply: ``[(offset_s, viseme), ...]``."""

    type: Literal["visemes"] = "visemes"
    visemes: list[tuple[float, str]] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Emotion(Event):
    """An emotion estimate that changed meaningfully: the player's tone or the NPC's feeling."""

    type: Literal["emotion"] = "emotion"
    who: Literal["npc", "player"]
    emotion: str
    intensity: float
    valence: float
    arousal: float


@dataclass(frozen=True, kw_only=True)
class Notice(Event):
    """Something the game should know that is not conversation: persona reloaded, overload, ..."""

    type: Literal["notice"] = "notice"
    code: str
    message: str


@dataclass(frozen=True, kw_only=True)
class Floor(Event):
    """The duplex model's reading of this chunk, the action taken and the rule that took it, in every reply of a
    session opened with ``floor``: a game can lean the NPC in when the player is about to yield, and a developer
    can read why the NPC spoke or stopped. Probabilities are in 0..1."""

    type: Literal["floor"] = "floor"
    action: Literal["listen", "respond", "continue", "backchannel", "interrupted"]
    p_yield: float  # the player's turn is over now: the NPC should speak
    p_yield_soon: float  # the player's last words end within the next two chunks
    p_player: float  # the player (not the NPC's echo, not noise) speaks in this chunk
    p_backchannel: float | None = None  # while the NPC speaks: the player only backchannels ...
    p_interrupt: float | None = None  # ... or takes the floor
    p_end: float | None = None  # the prosody model at the last end of the player's voice, this turn
    # The rule or gate that decided the action ("speaking.cue_word", "listening.clear_request",
    # "gate.voice_not_ready"...; docs/duplex.md lists them) and why, in words and figures.
    rule: str | None = None
    why: str | None = None


@dataclass(frozen=True, kw_only=True)
class GameAction(Event):
    """The NPC just said the word a line's action waits for (or the line's first word): the game should do it.

    Sent once per action per spoken line, at the ``offset`` of that word in this reply's audio, and never for the
    part of a line the player cut off. ``kind``: ``offer`` (``item``, ``price``, maybe ``count``: a deal the game
    may hold open), ``give`` (``item``, maybe ``price`` the player pays and ``count``), ``set_state`` (``state``:
    game state keys and values), ``trigger`` (``name``: an event the game handles). ``(line_id, index)`` names it
    uniquely in the session. Only for sessions opened with ``actions``."""

    type: Literal["action"] = "action"
    line_id: str
    index: int  # its place among the line's actions
    kind: Literal["offer", "give", "set_state", "trigger"]
    item: str | None = None
    price: float | None = None
    count: int | None = None
    state: dict[str, Any] | None = None
    name: str | None = None
    word: str | None = None  # the word it waited for (None: the line's first word)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__dataclass_fields__["type"].default: cls  # type: ignore[misc]
    for cls in (
        SpeechStart,
        SpeechEnd,
        Response,
        Interrupted,
        Held,
        Backchannel,
        Bark,
        Transcript,
        Words,
        Visemes,
        Emotion,
        Notice,
        Floor,
        GameAction,
    )
}


def event_from_wire(data: dict[str, Any]) -> Event:
    """Rebuild a typed event from its wire dict; unknown fields are an error, unknown types too."""
    cls = EVENT_TYPES.get(data.get("type", ""))
    if cls is None:
        raise ValueError(f"unknown event type {data.get('type')!r}")
    kwargs = dict(data)
    for name in ("words", "visemes"):
        if name in kwargs:
            kwargs[name] = [tuple(x) for x in kwargs[name]]
    return cls(**kwargs)
