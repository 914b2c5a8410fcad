"""The bark scheduler: greetings, idle chatter and farewells when the floor is free, and the NPC's own "mm-hm"
in the player's pauses. Barks are synthesised ahead on the voice thread and wait for a free floor."""

from __future__ import annotations

import random
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, Literal

from npc_voice import events as ev
from npc_voice.audio.format import CHUNK_SECONDS
from npc_voice.config import TemperamentConfig
from npc_voice.engine.clock import Clock
from npc_voice.engine.resources import LoadedPersona
from npc_voice.engine.speaker import Speaker
from npc_voice.engine.state import HearingState, PersonaRef, SpeakingState, TurnState
from npc_voice.engine.turn_reader import TurnReader
from npc_voice.features.words import looks_incomplete
from npc_voice.persona.loader import LineAction
from npc_voice.speech.stream import Synthesized
from npc_voice.speech.tts import split_sentences

Cue = Literal["greeting", "farewell"]


@dataclass(frozen=True)
class PreparedBark:
    """A bark or reaction synthesised in the background, spoken when the floor is free."""

    kind: str
    text: str
    first: Synthesized
    actions: tuple[LineAction, ...] = ()


class BarkScheduler:
    def __init__(self, config: TemperamentConfig, persona: PersonaRef, game_state: dict[str, Any], rng: random.Random,
                 voices: Executor, speaker: Speaker, hearing: HearingState, turn: TurnState, speaking: SpeakingState,
                 reader: TurnReader, clock: Clock, memory: Any = None) -> None:
        self.config, self.persona, self.game_state, self.rng, self.voices = config, persona, game_state, rng, voices
        self.clock = clock  # a simulated clock waits for a bark's voice; real time speaks it when it is ready
        self.memory = memory  # ``ConversationMemory``: a greeting may remember the player
        self.speaker, self.hearing, self.turn, self.speaking, self.reader = speaker, hearing, turn, speaking, reader
        self.near = False  # the game cued the player's approach (and not yet their leaving)
        self.quiet_s = 0.0  # the floor has been free this long
        self.idle_after_s = self._next_idle_after()
        self.bark: Future[PreparedBark | None] | None = None
        self.own_backchannel: Future[PreparedBark | None] | None = None

    def cue(self, cue: Cue) -> None:
        """The game says the player came near or left: greet them (a terse NPC not always), or see them off."""
        self.drop()
        self.quiet_s = 0.0
        self.near = cue == "greeting"
        talkativeness = self.persona.loaded.persona.temperament.talkativeness
        greet_p = self.config.greet_base + (1 - self.config.greet_base) * talkativeness
        if cue == "greeting" and self.rng.random() < greet_p:
            self._queue("greeting")
        elif cue == "farewell" and self.speaking.line is None:
            self._queue("farewell")

    def npc_speaks(self) -> None:
        self.quiet_s = 0.0

    def player_has_floor(self) -> None:
        """The player has the floor: a greeting that waited is stale now."""
        self.quiet_s = 0.0
        self.drop()

    def floor_free(self, events: list[ev.Event], step: int) -> None:
        """Nobody speaks: an idle bark when it is due, and a bark that is ready takes the floor."""
        self.quiet_s += CHUNK_SECONDS
        if self.near and self.bark is None and self.quiet_s >= self.idle_after_s:
            self._queue("idle")
            self.quiet_s = 0.0
            self.idle_after_s = self._next_idle_after()
        if self.bark is not None:
            self.clock.settle(self.bark)
        if self.bark is not None and self.bark.done():
            bark = self.bark.result()
            self.bark = None
            if bark is not None:
                line_id = self.speaker.new_line_id()
                events.append(ev.Bark(offset=0.0, kind=bark.kind, line_id=line_id, text=bark.text))  # type: ignore[arg-type]
                self.speaker.start_line(line_id, bark.text, bark.first, events, step, actions=bark.actions)

    def offer_backchannel(self, events: list[ev.Event]) -> None:
        """The NPC's own "mm-hm" in a pause of a player who is not done: the accurate words so far need more
        ("...and then I went to the"). Never after words that may end the turn, where it would sound like the
        start of an answer (the streaming words are too often misheard to judge that)."""
        persona = self.persona.loaded.persona
        rate = persona.temperament.backchannel_rate
        if rate <= 0 or not persona.reactions.get("backchannel"):
            return
        if self.own_backchannel is None:  # synthesised ahead: a pause is over before a synthesis would be
            self.own_backchannel = self.voices.submit(
                self.bark_line, "backchannel", self.persona.loaded, dict(self.game_state), self.rng.random(),
                self._remembered())
        lo, hi = self.config.own_backchannel_pause_s
        h = self.hearing
        if (self.speaking.aside is not None or h.in_speech or not lo <= h.silence_s < hi
                or self.turn.speech_s - self.turn.backchannel_mark_s < self.config.own_backchannel_after_s):
            return
        read = self.reader.ready_answer(settle=True)
        if read is None or not looks_incomplete(read.heard):
            return
        self.turn.backchannel_mark_s = self.turn.speech_s  # one chance per pause, taken or not
        if self.rng.random() >= rate:
            return
        self.clock.settle(self.own_backchannel)
        if not self.own_backchannel.done():
            return
        bark = self.own_backchannel.result()
        self.own_backchannel = None
        if bark is not None:
            line_id = self.speaker.new_line_id()
            self.speaker.aside(line_id, bark.text, bark.first)
            events.append(ev.Bark(offset=0.0, kind="backchannel", line_id=line_id, text=bark.text))

    def drop(self) -> None:
        if self.bark is not None:
            self.bark.cancel()
            self.bark = None

    def close(self) -> None:
        for future in (self.bark, self.own_backchannel):
            if future is not None:
                future.cancel()

    def bark_line(self, kind: str, loaded: LoadedPersona, state: dict[str, Any], seed: float,
                  memory: Any = None) -> PreparedBark | None:
        """Worker thread: a bark (greeting, idle, farewell) or reaction line, its first sentence synthesised.
        ``memory``: what the NPC remembered of the player when the bark was asked for."""
        persona, rng = loaded.persona, random.Random(seed)
        line = (persona.bark(kind, state, rng, memory) if kind in persona.barks
                else persona.reaction(kind, state, rng, memory))
        if line is None:
            return None
        return PreparedBark(kind=kind, text=line.text, first=self.speaker.synth(split_sentences(line.text)[0]),
                            actions=line.actions)

    def _remembered(self) -> Any:
        return self.memory.view if self.memory is not None else None

    def _queue(self, kind: str) -> None:
        self.bark = self.voices.submit(
            self.bark_line, kind, self.persona.loaded, dict(self.game_state), self.rng.random(), self._remembered())

    def _next_idle_after(self) -> float:
        terse, chatty = self.config.idle_after_s
        t = self.persona.loaded.persona.temperament.talkativeness
        return (terse + (chatty - terse) * t) * self.rng.uniform(*self.config.idle_spread)
