from __future__ import annotations

from npc_voice import events as ev
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.memory import ConversationMemory
from npc_voice.engine.state import SpeakingState


class Recall:
    """The game's cue, as memory sees it: the player's approach may begin a new visit (before the greeting is chosen,
    so it can remember them), their leaving ends the conversation. Tells the game once if the memory file could
    not be used."""

    def __init__(self, memory: ConversationMemory, speaking: SpeakingState) -> None:
        self.memory, self.speaking = memory, speaking
        self.told = False

    def run(self, frame: StepFrame) -> None:
        if self.memory.problem is not None and not self.told:
            self.told = True
            frame.events.append(ev.Notice(code="memory_error", message=self.memory.problem))
        if frame.cue == "greeting":
            self.memory.arrived()
        elif frame.cue == "farewell":
            self.memory.left(npc_speaking=self.speaking.line is not None)
