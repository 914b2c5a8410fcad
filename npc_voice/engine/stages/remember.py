from __future__ import annotations

from npc_voice import events as ev
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.memory import ConversationMemory
from npc_voice.model.emotion import NpcFeelings


class Remember:
    """What the step's events mean for the NPC's memory of the player: an answer begun (the turn, its topic, the facts
    its words state, how the NPC feels), its line ended whole or cut, or withdrawn at its onset. A few comparisons
    per step; the store is written on its own thread."""

    def __init__(self, memory: ConversationMemory, feelings: NpcFeelings) -> None:
        self.memory, self.feelings = memory, feelings

    def run(self, frame: StepFrame) -> None:
        if frame.withdrawn is not None:
            self.memory.withdrawn(frame.withdrawn)
        response: ev.Response | None = None
        for event in frame.events:
            if isinstance(event, ev.Response):
                response = event
            elif isinstance(event, ev.SpeechStart) and response is not None:
                feeling, _, valence, _ = self.feelings.current()
                self.memory.answered(event.line_id, response.heard, response.topic, response.text, feeling, valence)
                response = None
            elif isinstance(event, ev.SpeechEnd):
                self.memory.line_ended(event.line_id, event.completed)
