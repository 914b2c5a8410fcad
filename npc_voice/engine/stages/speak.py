from __future__ import annotations

from npc_voice.engine.frame import StepFrame
from npc_voice.engine.speaker import Speaker
from npc_voice.engine.state import HearingState


class Speak:
    """The next 200 ms of the NPC's line (or its aside), with subtitle and lip-sync timing; silence if none."""

    def __init__(self, speaker: Speaker, hearing: HearingState) -> None:
        self.speaker, self.hearing = speaker, hearing

    def run(self, frame: StepFrame) -> None:
        frame.pcm = self.speaker.next_chunk(frame.events)
        assert frame.clean is not None
        self.hearing.prev_chunk = frame.clean  # the next stretch's preroll for the recogniser
