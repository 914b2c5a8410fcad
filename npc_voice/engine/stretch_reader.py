"""The stretch reader: the player's speech over the NPC read accurately, so the floor can tell a slow
"mmm-hmmm" from an interruption, and the NPC's own echo from the player."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

from npc_voice.config import ReadingConfig
from npc_voice.engine.clock import Clock
from npc_voice.engine.resources import EngineResources
from npc_voice.engine.state import HearingState, SpeakingState, StretchState, TurnState
from npc_voice.features.asr import StreamingRecognizer
from npc_voice.features.words import is_own_words
from npc_voice.floor.strategies import StrategySet


@dataclass(frozen=True)
class StretchRead:
    """A read of the stretch's audio, submitted when it held ``covered`` s of speech."""

    covered: float
    future: Future[str]


@dataclass(frozen=True)
class StretchWords:
    """The latest finished read of the stretch that heard something."""

    covered: float
    text: str


class StretchReader:
    """One read at a time, each on the stretch's audio so far."""

    def __init__(self, config: ReadingConfig, resources: EngineResources, recognizer: StreamingRecognizer,
                 hearing: HearingState, turn: TurnState, stretch: StretchState, speaking: SpeakingState,
                 strategy: StrategySet, clock: Clock) -> None:
        self.config, self.resources, self.recognizer = config, resources, recognizer
        self.hearing, self.turn, self.stretch, self.speaking = hearing, turn, stretch, speaking
        self.strategy, self.clock = strategy, clock
        self.read: StretchRead | None = None
        self.heard: StretchWords | None = None

    def new_stretch(self) -> None:
        self.read = self.heard = None

    def pending(self) -> bool:
        """A newer read of the stretch is on its way."""
        return self.read is not None and not self.read.future.done()

    def over_npc(self) -> bool:
        """The player speaks over the NPC, or such a stretch has just ended and is not yet judged."""
        return self.speaking.line is not None and (self.hearing.in_speech or not self.stretch.judged)

    def extra_reads(self) -> bool:
        """The current stretch earns ``read``'s extra reads: the duplex model hears it as the player, and it did
        not begin with the answer (the answer's own echo begins there too, and each read is a chance to misread
        it as the player going on)."""
        return self.strategy.hears_player(self.stretch.heard_p()) and not self.stretch.at_onset

    def start_read(self, more: bool = True) -> None:
        """Keep a read of the stretch going. ``more``: the stretch goes on: read it again once it has
        ``stretch_reread_s`` more speech, or at once if the last read heard nothing (a read that ends inside a
        word, "Sorry, st|", may be no speech to Whisper); else, once it has ended, one last read of all of it
        if the last one missed its end ("...stop"). Those two extra reads only for a stretch that earns them
        (``extra_reads``): the reads share one worker with every session's turns."""
        speech_s = self.hearing.speech_s
        if self.read is not None:
            if not self.read.future.done():
                return
            future = self.read.future
            heard = future.exception() is None and bool(future.result().strip())  # an empty read says nothing
            if heard:
                self.heard = StretchWords(self.read.covered, future.result())
            extra = self.extra_reads()
            soon = speech_s - self.read.covered < self.config.stretch_reread_s and (heard or not extra)
            if speech_s <= self.read.covered or (soon if more else not extra):
                return
        self.read = StretchRead(speech_s, self.resources.read(self.resources.asr.transcribe, self.recognizer.audio()))

    def words(self) -> str | None:
        """The latest read of the speech over the NPC, if it is recent enough to speak for it (a finished read
        is taken in, and the next one started, here)."""
        if self.read is not None:
            self.clock.settle(self.read.future)  # simulated clock: wait for the read, charged to this step
        if (self.read.future.done() if self.read is not None
                else self.hearing.speech_s >= self.config.stretch_read_after_s and self.extra_reads()):
            self.start_read(more=self.hearing.in_speech)
        if self.heard is None or self.hearing.speech_s - self.heard.covered > self.config.stretch_stale_s:
            return None
        return self.heard.text

    def is_echo(self, read: str | None) -> bool:
        """Speech over the NPC whose accurate read, or streaming words, are mostly the NPC's own words of the
        last seconds: its voice leaking past the echo canceller (Whisper misreads echo as often as pocketsphinx
        does, so either may be the one that matches; under overload only the latter runs)."""
        if not self.over_npc():
            return False
        assert self.speaking.line is not None
        said = self.speaking.line.recent_words(self.config.echo_words_s)
        return (read is not None and is_own_words(read, said)) or is_own_words(self.turn.partial, said)
