from __future__ import annotations

import logging

from npc_voice import events as ev
from npc_voice.engine.frame import StepFrame
from npc_voice.engine.resources import EngineResources, PersonaProblem
from npc_voice.engine.state import PersonaRef, SpeakingState, TurnState
from npc_voice.features.asr import StreamingRecognizer

log = logging.getLogger(__name__)


class PersonaRefresh:
    """Pick up an edited persona file between turns; tell the game once when it reloads or breaks."""

    def __init__(self, resources: EngineResources, persona: PersonaRef, recognizer: StreamingRecognizer,
                 speaking: SpeakingState, turn: TurnState) -> None:
        self.resources, self.persona, self.recognizer = resources, persona, recognizer
        self.speaking, self.turn = speaking, turn

    def run(self, frame: StepFrame) -> None:
        if self.speaking.line is not None or self.turn.speech_s > 0:
            return
        pid = self.persona.persona_id
        try:
            loaded = self.resources.current(pid)
            problem = self.resources.persona_problem(pid)
        except (KeyError, ValueError) as exc:  # file gone, or broken with no good version in this process
            loaded = self.persona.loaded
            problem = PersonaProblem(None, str(exc.args[0] if isinstance(exc, KeyError) else exc))
        if problem is not None and problem != self.persona.problem:
            log.warning("persona %s: keeping the last good version: %s", pid, problem.message)
            frame.events.append(ev.Notice(code="persona_error", message=problem.message))
        self.persona.problem = problem
        if loaded.mtime != self.persona.loaded.mtime:
            self.persona.loaded = loaded
            self.recognizer.reload(loaded.lm)
            frame.events.append(ev.Notice(code="persona_reloaded",
                                          message=f"{pid}: now using {loaded.persona.source} as edited"))
