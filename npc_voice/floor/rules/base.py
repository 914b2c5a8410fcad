"""The rule contract."""

from __future__ import annotations

from typing import ClassVar, Protocol

from npc_voice.floor.decision import FloorDecision
from npc_voice.floor.observation import FloorObservation


class FloorRule(Protocol):
    """A named rule: a decision with its ``name``, or ``None`` when it has nothing to say about ``obs``."""

    name: ClassVar[str]

    def decide(self, obs: FloorObservation) -> FloorDecision | None: ...
