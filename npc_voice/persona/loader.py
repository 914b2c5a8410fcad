"""Load persona files (YAML) into typed, validated objects.

Designers edit these files by hand, so every problem is reported with the file, the line and what to
do about it, and nothing in a file is ever executed (``yaml.SafeLoader`` only).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1_000_000
FALLBACK = "fallback"


class PersonaError(ValueError):
    """A persona file is broken; ``str()`` reads ``file:line: problem``."""

    def __init__(self, path: Path | str, line: int | None, problem: str) -> None:
        self.path, self.line, self.problem = Path(path), line, problem
        where = f"{path}:{line}" if line else f"{path}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, kw_only=True)
class Voice:
    """How the NPC sounds in eSpeak NG terms."""

    voice: str = "en-us"
    pitch: int = 50
    rate: int = 165
    volume: int = 100
    pitch_range: int = 50


@dataclass(frozen=True, kw_only=True)
class Temperament:
    """How the NPC behaves in conversation; the turn policy and emotion model read it."""

    patience: float = 0.5
    backchannel_rate: float = 0.2
    baseline_mood: str = "neutral"
    volatility: float = 0.3
    cares_about: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Topic:
    """Something the player may ask about: how they might say it, and what the NPC answers."""

    id: str
    examples: tuple[str, ...]
    lines: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Line:
    """Something the NPC says, with the emotion it is said with (if the designer tagged one)."""

    text: str
    emotion: str | None = None


@dataclass(frozen=True, kw_only=True)
class Persona:
    """One NPC character, as loaded from its file."""

    id: str
    name: str
    description: str
    voice: Voice
    temperament: Temperament
    topics: dict[str, Topic]
    source: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def choose_line(self, topic_id: str, game_state: dict[str, Any], rng: random.Random) -> Line:
        """A line for the topic (the fallback topic's if unknown), picked at random among its lines."""
        topic = self.topics.get(topic_id) or self.topics[FALLBACK]
        return Line(text=rng.choice(topic.lines))

    def example_utterances(self) -> list[str]:
        """Every example player utterance, for the speech recogniser's language model."""
        return [ex for t in self.topics.values() for ex in t.examples]


class _LineLoader(yaml.SafeLoader):
    """Safe loader that remembers the line of every mapping key, for error messages."""


class _Map(dict):
    lines: dict[str, int]


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[str(key)] = key_node.start_mark.line + 1
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


class _Reader:
    """Typed access to a parsed mapping that turns every mismatch into a ``PersonaError``."""

    def __init__(self, path: Path, data: _Map, where: str = "", line: int | None = None) -> None:
        self.path, self.data, self.where, self.line = path, data, where, line

    def line_of(self, key: str) -> int | None:
        return getattr(self.data, "lines", {}).get(key, self.line)

    def fail(self, key: str | None, problem: str) -> PersonaError:
        name = f"{self.where}{key}" if key else self.where.rstrip(".")
        return PersonaError(self.path, self.line_of(key) if key else self.line, f"{name}: {problem}")

    def section(self, key: str, required: bool = False) -> _Reader:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.fail(key, "missing section")
            value = _Map()
            value.lines = {}
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping of keys, got {type(value).__name__}")
        return _Reader(self.path, value, f"{self.where}{key}.", self.line_of(key))

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if value is None:
            raise self.fail(key, "missing; write some text here")
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected non-empty text, got {value!r}")
        return value.strip()

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"expected a number from {low} to {high}, got {value!r}")
        if not low <= value <= high:
            raise self.fail(key, f"{value} is out of range; use a number from {low} to {high}")
        return float(value)

    def texts(self, key: str, required: bool) -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.fail(key, "missing; give a list of lines, one per '- ' item")
            return ()
        if not isinstance(value, list):
            raise self.fail(key, "expected a list, one per '- ' item")
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.fail(key, f"item {i + 1} is empty or not text ({item!r})")
            out.append(" ".join(item.split()))
        if required and not out:
            raise self.fail(key, "the list is empty; give at least one line")
        return tuple(out)


def load_persona(path: Path | str) -> Persona:
    """Read and validate one persona file; raises ``PersonaError`` naming the file and line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PersonaError(path, None, f"cannot read file ({exc.strerror})") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise PersonaError(path, None, f"file is {len(raw)} bytes; personas are limited to {MAX_FILE_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PersonaError(path, None, f"not UTF-8 text (byte {exc.start}); save the file as UTF-8") from exc
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise PersonaError(path, line, f"not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise PersonaError(path, 1, "expected a mapping with id, name, voice, topics")
    top = _Reader(path, data)
    pid = top.text("id")
    voice = top.section("voice")
    temper = top.section("temperament")
    topics_r = top.section("topics", required=True)
    topics: dict[str, Topic] = {}
    for tid in topics_r.data:
        t = topics_r.section(str(tid))
        is_fallback = tid == FALLBACK
        topics[str(tid)] = Topic(
            id=str(tid),
            examples=t.texts("examples", required=not is_fallback),
            lines=t.texts("lines", required=True),
        )
    if FALLBACK not in topics:
        raise topics_r.fail(
            None, f"no '{FALLBACK}' topic; add one with lines that ask the player to rephrase"
        )
    cares = temper.data.get("cares_about", [])
    if not isinstance(cares, list):
        raise temper.fail("cares_about", "expected a list of things the NPC cares about")
    return Persona(
        id=pid,
        name=top.text("name", pid),
        description=top.text("description", pid),
        voice=Voice(
            voice=voice.text("voice", "en-us"),
            pitch=int(voice.number("pitch", 50, 0, 100)),
            rate=int(voice.number("rate", 165, 80, 450)),
            volume=int(voice.number("volume", 100, 0, 200)),
            pitch_range=int(voice.number("pitch_range", 50, 0, 100)),
        ),
        temperament=Temperament(
            patience=temper.number("patience", 0.5, 0, 1),
            backchannel_rate=temper.number("backchannel_rate", 0.2, 0, 1),
            baseline_mood=temper.text("baseline_mood", "neutral"),
            volatility=temper.number("volatility", 0.3, 0, 1),
            cares_about=tuple(str(c) for c in cares),
        ),
        topics=topics,
        source=path,
        extra={
            k: v
            for k, v in data.items()
            if k not in {"id", "name", "description", "voice", "temperament", "topics"}
        },
    )


class PersonaStore:
    """Finds persona files by id in a folder (``<id>.yaml``)."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    def path_for(self, persona_id: str) -> Path:
        if not persona_id.replace("_", "").replace("-", "").isalnum():
            raise KeyError(f"invalid persona id {persona_id!r}")
        path = self.folder / f"{persona_id}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in self.folder.glob("*.yaml"))
            raise KeyError(f"unknown persona {persona_id!r}; known: {', '.join(known) or 'none'}")
        return path

    def load(self, persona_id: str) -> Persona:
        return load_persona(self.path_for(persona_id))


def default_persona_dir() -> Path:
    """``assets/personas`` of this checkout."""
    return Path(__file__).resolve().parents[2] / "assets" / "personas"
