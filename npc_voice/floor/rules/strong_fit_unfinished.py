from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from npc_voice.config import ListeningConfig
from npc_voice.features.words import looks_incomplete
from npc_voice.floor.decision import FloorDecision
from npc_voice.floor.evidence import silence_decision
from npc_voice.floor.observation import FloorObservation, Understood


@dataclass(frozen=True)
class StrongFitUnfinished:
    """Words that look unfinished but ask for a topic too plainly to be half a request: "Got any shields I could
    buy," (fit 0.85, for "Got any shields I could buy?" on the tuning seed) ends on a word that seldom ends a
    sentence, and tiny.en wrote a comma where its window ended, after the player had stopped. The first halves of
    paused requests fit less ("What I need most is" 0.68, "Who you am?" 0.69: ``strong_fit``), so these are answered
    after the middling gap, not the 1.2 s of unfinished words. A player who does go on asks about the same topic,
    and the answer's onset yields to them as to any player going on. Only words the answer understood as a topic
    (the recogniser said how sure it was), and not words that trail off ("The castle..."). Tried before
    ``listening.unfinished_or_unknown``, which waits for the rest."""

    name: ClassVar[str] = "listening.strong_fit_unfinished"
    config: ListeningConfig

    def decide(self, obs: FloorObservation) -> FloorDecision | None:
        c = self.config
        if obs.understood is not Understood.TOPIC or obs.fit is None or obs.fit < c.strong_fit:
            return None
        if obs.words.rstrip().endswith(("...", "\u2026")) or not looks_incomplete(obs.words):
            return None
        return silence_decision(self.name, obs, c.end_silence_s, f"fit {obs.fit:.2f}, though the words end unfinished")
