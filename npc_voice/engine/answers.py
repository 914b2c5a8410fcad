"""The answer builder: words heard -> what they mean -> the persona's line -> its first sentence's voice, made ahead.

What they mean (``floor/evidence.py``'s ``understand``): a topic (its line), a question heard clearly that the
persona has no answer for (its ``unknown`` line, topic ``unknown``), a toss-up between two topics heard clearly
(its ``which`` line naming both, topic ``which``), or words not heard clearly ("say that again": the ``fallback``).

The floor decision needs only the words; the voice of the line's first sentence is synthesised on the voice
thread as soon as the line is chosen, so that when the turn ends the answer can start in the same step.
Successive reads of one turn mostly choose the same line: its voice is made once. The line is chosen with what
the NPC remembers of the player, plus the facts these words state ("I'm Aria": the answer may say the name).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from npc_voice.config import UnderstandingConfig
from npc_voice.engine.resources import EngineResources, LoadedPersona
from npc_voice.features.words import is_backchannel, key_word, strip_discourse
from npc_voice.floor.evidence import understand
from npc_voice.floor.observation import Understood
from npc_voice.model.sentiment import TextSentiment, analyse
from npc_voice.model.topics import TopicChoice
from npc_voice.persona.loader import FALLBACK, Line, LineAction, Persona
from npc_voice.speech.stream import Synthesized, SynthFn
from npc_voice.speech.tts import split_sentences

UNKNOWN_TOPIC = "unknown"  # the topic id an ``unknown`` line goes out with (a response event's ``topic``)
WHICH_TOPIC = "which"  # ... and a question that asks which of two topics


@dataclass(frozen=True)
class PreparedAnswer:
    """An answer made ready in the background while the player pauses."""

    heard: str
    choice: TopicChoice | None
    text: str
    first: Future[Synthesized] | None  # the first sentence's voice, synthesised after the words are read
    sentiment: TextSentiment | None = None
    emotion: str | None = None  # the line's emotion tag from the persona file
    # Not an answer to a topic: "interrupted" (the player only cut in, "wait...", and said nothing more:
    # "Hm? Go on.") or "resume" (the cut-in was only "mm-hm": the NPC takes its line up again).
    reaction: Literal["interrupted", "resume"] | None = None
    readings: tuple[tuple[str, float], ...] = ()  # Whisper's best readings the words were picked from
    clarity: float | None = None  # P(the recogniser heard them right), if it says how sure it was
    understood: Understood | None = None  # what the words mean to the persona (None: streaming words, no confidence)
    actions: tuple[LineAction, ...] = ()  # what the game does as the line is said
    # How the voice of the turn sounded to the recogniser (``Read.voice``), for the tone verdict; None if unread.
    voice: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class VoicedSentence:
    """The last first sentence voiced ahead."""

    text: str
    voice: Future[Synthesized]


class AnswerBuilder:
    """Chooses the persona's answer to words heard and voices its first sentence ahead. Thread-safe: reads on
    the look-ahead workers build answers while the step thread builds its own."""

    def __init__(self, resources: EngineResources, synth: SynthFn,
                 sentiment: Callable[[str], TextSentiment | None] = analyse,
                 understanding: UnderstandingConfig | None = None, memory: Any = None) -> None:
        self.resources = resources
        self.understanding = understanding or UnderstandingConfig()
        self.synth = synth  # text -> Synthesized in the NPC's voice as it feels now
        self.sentiment = sentiment  # what the words say about the player's mood (``model/sentiment.py``)
        self.memory = memory  # ``ConversationMemory``: what the NPC remembers of this player (None: nothing)
        self._lock = threading.Lock()
        self._voiced: VoicedSentence | None = None

    def answer_for(self, heard: str, loaded: LoadedPersona, rng: random.Random, state: dict[str, Any],
                   previous: str | None, after_interrupt: bool, unsaid: str = "",
                   clarity: float | None = None) -> PreparedAnswer:
        """The answer to ``heard``; the previous answer's follow-ups win near-ties. A turn that only cut the NPC
        off ("wait, hold on") gets the persona's ``interrupted`` reaction: it asks them to go on; one that was
        only "mm-hm" after all (taken for an interruption) lets it take up its line again. ``clarity``: P(the
        recogniser heard ``heard`` right), which says what words that fit no topic plainly mean."""
        if not heard:
            return PreparedAnswer(heard="", choice=None, text="", first=None)
        if after_interrupt and unsaid and is_backchannel(heard):
            return self.resume(unsaid, heard)
        memory = self.memory.for_words(heard) if self.memory is not None else None
        if after_interrupt and not strip_discourse(heard):
            reaction = loaded.persona.reaction("interrupted", state, rng, memory)
            if reaction is not None:
                return PreparedAnswer(heard=heard, choice=None, text=reaction.text, emotion=reaction.emotion,
                                      first=self.voice_ahead(reaction.text), reaction="interrupted")
        choice, followed = loaded.matcher.match_after(heard, previous)
        chosen, line, understood = self._line_for(choice, followed, heard, loaded.persona, state, rng, memory,
                                                  clarity)
        return PreparedAnswer(heard=heard, choice=chosen, text=line.text, first=self.voice_ahead(line.text),
                              sentiment=self.sentiment(heard), emotion=line.emotion, clarity=clarity,
                              understood=understood, actions=line.actions)

    def _line_for(self, choice: TopicChoice, followed: bool, heard: str, persona: Persona, state: dict[str, Any],
                  rng: random.Random, memory: Any, clarity: float | None) -> tuple[TopicChoice, Line, Understood]:
        """What the words mean to the persona, and the line that says it: the topic's, "never heard of it"
        (``unknown``), "a sword or a shield?" (``which``) or "say that again" (``fallback``)."""
        which = (None if followed or choice.runner_up is None
                 else persona.which_line(choice.topic, choice.runner_up, state, rng))
        understood = understand(choice.similarity, choice.margin, clarity, which is not None, self.understanding)
        line = None
        if understood is Understood.UNKNOWN:
            line = persona.unknown_line(key_word(heard), state, rng)
            chosen = replace(choice, topic=UNKNOWN_TOPIC)
        elif understood is Understood.WHICH:
            line, chosen = which, replace(choice, topic=WHICH_TOPIC)
        elif understood is Understood.UNCLEAR:
            chosen = replace(choice, topic=FALLBACK)
        else:
            chosen = choice
        if line is None:  # a topic, "say that again", or a persona with no unknown lines
            line = persona.choose_line(chosen.topic, state, rng, memory)
            if chosen.topic == UNKNOWN_TOPIC:
                chosen = replace(choice, topic=FALLBACK)
        return chosen, line, understood

    def resume(self, unsaid: str, heard: str = "") -> PreparedAnswer:
        """Taking the cut-off line up again from the sentence it was cut in."""
        return PreparedAnswer(heard=heard, choice=None, text=unsaid, first=self.voice_ahead(unsaid), reaction="resume")

    def voice_ahead(self, text: str) -> Future[Synthesized]:
        """The line's first sentence, synthesised on the voice thread (once for the same sentence in a turn)."""
        first = split_sentences(text)[0]
        with self._lock:
            if self._voiced is not None and self._voiced.text == first and not self._voiced.voice.cancelled():
                return self._voiced.voice
            voice = self.resources.voices.submit(self.synth, first)
            self._voiced = VoicedSentence(first, voice)
            return voice

    def forget_voice(self) -> None:
        """A new turn: its voice follows the NPC's feelings then."""
        with self._lock:
            self._voiced = None
