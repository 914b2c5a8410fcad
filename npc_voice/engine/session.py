"""The micro-turn engine: one conversation, stepped every 200 ms chunk.

A step takes the player's microphone chunk and what the loudspeaker played meanwhile, and returns the next
200 ms of NPC audio plus events. Inside, a short pipeline of stages runs in order over one typed frame
(``engine/stages/__init__.py``):

    echo gate -> speech tracking -> recognition -> tone -> duplex heads -> floor -> temperament -> act -> speak

Recognition advances every chunk. While the player talks, their turn so far is read accurately in the
background whenever a reading thread is idle (``TurnReader``), and the answer to those words is chosen and
its first sentence synthesised (``AnswerBuilder``); so when the floor decides the turn is over, the words and
the voice are usually ready in that same step. Memory stays flat: the only growing buffers (turn audio,
transcript) are bounded and reset at every turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from npc_voice import events as ev
from npc_voice.config import EngineConfig
from npc_voice.engine.context import EngineParts, SessionContext, new_context
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.resources import EngineResources, LoadedPersona
from npc_voice.engine.stages import pipeline
from npc_voice.engine.state import Attention
from npc_voice.floor.decision import Action, FloorDecision
from npc_voice.floor.strategies import StrategySet
from npc_voice.model.emotion import NpcFeelings

Cue = Literal["greeting", "farewell"]


@dataclass
class StepResult:
    """The reply to one microphone chunk."""

    pcm: np.ndarray
    events: list[ev.Event] = field(default_factory=list)
    compute_ms: float = 0.0  # the step's own work; a real-time wait for the turn's read is idle, not counted
    decision: FloorDecision = field(default_factory=lambda: FloorDecision(Action.LISTEN, "none"))


class Session:
    """One NPC conversation."""

    def __init__(
        self,
        resources: EngineResources,
        persona_id: str,
        npc_id: str,
        state: dict[str, Any] | None = None,
        seed: int | None = None,
        simulated_clock: bool = False,
        floor_events: bool = False,
        policy: str = "rules",
        config: EngineConfig | None = None,
        explain: bool = True,
        parts: EngineParts | None = None,
        talk_mode: str = "open",
        hold_events: bool = False,
    ) -> None:
        """``simulated_clock``: chunks arrive faster than real time (a bench), so a due answer waits for its
        look-ahead work in the step, where the step's measured time charges it to the simulated clock.
        ``floor_events``: every step reports the duplex model's heads and the action (``ev.Floor``); with
        ``explain``, also the rule that decided it and why.
        ``policy``: the floor's strategy set, ``rules`` (default), ``duplex`` or ``cascade``
        (``npc_voice/floor/strategies.py``). ``parts``: fakes in place of the real VAD, recogniser, models.
        ``talk_mode``: ``open`` (an open microphone) or ``push_to_talk`` (only speech with the key held is the
        player's: ``step``'s ``talking``). ``hold_events``: the client drops its queued NPC audio on a ``held``
        event (the NPC paused its line as the player began to talk over it), so the pause is heard at once.
        Raises ``KeyError`` for an unknown persona, ``ValueError`` for a
        broken one or an unknown policy."""
        self.npc_id = npc_id
        if talk_mode not in ("open", "push_to_talk"):
            raise ValueError(f"unknown talk mode {talk_mode!r}; known: open, push_to_talk")
        self.context: SessionContext = new_context(resources, persona_id, npc_id, state, seed, simulated_clock,
                                                   policy, config, parts, push_to_talk=talk_mode == "push_to_talk",
                                                   hold_events=hold_events)
        self.stages = pipeline(self.context, floor_events, explain)
        self.steps = 0

    def step(
        self, mic: np.ndarray, played: np.ndarray | None, state: dict[str, Any] | None = None, cue: Cue | None = None,
        attention: Attention | None = None, talking: bool | None = None,
    ) -> StepResult:
        """Advance the conversation by one 200 ms chunk. ``cue``: the player just came within earshot
        (``greeting``) or left it (``farewell``). ``attention``: what the game says of the player and the NPC now
        (in earshot, facing it), kept until it says otherwise; ``talking``: the push-to-talk key is held."""
        ctx = self.context
        ctx.clock.begin_step()
        if state:
            ctx.game_state.update(state)
        frame = StepFrame(index=self.steps, mic=mic, played=played, cue=cue, state=state,
                          load=ctx.resources.load_level(), attention=attention, talking=talking)
        for stage in self.stages:
            stage.run(frame)
        self.steps += 1
        assert frame.pcm is not None
        return StepResult(pcm=frame.pcm, events=frame.events, compute_ms=ctx.clock.compute_ms(),
                          decision=frame.outcome)

    @property
    def loaded(self) -> LoadedPersona:
        """The persona in use (an edited file is picked up between turns)."""
        return self.context.persona.loaded

    @property
    def feelings(self) -> NpcFeelings:
        return self.context.feelings

    @property
    def game_state(self) -> dict[str, Any]:
        return self.context.game_state

    @property
    def strategy(self) -> StrategySet:
        return self.context.strategy

    @property
    def speaking(self) -> bool:
        """The NPC holds the floor with a line."""
        return self.context.speaking.line is not None

    def close(self) -> None:
        self.context.close()
