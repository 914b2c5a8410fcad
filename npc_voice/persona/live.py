"""A persona as a designer works on it: a watched file, and the same topic choice the engine makes.

``LivePersona`` reloads its file when it changes and keeps the last good version when an edit is
broken, reporting the problem once per change. Topics are chosen as the engine chooses them
(``TopicMatcher.match_after``: the previous answer's follow-ups win near-ties).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npc_voice.features.embed import Embedder
from npc_voice.model.emotion import NpcFeelings
from npc_voice.model.sentiment import analyse
from npc_voice.model.topics import TopicMatcher
from npc_voice.persona.loader import Line, Persona, PersonaError, load_persona


class LivePersona:
    """A persona file watched for edits; ``persona``/``matcher`` are always the last good version."""

    def __init__(self, path: Path | str, embedder: Embedder | None = None) -> None:
        self.path = Path(path)
        self._embedder = embedder or Embedder.shared()
        self.persona: Persona | None = None
        self.matcher: TopicMatcher | None = None
        self.error: str | None = None
        self.changed_persona = False
        self._version: tuple[int, int] | None = None
        self.refresh()

    def refresh(self) -> str | None:
        """Reload if the file changed: a message saying what happened, or None if nothing did."""
        self.changed_persona = False
        try:
            st = self.path.stat()
            version = (st.st_mtime_ns, st.st_size)
        except OSError as exc:
            version = (-1, -1)
            if version != self._version:
                self._version, self.error = version, f"{self.path}: cannot read the file ({exc.strerror})"
                return f"{self.error} — keeping the last good version"
            return None
        if version == self._version:
            return None
        first = self._version is None
        self._version = version
        try:
            persona = load_persona(self.path)
        except PersonaError as exc:
            self.error = str(exc)
            return f"{exc}\n(keeping the last good version)" if self.persona else str(exc)
        self.persona, self.error, self.changed_persona = persona, None, True
        self.matcher = TopicMatcher(persona, self._embedder)
        return None if first else f"reloaded {self.path}"

    def feelings(self) -> NpcFeelings:
        assert self.persona is not None
        return NpcFeelings(self.persona.temperament)


@dataclass(frozen=True, kw_only=True)
class ChatReply:
    """What ``persona chat`` shows for one typed line."""

    topic: str
    confidence: float
    follow_up: bool
    player_tag: str
    npc_emotion: str
    npc_intensity: float
    line: Line


def chat_reply(
    live: LivePersona,
    text: str,
    state: dict[str, Any],
    previous: str | None,
    feelings: NpcFeelings,
    rng: random.Random,
    memory: Any = None,
) -> ChatReply:
    """Match the typed line, pick the answer for the game state (and what the NPC remembers of the player,
    ``memory``: a ``npc_voice.memory.Memory`` with the facts of these words), and move the NPC's feelings."""
    assert live.persona is not None and live.matcher is not None
    choice, follow_up = live.matcher.match_after(text, previous)
    line = live.persona.choose_line(choice.topic, state, rng, memory)
    sentiment = analyse(text)
    feelings.update(0.0, text_sentiment=sentiment, game_state=state, line_tags=[line.emotion] if line.emotion else ())
    emotion, intensity, _, _ = feelings.current()
    return ChatReply(
        topic=choice.topic,
        confidence=choice.similarity,
        follow_up=follow_up,
        player_tag=sentiment.tag,
        npc_emotion=emotion,
        npc_intensity=intensity,
        line=line,
    )
