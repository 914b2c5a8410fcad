"""``npc-voice persona ...``: tools for designers who write persona files.

``check`` lists every problem of a file (and example utterances the topic matcher would confuse),
``say`` lets them hear a line in the NPC's voice, ``chat`` lets them type at the character and see
which topic answers, how sure the matcher is and what the NPC feels, reloading the file as it changes.
"""

from __future__ import annotations

import random
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import yaml

from npc_voice.persona.loader import (
    BARK_KINDS,
    EMOTIONS,
    REACTION_KINDS,
    Line,
    Persona,
    PersonaError,
    Problem,
    did_you_mean,
    load_persona,
)


@click.group()
def persona() -> None:
    """Check, hear and try out persona files."""


def voice_problems(p: Persona) -> list[Problem]:
    """The voice must be one the engine can speak: a Piper voice that is installed, and an eSpeak NG voice it
    can select (a Piper persona's fallback); each is tried, and the nearest usable name suggested."""
    from npc_voice.speech.piper import VoiceMissing, find_voice, installed_voices
    from npc_voice.speech.tts import Synthesizer

    problems = []
    if p.voice.engine == "piper":
        try:
            find_voice(p.voice.model)
        except VoiceMissing as exc:
            known = installed_voices()
            near = did_you_mean(p.voice.model, known, f"installed: {', '.join(known) or 'none'}")
            problems.append(Problem(p.source, p.voice.line, f"{exc} (until then it speaks with eSpeak NG voice "
                                    f"'{p.voice.voice}')", near))
    tts = Synthesizer()
    try:
        tts.synthesize("Hello.", p.voice.settings().as_espeak())
    except ValueError as exc:
        _, _, variant = p.voice.voice.partition("+")
        near = "use a voice eSpeak NG can select, e.g. 'en-us+m3' or 'en-gb-x-rp+f3' (`espeak-ng --voices=en`)"
        if variant and variant not in tts.list_variants():
            near = did_you_mean(variant, tts.list_variants(), "see `espeak-ng --voices=variant`")
        problems.append(Problem(p.source, p.voice.line, f"voice '{p.voice.voice}' cannot be used ({exc})", near))
    return problems


def check_file(path: Path, ambiguity: bool = True, margin: float | None = None) -> tuple[Persona | None, list[Problem]]:
    """Every problem of one persona file: format, voice, and (if asked) ambiguous examples."""
    try:
        p = load_persona(path)
    except PersonaError as exc:
        return None, exc.problems
    problems = voice_problems(p)
    if ambiguity:
        from npc_voice.persona.ambiguity import DEFAULT_MARGIN, find_confusions

        problems += [c.problem(p) for c in find_confusions(p, margin=DEFAULT_MARGIN if margin is None else margin)]
    return p, sorted(problems, key=lambda q: q.line or 0)


@persona.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--no-ambiguity", is_flag=True, help="Skip the ambiguous-topics check (it loads the embedding model).")
@click.option("--margin", type=float, default=None, help="Similarity margin under which topics count as confusable.")
def check(paths: tuple[Path, ...], no_ambiguity: bool, margin: float | None) -> None:
    """Validate persona files; every problem is reported as file:line: what is wrong — how to fix."""
    failed = 0
    for path in paths:
        p, problems = check_file(path, ambiguity=not no_ambiguity, margin=margin)
        for problem in problems:
            click.echo(str(problem), err=True)
        if problems:
            failed += 1
        elif p is not None:
            n = len(p.example_utterances())
            click.echo(f"{path}: ok ({p.name}, {len(p.topics)} topics, {n} examples)")
    if failed:
        click.echo(f"{failed} of {len(paths)} file(s) need attention", err=True)
    sys.exit(1 if failed else 0)


def parse_state(items: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs; values read as YAML scalars (``60`` a number, ``true`` a flag, else text)."""
    state: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{item}' is not key=value, e.g. quest_stage=dragon_slain")
        parsed = yaml.safe_load(value) if value.strip() else ""
        state[key.strip()] = parsed if isinstance(parsed, str | int | float | bool) else value
    return state


def _undeclared(p: Persona, state: dict[str, Any]) -> None:
    for key in state:
        if key not in p.state:
            hint = did_you_mean(key, p.state, f"declared keys: {', '.join(p.state) or 'none'}")
            click.echo(f"note: state '{key}' is not declared in {p.source.name} — {hint}", err=True)


def _spoken(p: Persona, line: Line, emotion: str | None = None, voices: Any = None) -> Any:
    """The line in the persona's voice, as the engine says it: coloured by ``emotion`` if given, else by
    the feeling its emotion tag leaves the NPC in (one of the voice levels the lines are rendered in)."""
    from npc_voice.model.emotion import VOICE_LEVELS, NpcFeelings
    from npc_voice.speech.voices import Voices

    if emotion is None:
        feelings = NpcFeelings(p.temperament)
        if line.emotion:
            feelings.update(0.0, line_tags=[line.emotion])
        shift = feelings.voice_shift()
    else:
        shift = VOICE_LEVELS[emotion]
    return (voices or Voices()).synthesize(line.text, p.voice.settings(shift))


def resolve_persona(name: str) -> Path:
    """A persona file: a path, or a persona id in the shipped persona folder (``blacksmith``)."""
    from npc_voice.persona.loader import PersonaStore, default_persona_dir

    path = Path(name)
    if path.is_file():
        return path
    try:
        return PersonaStore(default_persona_dir()).path_for(name)
    except KeyError as exc:
        raise click.BadParameter(f"{name} is neither a file nor a persona id ({exc.args[0]})") from exc


_KEY = re.compile(r"^[a-z0-9_]+(:[a-z_]+)?$")


def _lines_for(p: Persona, what: str, state: dict[str, Any], rng: random.Random, every: bool) -> list[Line]:
    kind, _, name = what.partition(":")
    if kind in ("bark", "reaction") and name:
        table = p.barks if kind == "bark" else p.reactions
        kinds = BARK_KINDS if kind == "bark" else REACTION_KINDS
        if name not in kinds:
            raise click.BadParameter(f"no {kind} kind '{name}' — {did_you_mean(name, kinds, ', '.join(kinds))}")
        options = table.get(name, ())
        if not every:
            line = p.bark(name, state, rng) if kind == "bark" else p.reaction(name, state, rng)
            return [line] if line else []
    else:
        if what not in p.topics:
            raise click.BadParameter(
                f"no topic '{what}' in {p.source.name} — {did_you_mean(what, p.topics, ', '.join(p.topics))}"
            )
        if not every:
            return [p.choose_line(what, state, rng)]
        options = p.topics[what].lines
    return [Line(text=p.fill(v, state), emotion=o.emotion) for o in options for v in o.variants]


def _play_or_write(audio: Any, out: Path | None, default_name: str) -> None:
    from npc_voice.audio.format import SAMPLE_RATE
    from npc_voice.speech.tts import write_wav

    if out is None:
        try:
            import sounddevice as sd

            sd.query_devices(kind="output")
            sd.play(audio, SAMPLE_RATE)
            sd.wait()
            return
        except Exception as exc:  # no audio device (or no PortAudio): fall back to a file
            out = Path(tempfile.gettempdir()) / default_name
            click.echo(f"no sound device ({exc}); writing a WAV instead", err=True)
    write_wav(out, audio)
    click.echo(f"wrote {out}")


@persona.command()
@click.argument("persona_name", metavar="PERSONA")
@click.argument("what", metavar="TOPIC_OR_TEXT")
@click.option("--emotion", type=click.Choice(EMOTIONS), default=None,
              help="Say it with this feeling (default: the line's own emotion tag, as in the game).")
@click.option("--state", "-s", "state_items", multiple=True, help="Game state as key=value (repeatable).")
@click.option("--all", "every", is_flag=True, help="Say every line and variant, not one chosen for the state.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write a WAV instead of playing.")
@click.option("--seed", type=int, default=None, help="Pick the same line every time.")
def say(persona_name: str, what: str, emotion: str | None, state_items: tuple[str, ...], every: bool,
        out: Path | None, seed: int | None) -> None:
    """Hear the NPC say a line: PERSONA is a persona file or id (blacksmith); TOPIC_OR_TEXT is a topic id,
    bark:greeting, reaction:interrupted, or any words in quotes ("Forty gold, and not a coin less.")."""
    import numpy as np

    from npc_voice.speech.voices import Voices

    path = resolve_persona(persona_name)
    try:
        p = load_persona(path)
    except PersonaError as exc:
        raise click.ClickException(str(exc)) from exc
    state = parse_state(state_items)
    _undeclared(p, state)
    if _KEY.match(what):
        lines = _lines_for(p, what, state, random.Random(seed), every)
        name = what.replace(":", "-")
    else:
        lines, name = [Line(text=" ".join(what.split()))], "line"
    if not lines:
        raise click.ClickException(f"nothing to say for {what} with state {state or '{}'}")
    voices = Voices()
    if p.voice.engine == "piper" and voices.engine_of(p.voice.settings()).startswith("espeak"):
        click.echo(f"notice: {voices.missing.get(p.voice.model)}; speaking with eSpeak NG voice "
                   f"'{p.voice.voice}' instead", err=True)
    pieces = []
    gap = np.zeros(int(0.4 * 16000), dtype=np.int16)
    for line in lines:
        feeling = emotion or line.emotion
        click.echo(f"{p.name}{f' ({feeling})' if feeling else ''}: {line.text}")
        pieces += [_spoken(p, line, emotion, voices).audio, gap]
    _play_or_write(np.concatenate(pieces[:-1]), out, f"npc-voice-{p.id}-{name}.wav")


@persona.command()
@click.argument("personas", nargs=-1, metavar="[PERSONA]...")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="NPC_VOICE_CACHE", help="The voice cache folder (default: the user's cache folder).")
def render(personas: tuple[str, ...], cache_dir: Path | None) -> None:
    """Render every line of the personas ahead into the voice cache (all shipped personas if none given),
    as the sidecar does in the background when it loads them; prints the time and the cache's size."""
    from npc_voice.persona.loader import default_persona_dir
    from npc_voice.speech.ahead import RenderAhead
    from npc_voice.speech.cache import LineCache
    from npc_voice.speech.voices import Voices

    paths = [resolve_persona(n) for n in personas] or sorted(default_persona_dir().glob("*.yaml"))
    voices = Voices(LineCache(cache_dir))
    ahead = RenderAhead(voices)
    total = 0.0
    for path in paths:
        try:
            p = load_persona(path)
        except PersonaError as exc:
            raise click.ClickException(str(exc)) from exc
        report = ahead.render(p)
        total += report.seconds
        click.echo(f"{p.id}: {report.texts} lines x {report.levels} voice levels: {report.rendered} rendered, "
                   f"{report.present} already there, in {report.seconds:.1f} s")
    files, size = voices.cache.size()
    click.echo(f"{voices.cache.folder}: {files} rendered lines, {size / 1e6:.1f} MB; {total:.1f} s in all")


@persona.command()
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="NPC_VOICE_CACHE", help="The voice cache folder (default: the user's cache folder).")
@click.option("--clear", is_flag=True, help="Delete every rendered line (they are rendered again when needed).")
def cache(cache_dir: Path | None, clear: bool) -> None:
    """Where the lines rendered ahead are kept, and how much; --clear empties it."""
    from npc_voice.speech.cache import LineCache

    lines = LineCache(cache_dir)
    if clear:
        click.echo(f"{lines.folder}: deleted {lines.clear()} rendered lines")
        return
    files, size = lines.size()
    click.echo(f"{lines.folder}: {files} rendered lines, {size / 1e6:.1f} MB")


def _typed_lines() -> Iterator[str]:
    """Lines from the terminal (with a prompt) or from piped input, until end of input."""
    while True:
        if sys.stdin.isatty():
            click.echo("you> ", nl=False)
        raw = sys.stdin.readline()
        if not raw:
            return
        yield raw


@persona.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--state", "-s", "state_items", multiple=True, help="Initial game state as key=value.")
@click.option("--seed", type=int, default=None)
def chat(path: Path, state_items: tuple[str, ...], seed: int | None) -> None:
    """Type at the NPC: see the chosen topic, the matcher's confidence, and the emotions.

    Lines starting with '/' are commands: /state key=value, /state, /bark greeting, /quit.
    The file is reloaded whenever it changes; a broken edit keeps the last good version.
    """
    from npc_voice.persona.live import LivePersona, chat_reply

    live = LivePersona(path)
    if live.error is not None:
        raise click.ClickException(live.error)
    state = parse_state(state_items)
    _undeclared(live.persona, state)
    rng = random.Random(seed)
    click.echo(f"Talking to {live.persona.name}. /quit to stop, /state key=value to change the game state.")
    previous: str | None = None
    feelings = live.feelings()
    for raw in _typed_lines():
        text = raw.strip()
        if not text:
            continue
        change = live.refresh()
        if change is not None:
            click.echo(change, err=change.startswith(str(path)))
            if live.changed_persona:
                feelings = live.feelings()
        if text in ("/quit", "/exit"):
            break
        if text.startswith("/state"):
            state.update(parse_state(tuple(text.split()[1:])))
            _undeclared(live.persona, state)
            click.echo(f"state: {state}")
            continue
        if text.startswith("/bark"):
            kind = (text.split() + ["greeting"])[1]
            line = live.persona.bark(kind, state, rng)
            click.echo(f"{live.persona.name}: {line.text if line else '(no bark fits)'}")
            continue
        reply = chat_reply(live, text, state, previous, feelings, rng)
        previous = reply.topic
        click.echo(
            f"  [topic {reply.topic}, confidence {reply.confidence:.2f}"
            f"{', follow-up' if reply.follow_up else ''}; player {reply.player_tag}; "
            f"NPC feels {reply.npc_emotion} {reply.npc_intensity:.2f}]"
        )
        click.echo(f"{live.persona.name}{f' ({reply.line.emotion})' if reply.line.emotion else ''}: {reply.line.text}")
