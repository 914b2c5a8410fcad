"""Fakes for the engine's seams, so a stage or a reader can be tested alone in milliseconds: a voice-activity
model, an echo canceller, a streaming recogniser, an accurate reader, a synthesiser, the look-ahead workers and
a persona whose topics are keywords. Each does what its real part promises, on scripted input."""

from __future__ import annotations

import random
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from npc_voice.audio.echo import EchoStats
from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE
from npc_voice.engine.resources import LoadLevel
from npc_voice.features.asr import Read
from npc_voice.floor.observation import DuplexOutputs
from npc_voice.model.topics import TopicChoice
from npc_voice.persona.loader import Temperament, Voice
from npc_voice.speech.tts import Utterance

QUIET_ROOM = EchoStats(False, -100.0, -100.0, -100.0, 0.0, 0.0)


class FakeVAD:
    """P(speech) per 32 ms frame, from a script of one value per chunk (default 0)."""

    def __init__(self, script: list[float] | None = None) -> None:
        self.script, self.pending = list(script or []), 0

    def process(self, chunk: np.ndarray) -> np.ndarray:
        samples = self.pending + len(chunk)
        frames, self.pending = divmod(samples, 512)
        p = self.script.pop(0) if self.script else 0.0
        return np.full(frames, p, np.float32)


class FakeCanceller:
    """Passes the microphone through (or a scripted 'clean'), reporting scripted echo statistics."""

    def __init__(self, stats: EchoStats = QUIET_ROOM) -> None:
        self.stats = stats

    def process(self, mic: np.ndarray, played: np.ndarray | None) -> np.ndarray:
        return mic


class FakeRecognizer:
    """Streaming words from a script: in the u-th utterance, after its n-th chunk, ``utterances[u][n]`` (the last
    utterance's and word's script goes on)."""

    def __init__(self, *utterances: list[str]) -> None:
        self.utterances = [u for u in utterances if u] or [[""]]
        self.in_utterance = False
        self.partial = ""
        self.fed: list[np.ndarray] = []
        self.started = 0
        self.finished = 0

    def start(self, preroll: np.ndarray | None = None) -> None:
        self.in_utterance, self.fed, self.partial = True, [] if preroll is None else [preroll], ""
        self.started += 1

    def feed(self, pcm: np.ndarray) -> str:
        self.fed.append(pcm)
        script = self.utterances[min(self.started, len(self.utterances)) - 1]
        self.partial = script[min(len(self.fed) - 1, len(script) - 1)]
        return self.partial

    def audio(self) -> np.ndarray:
        return np.concatenate(self.fed) if self.fed else np.zeros(0, np.int16)

    def finish(self, accurate: bool = True, timeout: float | None = None) -> Any:
        self.in_utterance = False
        self.finished += 1

    def reload(self, lm: Any) -> None:
        self.in_utterance, self.fed, self.partial = False, [], ""


class FakeHeads:
    """The duplex model's heads, with a fixed P(player): 0.9, the player's voice; 0.1, the NPC's echo or noise."""

    def __init__(self, player: float = 0.9) -> None:
        self.player = player
        self.last: DuplexOutputs | None = None
        self.previous: DuplexOutputs | None = None

    def step(self, *args: Any) -> DuplexOutputs:
        out = DuplexOutputs(shift=0.0, soon=0.0, silent=1.0, backchannel=0.0, interrupt=0.0, player=self.player)
        self.previous, self.last = self.last, out
        return out


class FakeAccurate:
    """The accurate reader: each read gives the next readings of a script (the last ones again once it runs
    out); ``calls`` keeps the seconds of audio of every read."""

    def __init__(self, *script: list[tuple[str, float]]) -> None:
        self.script = list(script) or [[("Can you fix my sword?", -0.2)]]
        self.calls: list[float] = []

    def readings(self, audio: np.ndarray, prompt: str | None = None, *args: Any) -> list[tuple[str, float]]:
        self.calls.append(len(audio) / SAMPLE_RATE)
        return list(self.script[min(len(self.calls), len(self.script)) - 1])

    def read(self, audio: np.ndarray, prompt: str | None = None, *args: Any, **kwargs: Any) -> Read:
        """The next readings; each token as sure as its reading's score says (exp of it)."""
        readings = tuple(self.readings(audio, prompt))
        probs = tuple(float(np.exp(readings[0][1])) for _ in readings[0][0].split()) if readings else ()
        return Read(readings, probs, "fake")

    def transcribe(self, audio: np.ndarray, *args: Any) -> str:
        readings = self.readings(audio)
        return readings[0][0] if readings else ""


class FakeSynthesizer:
    """0.3 s of a tone per word, with the word timing the real synthesiser gives."""

    def synthesize(self, text: str, voice: Any = None) -> Utterance:
        words = text.split()
        n = int(0.3 * SAMPLE_RATE) * max(1, len(words))
        audio = (3000 * np.sin(np.arange(n) * 2 * np.pi * 220 / SAMPLE_RATE)).astype(np.int16)
        return Utterance(text=text, audio=audio, words=[(0.3 * i, w) for i, w in enumerate(words)],
                         visemes=[(0.0, "aa")])


def done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


class Immediate:
    """An executor that runs what it is given at once, on the caller's thread."""

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> Future[Any]:
        return done(fn(*args, **kwargs))


@dataclass
class FakeResources:
    """The look-ahead workers and shared models as ``EngineResources`` offers them; reads run at once. ``busy``:
    every reading thread is taken, so a predictive read is refused."""

    asr: FakeAccurate = field(default_factory=FakeAccurate)
    tts: FakeSynthesizer = field(default_factory=FakeSynthesizer)
    voices: Immediate = field(default_factory=Immediate)
    busy: bool = False
    learned: bool = True
    predictive: bool = True
    reads: int = 0
    clarity: Any = None  # a model of P(heard right) (``model/clarity.py``); None: the recogniser does not say
    speaker: Any = None  # the speaker encoder (``features/speaker.py``); None: no voice profile
    listeners: Immediate = field(default_factory=Immediate)

    def persona(self, persona_id: str) -> FakeLoaded:
        return smith()

    def load_level(self) -> LoadLevel:
        return LoadLevel(predictive=self.predictive, learned=self.learned)

    def current(self, persona_id: str) -> FakeLoaded:
        return smith()

    def persona_problem(self, persona_id: str) -> None:
        return None

    def read(self, fn: Any, *args: Any) -> Future[Any]:
        self.reads += 1
        return done(fn(*args))

    def read_ahead(self, fn: Any, *args: Any) -> Future[Any] | None:
        if self.busy or not self.predictive:
            return None
        return self.read(fn, *args)


@dataclass
class Line:
    text: str
    emotion: str | None = None


@dataclass
class FakePersona:
    """Topics by keyword; one line per topic; the real temperament and voice records."""

    lines: dict[str, str]
    reactions: dict[str, list[str]] = field(default_factory=dict)
    barks: dict[str, list[str]] = field(default_factory=dict)
    temperament: Temperament = field(default_factory=Temperament)
    voice: Voice = field(default_factory=Voice)
    source: str = "fake.yaml"

    def choose_line(self, topic: str, state: dict, rng: random.Random) -> Line:
        return Line(self.lines.get(topic, "Eh? Say that again."))

    def reaction(self, kind: str, state: dict, rng: random.Random) -> Line | None:
        return Line(self.reactions[kind][0]) if self.reactions.get(kind) else None

    def bark(self, kind: str, state: dict, rng: random.Random) -> Line | None:
        return Line(self.barks[kind][0]) if self.barks.get(kind) else None

    def unknown_line(self, said: str | None, state: dict, rng: random.Random) -> Line | None:
        return Line(f"{said}? Never heard of it." if said else "Can't help you there.")

    def which_line(self, first: str, second: str, state: dict, rng: random.Random) -> Line | None:
        return Line(f"{first} or {second}?")


class FakeMatcher:
    """A topic is named by its keyword; the fit is 0.9 if the keyword is heard, else 0.3 (fallback)."""

    def __init__(self, keywords: dict[str, str]) -> None:
        self.keywords = keywords

    def match_after(self, text: str, previous: str | None) -> tuple[TopicChoice, bool]:
        for word, topic in self.keywords.items():
            if word in text.lower():
                return TopicChoice(topic=topic, similarity=0.9, focus=word, margin=0.5), False
        return TopicChoice(topic="fallback", similarity=0.3, focus="", margin=0.0), False

    def pick_reading(self, readings: list[tuple[str, float]]) -> str:
        """Of the readings nearly as likely as the best (within 0.3), one that names a topic; else the best."""
        best = readings[0][1]
        near = [text for text, score in readings if score >= best - 0.3]
        return next((t for t in near if any(w in t.lower() for w in self.keywords)), readings[0][0])

    def streaming_instead(self, fit: float, streaming: str) -> bool:
        return False


@dataclass(frozen=True)
class FakeLoaded:
    """A ``LoadedPersona`` of a fake persona."""

    persona: FakePersona
    matcher: FakeMatcher
    lm: Any = None
    mtime: float = 0.0
    prompt: str = ""


def smith() -> FakeLoaded:
    return FakeLoaded(FakePersona({"repair": "Leave it on the anvil.", "buy_sword": "A fine longsword, forty gold."},
                                  reactions={"holds_floor": ["Let me finish!"], "interrupted": ["Hm? Go on."]}),
                      FakeMatcher({"fix": "repair", "sword": "buy_sword"}))


def chunks(n: int, level: int = 0) -> list[np.ndarray]:
    """``n`` chunks of a constant ``level`` (a loud chunk passes for voice by its loudness)."""
    return [np.full(CHUNK_SAMPLES, level, np.int16) for _ in range(n)]
