"""The stage contract: one job, over the step's frame and the session's state objects."""

from __future__ import annotations

from typing import Protocol

from npc_voice.engine.frame import StepFrame


class Stage(Protocol):
    def run(self, frame: StepFrame) -> None: ...
