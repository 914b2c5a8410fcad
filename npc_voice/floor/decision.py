"""What the floor decides in a chunk, and which rule or gate decided it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class Action(enum.Enum):
    """What the NPC does in this chunk."""

    LISTEN = "listen"  # keep listening (player may be talking or silent)
    RESPOND = "respond"  # the player's turn is over: start the answer now
    CONTINUE = "continue"  # keep talking (nothing, or a backchannel, was heard)
    BACKCHANNEL = "backchannel"  # speech over the NPC ended without taking the floor ("uh-huh"): keep talking
    INTERRUPTED = "interrupted"  # the player took the floor: stop talking now


@dataclass(frozen=True)
class FloorDecision:
    """A decision record (LiveKit's ``_EndOfTurnInfo`` is the model): the action, the rule or gate that
    decided it (``speaking.cue_word``, ``listening.silence_tiers``, ``gate.voice_not_ready``...) and why, in
    words and figures a developer can read off one line."""

    action: Action
    rule: str
    why: str = ""
    lead_in: float | None = None  # a projected answer starts this long after the chunk's end
    # The speech over the NPC that ended is closed with this decision (a backchannel, or one that was not
    # the player's and is dropped without telling the game).
    ends_stretch: bool = False
    resume: bool = False  # RESPOND by taking the cut-off line up again (a false interruption)
    # The turn so far was not addressed to the NPC (someone else's talk, the TV): forget it, so the player's next
    # words start a turn of their own.
    drops_turn: bool = False

    def overruled(self, action: Action, gate: str, why: str, **changes: object) -> FloorDecision:
        """The same step decided again by a gate: the gate's name and reason replace the rule's."""
        return replace(self, action=action, rule=gate, why=why, **changes)  # type: ignore[arg-type]

    def describe(self) -> str:
        """One line: ``respond by listening.clear_request: silence 0.16 s >= 0.14 s, fit 0.82``."""
        return f"{self.action.value} by {self.rule}" + (f": {self.why}" if self.why else "")
