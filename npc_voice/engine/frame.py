"""The typed per-step frame the stages pass along: what came in, what each stage found, what goes out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from npc_voice import events as ev
from npc_voice.audio.echo import EchoStats
from npc_voice.audio.format import CHUNK_SECONDS
from npc_voice.engine.answers import PreparedAnswer
from npc_voice.engine.resources import LoadLevel
from npc_voice.engine.state import Attention
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.observation import DuplexOutputs, FloorObservation


@dataclass(frozen=True)
class ProjectedStart:
    """An answer the floor starts before the silence is heard: its lead-in in the reply, and when its first
    sound plays after the chunk's end."""

    answer: PreparedAnswer
    lead_in: float
    starts_in: float


@dataclass
class StepFrame:
    """One 200 ms step."""

    index: int  # steps before this one
    mic: np.ndarray
    played: np.ndarray | None
    cue: Literal["greeting", "farewell"] | None = None
    state: dict[str, Any] | None = None
    load: LoadLevel = field(default_factory=LoadLevel)  # the overload level, as the step began
    attention: Attention | None = None  # what the game says of the player and the NPC now, if it said
    talking: bool | None = None  # push-to-talk: the key is held in this chunk
    events: list[ev.Event] = field(default_factory=list)
    # echo gate
    clean: np.ndarray | None = None  # the microphone with the NPC's own voice cancelled
    raw_probs: np.ndarray | None = None  # silero P(speech) per 32 ms frame
    probs: np.ndarray | None = None  # ... with residual echo gated out
    echo: EchoStats | None = None
    # speech tracking
    was_speaking: bool = False  # the player was speaking at the end of the last chunk
    quiet_before: float = 0.0  # silence before this chunk
    started: bool = False  # a stretch of the player's speech began in this chunk
    # duplex heads
    heads: DuplexOutputs | None = None  # this chunk's duplex heads, if the model ran
    heads_previous: DuplexOutputs | None = None
    # smart-turn (cascade strategy)
    p_complete: float | None = None
    # floor
    observation: FloorObservation | None = None  # the last observation the floor decided on
    decision: FloorDecision = field(default_factory=lambda: FloorDecision(Action.LISTEN, "none"))
    ready: PreparedAnswer | None = None  # the read's answer the floor judged the turn on
    projected: ProjectedStart | None = None
    yielded: FloorDecision | None = None  # the step yielded a projected answer at its onset
    npc_was_speaking: bool = False  # a line held the floor when the step acted
    # out
    pcm: np.ndarray | None = None

    @property
    def outcome(self) -> FloorDecision:
        """The step's decision as reported: a yield at a projected answer's onset, unless a later rule acted."""
        if self.yielded is not None and self.decision.action in (Action.LISTEN, Action.CONTINUE):
            return self.yielded
        return self.decision

    @property
    def end_s(self) -> float:
        """Session audio time at the end of this chunk."""
        return (self.index + 1) * CHUNK_SECONDS

    @property
    def start_s(self) -> float:
        return self.index * CHUNK_SECONDS
