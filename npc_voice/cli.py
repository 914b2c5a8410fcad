"""The ``npc-voice`` command: run the sidecar, talk to an NPC, run the benches."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from npc_voice.features.asr import DEFAULT_RECOGNISER, RECOGNISERS
from npc_voice.floor.strategies import STRATEGIES
from npc_voice.persona.commands import persona

if TYPE_CHECKING:
    from npc_voice.memory.store import MemoryStore


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log what the sidecar and client do.")
def main(verbose: bool) -> None:
    """npc-voice: full-duplex voice conversation for game characters."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.command()
@click.option(
    "--address",
    default="tcp://127.0.0.1:5571",
    show_default=True,
    help="ZeroMQ endpoint to bind (tcp://HOST:PORT or ipc://PATH).",
)
@click.option(
    "--personas",
    type=click.Path(exists=True, file_okay=False),
    multiple=True,
    help="A folder of persona files, searched before $NPC_VOICE_PERSONAS and the built-in personas (repeatable).",
)
@click.option(
    "--voice-cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="NPC_VOICE_CACHE",
    help="Folder of lines rendered ahead (default: the user's cache folder, npc-voice/lines).",
)
@click.option(
    "--procs",
    type=click.IntRange(min=1),
    default=None,
    show_default="the core count",
    help="Engine worker processes, each hosting many sessions over its own models; 1 runs them in the "
    "sidecar's own process (a single-player game). With --ray: the number of actors (default: one per "
    "--ray-cpus CPUs of the cluster).",
)
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Run the engine workers as actors on this Ray cluster ('auto', HOST:6379 or ray://HOST:10001); "
              "needs npc-voice[ray].")
@click.option("--capacity", type=click.IntRange(min=1), default=None,
              help="Sessions per engine worker (default: each worker measures it at start-up; in-process: "
              "--max-sessions).")
@click.option("--ray-cpus", default=1.0, show_default=True, help="CPUs each engine actor declares to Ray.")
@click.option("--ray-memory-mb", default=None, type=int, show_default="1200",
              help="Memory each engine actor declares to Ray.")
@click.option("--workers", default=4, show_default=True, help="Threads per engine worker that run session steps.")
@click.option("--asr", type=click.Choice(RECOGNISERS), default=DEFAULT_RECOGNISER, show_default=True,
              help="The accurate recogniser that reads the player's turns.")
@click.option("--max-sessions", default=32, show_default=True,
              help="Cap over all workers: further sessions get `capacity`.")
@click.option("--allow-remote", is_flag=True, help="Allow binding to a non-loopback address (needs --curve-*).")
@click.option("--memory", "memory_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The memory file (SQLite) in which NPCs remember players the game names "
                   "[default: $NPC_VOICE_MEMORY, else memory.sqlite3 in the user's data folder].")
@click.option("--no-memory", is_flag=True, help="Remember players only within a session; write no file.")
@click.option(
    "--curve-secret",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The sidecar's CURVE key pair (a .key_secret file from `npc-voice keys`).",
)
@click.option(
    "--curve-clients",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of the public keys (.key) of the clients allowed in.",
)
def serve(
    address: str,
    personas: tuple[str, ...],
    voice_cache: Path | None,
    procs: int | None,
    ray_address: str | None,
    capacity: int | None,
    ray_cpus: float,
    ray_memory_mb: int | None,
    workers: int,
    max_sessions: int,
    allow_remote: bool,
    memory_path: Path | None,
    no_memory: bool,
    curve_secret: Path | None,
    curve_clients: Path | None,
    asr: str,
) -> None:
    """Run the sidecar until Ctrl-C or SIGTERM."""
    import os

    from npc_voice.memory.store import default_path
    from npc_voice.transport.server import CurveKeys, serve_forever

    if (curve_secret is None) != (curve_clients is None):
        raise click.UsageError("--curve-secret and --curve-clients go together")
    curve = CurveKeys(curve_secret, curve_clients) if curve_secret and curve_clients else None
    if no_memory and memory_path is not None:
        raise click.UsageError("--memory and --no-memory contradict each other")
    memory = None if no_memory else (memory_path or default_path())
    if ray_address is None and procs is None:
        procs = os.cpu_count() or 1
    sys.exit(serve_forever(address, list(personas), workers=workers, allow_remote=allow_remote, curve=curve,
                           max_sessions=max_sessions, procs=procs, ray_address=ray_address, capacity=capacity,
                           ray_cpus=ray_cpus, ray_memory_mb=ray_memory_mb, voice_cache=voice_cache,
                           recogniser=asr, memory=memory))


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.argument("name")
def keys(folder: Path, name: str) -> None:
    """Write a CURVE key pair NAME.key (public) and NAME.key_secret into FOLDER."""
    from npc_voice.transport.server import generate_keys

    public, secret = generate_keys(folder, name)
    click.echo(f"public key: {public}\nsecret key: {secret} (keep it private)")


@main.group()
def bench() -> None:
    """Measure the product."""


@bench.command("duplex")
@click.argument("cases", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Results folder: <id>/npc.wav, mic.wav, events.jsonl, steps.json.",
)
@click.option("--realtime", is_flag=True, help="Pace the microphone by the wall clock (end-to-end figure).")
@click.option("--parallel", default=1, show_default=True, help="Cases run at once on one sidecar.")
@click.option(
    "--sidecar", default=None, help="Attach to a running sidecar at this address instead of starting one."
)
@click.option("--personas", default=None, help="Folder of persona files for the sidecar this command starts.")
@click.option("--procs", type=click.IntRange(min=1), default=None, show_default="the sidecar's default: the core count",
              help="Engine worker processes of the sidecar this command starts (1: in-process).")
@click.option("--policy", type=click.Choice(STRATEGIES), default="rules", show_default=True,
              help="The floor's strategy set: our rules, the learned duplex model, or the pipecat/LiveKit cascade.")
@click.option("--asr", type=click.Choice(RECOGNISERS), default=DEFAULT_RECOGNISER, show_default=True,
              help="The accurate recogniser of the sidecar this command starts.")
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the summary and per-case outcomes as JSON.",
)
def bench_duplex(
    cases: Path,
    out: Path,
    realtime: bool,
    parallel: int,
    sidecar: str | None,
    personas: str | None,
    policy: str,
    asr: str,
    procs: int | None,
    json_out: Path | None,
) -> None:
    """Play every case in CASES through a real sidecar and score the result."""
    from npc_voice.bench.duplex import run_bench, step_figures
    from npc_voice.bench.score import score_folder

    t = time.monotonic()
    runs = run_bench(cases, out, realtime=realtime, parallel=parallel, sidecar=sidecar, persona_dir=personas,
                     policy=policy, recogniser=asr, procs=procs)
    summary, results = score_folder(cases, out)
    steps = step_figures(runs)
    for key, value in summary.items():
        click.echo(f"{key:36} {value}")
    click.echo("")
    for key, value in steps.items():
        click.echo(f"{key:36} {value}")
    click.echo(f"{'wall_time_s':36} {time.monotonic() - t:.1f}")
    for r in runs:
        for err in r.errors:
            click.echo(f"{r.case_id}: {err}", err=True)
    if json_out:
        json_out.write_text(json.dumps({"summary": summary, "steps": steps, "cases": results}, indent=1))


@bench.command("score")
@click.argument("cases", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the summary and per-case outcomes as JSON.")
def bench_score(cases: Path, results: Path, json_out: Path | None) -> None:
    """Score a results folder of ``bench duplex`` again (the shared figures and the project's own)."""
    from npc_voice.bench.score import score_folder

    summary, outcomes = score_folder(cases, results)
    for key, value in summary.items():
        click.echo(f"{key:36} {value}")
    if json_out:
        json_out.write_text(json.dumps({"summary": summary, "cases": outcomes}, indent=1))


@bench.command("perf")
@click.option("--cases", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, show_default="../shared/eval/dev", help="Cases whose user.wav is streamed.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("docs/perf"), show_default=True)
@click.option("--levels", default="1,2,4,8,16", show_default=True, help="Concurrent sessions to measure.")
@click.option("--seconds", default=30.0, show_default=True, help="Real-time seconds per level.")
@click.option("--soak-minutes", default=60.0, show_default=True, help="Simulated minutes, one session (0: skip).")
@click.option("--procs", default=None, show_default="1 and the core count",
              help="Setups to measure: engine worker processes, comma-separated (1: in-process).")
@click.option("--ray", is_flag=True, help="Also measure engine actors on a local Ray cluster (needs npc-voice[ray]).")
@click.option("--ray-nodes", default=2, show_default=True, help="Nodes of one CPU each in that cluster.")
@click.option("--failover/--no-failover", default=True, show_default=True,
              help="Kill a worker (a Ray node) mid-conversation in every setup with more than one.")
def bench_perf(cases: Path | None, out: Path, levels: str, seconds: float, soak_minutes: float, procs: str | None,
               ray: bool, ray_nodes: int, failover: bool) -> None:
    """The 200 ms deadline under load: 1..16 real-time sessions per setup, start-up, failover, a long session;
    table and plot."""
    import os

    from npc_voice.bench.perf import run_perf
    from npc_voice.data import shared_eval_dir

    cases = cases or shared_eval_dir() / "dev"
    procs = procs or ",".join(dict.fromkeys(["1", str(os.cpu_count() or 1)]))
    run_perf(cases, out, tuple(int(x) for x in levels.split(",")), seconds, soak_minutes, procs, ray, ray_nodes,
             failover)
    click.echo((out / "table.md").read_text())


@bench.command("memory")
@click.option("--steps", default=200_000, show_default=True, help="Steps through the two memory stages.")
def bench_memory(steps: int) -> None:
    """What memory costs: per step (the step thread), per answer, per commit, per player on disk."""
    from npc_voice.bench.memory import run_memory_bench

    click.echo(run_memory_bench(steps=steps).table())


@bench.command("topics")
@click.option("--persona", "persona_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, show_default="the built-in blacksmith.yaml", help="The persona file to measure.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the summary and every text's outcome as JSON.")
def bench_topics(persona_path: Path, json_out: Path | None) -> None:
    """How well the persona's examples match wordings the bench's held-out cases use (written, not heard)."""
    from npc_voice.bench.topics import run_topics
    from npc_voice.persona.loader import default_persona_dir

    report = run_topics(persona_path or default_persona_dir() / "blacksmith.yaml")
    for key, value in report.summary().items():
        click.echo(f"{key:36} {value}")
    for o in report.misses():
        click.echo(f"miss: {o.text!r} -> {o.topic} ({o.similarity:.2f}), wanted {'/'.join(o.wanted)}")
    if json_out:
        json_out.write_text(json.dumps(report.to_json(), indent=1))


@bench.command("mouth-to-ear")
@click.option("--cases", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              show_default="../shared/eval/dev", help="Case folder; its smooth_turn cases (questions) are played.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Results: live/<id>/ and file/<id>/ (npc.wav, events.jsonl), mouth_to_ear.json.")
@click.option("--latency", default=None, help="PortAudio latency for the live stream (seconds, low, high).")
@click.option("--block", type=int, default=None, help="Frames per audio callback for the live stream.")
@click.option("--no-file-bench", is_flag=True, help="Only the live figure.")
@click.option("--echo", default=None, help="GAIN_DB:DELAY_MS: the loudspeaker fed back into the microphone "
              "(e.g. -12:60, a laptop without headphones); reports self-interruptions.")
def bench_mouth_to_ear(cases: Path | None, out: Path, latency: str | None, block: int | None,
                       no_file_bench: bool, echo: str | None) -> None:
    """Mouth-to-ear latency on the live path (a virtual PulseAudio card), beside the file bench's turn latency."""
    from npc_voice.bench.mouth_to_ear import run_mouth_to_ear
    from npc_voice.data import shared_eval_dir

    stream = [*(["--latency", latency] if latency else []), *(["--block", str(block)] if block else [])]
    loop = tuple(float(x) for x in echo.split(":")) if echo else None
    if loop is not None and len(loop) != 2:
        raise click.BadParameter("GAIN_DB:DELAY_MS, e.g. -12:60", param_hint="--echo")
    report = run_mouth_to_ear(cases or shared_eval_dir() / "dev", out, stream, file_bench=not no_file_bench,
                              echo=loop)  # type: ignore[arg-type]
    click.echo(json.dumps({k: v for k, v in report.items()}, indent=1))


@bench.command("voice")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every figure as JSON.")
@click.option("--no-wer", is_flag=True, help="Skip the Whisper read-back (the slowest part, a few minutes).")
@click.option("--limit", type=int, default=None, help="Read back only the first N sentences of each persona.")
def bench_voice(json_out: Path | None, no_wer: bool, limit: int | None) -> None:
    """The NPC voices: Whisper's word error rate per engine, two NPCs on one Piper model, emotion, cache hits."""
    from npc_voice.bench.voice import run_voice_bench

    report = run_voice_bench(wer=not no_wer, limit=limit)
    text = json.dumps(report, indent=1)
    click.echo(text)
    if json_out:
        json_out.write_text(text)


@bench.command("cases")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Same seed, same cases (byte for byte).")
def bench_cases(out: Path, seed: int) -> None:
    """Render a held-out case set in the dev format into OUT: voices training never uses, wordings dev never uses."""
    from npc_voice.bench.cases import render_cases

    t = time.monotonic()
    ids = render_cases(out, seed)
    click.echo(f"{len(ids)} cases in {out} ({time.monotonic() - t:.1f} s)")


@main.command()
@click.option(
    "--wav",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Speak from this 16 kHz mono WAV instead of the microphone.",
)
@click.option("--persona", default="blacksmith", show_default=True)
@click.option("--personas", type=click.Path(exists=True, file_okay=False), multiple=True,
              help="A folder of persona files for the sidecar, searched first (repeatable; also $NPC_VOICE_PERSONAS).")
@click.option("--device", default=None, help="Sound device, index or name (`npc-voice devices` lists them).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep what was said and heard here: npc.wav, mic.wav, events.jsonl, steps.json (in <wav name>/ or live/).",
)
@click.option("--seconds", default=120.0, show_default=True, help="Stop a live conversation after this long.")
@click.option("--latency", default=None, help="PortAudio latency for the live stream: seconds, low or high "
              "(default: the tuned StreamSettings, docs/perf/mouth_to_ear.md).")
@click.option("--block", type=int, default=None, help="Frames per audio callback for the live stream.")
@click.option("--sidecar", default=None, help="Talk through a running sidecar at this address instead of starting one.")
@click.option("--why", is_flag=True, help="Print each floor decision that changes, with the rule that made it.")
@click.option("--policy", type=click.Choice(STRATEGIES), default="rules", show_default=True,
              help="The floor's strategy set.")
def talk(wav: Path | None, persona: str, personas: tuple[str, ...], device: str | None, out: Path | None,
         seconds: float, latency: str | None, block: int | None, sidecar: str | None, why: bool, policy: str) -> None:
    """Talk to an NPC: from the microphone, or from a WAV file; the sidecar is started and stopped for you."""
    from npc_voice.talk import talk_live, talk_wav
    from npc_voice.transport.process import SidecarProcess

    settings = _stream_settings(latency, block)
    proc = None
    status = 0
    try:
        if sidecar is None:
            click.echo("starting the sidecar (loading speech models)...")
            proc = SidecarProcess(list(personas), procs=1)  # one conversation: no worker processes to start
            proc.wait_ready()
            click.echo(f"sidecar ready in {proc.startup_s:.1f} s")
        address = sidecar or proc.address
        if wav is not None:
            talk_wav(address, wav, persona, out or Path(tempfile.mkdtemp(prefix="npc-voice-talk-")), why=why,
                     policy=policy)
        else:
            status = talk_live(address, persona, device, seconds, out, settings, why=why, policy=policy)
    finally:
        if proc is not None:
            proc.stop()
    sys.exit(status)


def _stream_settings(latency: str | None, block: int | None):  # noqa: ANN202 - StreamSettings, imported lazily
    from dataclasses import replace

    from npc_voice.audio.live import StreamSettings

    settings = StreamSettings()
    if latency is not None:
        try:
            settings = replace(settings, latency=float(latency))
        except ValueError:
            if latency not in ("low", "high"):
                raise click.BadParameter("seconds, low or high", param_hint="--latency") from None
            settings = replace(settings, latency=latency)
    if block is not None:
        settings = replace(settings, block=block)
    return settings


@main.command()
def devices() -> None:
    """List the sound devices (index, name, channels); `<` marks the default input, `>` the default output."""
    from npc_voice.audio.live import NoAudioDevice, list_devices

    try:
        found = list_devices()
    except NoAudioDevice as exc:
        raise click.ClickException(str(exc)) from exc
    if not found:
        raise click.ClickException("no sound devices found (no sound card, and no sound server such as PulseAudio)")
    for d in found:
        click.echo(d.line())
    click.echo("pick one with --device INDEX or --device NAME (npc-voice talk, npc-voice demo)")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def demo(args: tuple[str, ...]) -> None:
    """Play the demo village, Emberbrook (WASD walk, Enter types a line, Esc quits). Options go to the demo:
    `npc-voice demo --help` lists them (--device, --no-mic, --silent, --scripted, --screenshot...)."""
    from demo_game.__main__ import main as demo_main

    sys.exit(demo_main(list(args)))


@main.command()
def info() -> None:
    """Where the package, its trained models and personas are, and whether each model loads."""
    import npc_voice
    from npc_voice.data import PERSONAS_ENV, model_dir, persona_dirs
    from npc_voice.model.duplex import DuplexModel
    from npc_voice.model.emotion import ToneModel
    from npc_voice.model.endpoint import EndOfTurn
    from npc_voice.persona.loader import PersonaStore

    click.echo(f"npc-voice {npc_voice.__version__} at {Path(npc_voice.__file__).parent}")
    problems = 0
    for name, load in (("duplex", DuplexModel), ("emotion", ToneModel), ("endpoint", EndOfTurn)):
        try:
            load()
            click.echo(f"model {name}: ok ({model_dir(name)})")
        except Exception as exc:  # noqa: BLE001 - reported, not raised: this command is a check
            problems += 1
            click.echo(f"model {name}: FAILED ({exc})")
    store = PersonaStore(persona_dirs())
    click.echo(f"persona folders (${PERSONAS_ENV} first, then built-in): {', '.join(map(str, store.folders))}")
    click.echo(f"personas: {', '.join(store.known()) or 'none'}")
    if problems:
        sys.exit(1)


@main.group()
def memory() -> None:
    """What NPCs remember of players (the memory file the sidecar writes)."""


def _memory_store(db: Path | None) -> MemoryStore:
    from npc_voice.memory.store import MemoryStore, default_path

    path = db or default_path()
    if not path.exists():
        raise click.ClickException(f"no memory file at {path} (nothing remembered yet; --db names another file)")
    return MemoryStore(path)


_DB_OPTION = click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
                          help="The memory file [default: $NPC_VOICE_MEMORY, else the user's data folder].")


@memory.command("show")
@click.argument("player")
@click.argument("npc", required=False)
@_DB_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def memory_show(player: str, npc: str | None, db: Path | None, as_json: bool) -> None:
    """What every NPC (or NPC) remembers of PLAYER."""
    from npc_voice.memory.store import MemoryStoreError

    store = _memory_store(db)
    try:
        records = store.records(player, npc)
    except MemoryStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    if not records:
        who = f"NPC {npc!r}" if npc else "any NPC"
        raise click.ClickException(f"{who} remembers nothing of player {player!r} in {store.path}")
    summaries = [r.summary() for r in records]
    if as_json:
        click.echo(json.dumps(summaries, indent=2, ensure_ascii=False))
        return
    for s in summaries:
        click.echo(f"{s['npc']} remembers {s['player']}: {s['visits']} visit(s), first {s['first_seen']}, "
                   f"last {s['last_seen']}, last ended: {s['last_ended'] or '-'}, feels {s['feeling'] or '-'} "
                   f"(regard {s['regard']:+.2f})")
        for fact, value in s["facts"].items():
            click.echo(f"  fact {fact}: {value}")
        if s["topics"]:
            click.echo("  topics: " + ", ".join(f"{t} x{v['count']}" for t, v in s["topics"].items()))
        for t in s["recent_turns"]:
            cut = "" if t["completed"] else " (cut off)"
            click.echo(f"  {t['at']}  player: {t['heard']!r} -> [{t['topic']}] {t['said']!r}{cut}")


@memory.command("forget")
@click.argument("player")
@_DB_OPTION
def memory_forget(player: str, db: Path | None) -> None:
    """Erase everything every NPC remembers of PLAYER (a player's right to erase)."""
    from npc_voice.memory.store import MemoryStoreError

    store = _memory_store(db)
    try:
        gone = store.forget(player)
    except MemoryStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    click.echo(f"forgot player {player!r}: {gone} NPC record(s) erased from {store.path}")


main.add_command(persona)

if __name__ == "__main__":
    main()
