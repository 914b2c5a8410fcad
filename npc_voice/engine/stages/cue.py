from __future__ import annotations

from npc_voice.engine.barks import BarkScheduler
from npc_voice.engine.frame import StepFrame


class GameCue:
    """The game's cue: the player came within earshot (``greeting``) or left it (``farewell``)."""

    def __init__(self, barks: BarkScheduler) -> None:
        self.barks = barks

    def run(self, frame: StepFrame) -> None:
        if frame.cue is not None:
            self.barks.cue(frame.cue)
