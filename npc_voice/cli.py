"""The ``npc-voice`` command: run the sidecar, talk to an NPC, run the benches."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import click

from npc_voice.persona.commands import persona


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
    default=None,
    help="Folder of persona files (default: assets/personas).",
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
@click.option("--max-sessions", default=32, show_default=True,
              help="Cap over all workers: further sessions get `capacity`.")
@click.option("--allow-remote", is_flag=True, help="Allow binding to a non-loopback address (needs --curve-*).")
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
    personas: str | None,
    procs: int | None,
    ray_address: str | None,
    capacity: int | None,
    ray_cpus: float,
    ray_memory_mb: int | None,
    workers: int,
    max_sessions: int,
    allow_remote: bool,
    curve_secret: Path | None,
    curve_clients: Path | None,
) -> None:
    """Run the sidecar until Ctrl-C or SIGTERM."""
    import os

    from npc_voice.transport.server import CurveKeys, serve_forever

    if (curve_secret is None) != (curve_clients is None):
        raise click.UsageError("--curve-secret and --curve-clients go together")
    curve = CurveKeys(curve_secret, curve_clients) if curve_secret and curve_clients else None
    if ray_address is None and procs is None:
        procs = os.cpu_count() or 1
    sys.exit(serve_forever(address, personas, workers=workers, allow_remote=allow_remote, curve=curve,
                           max_sessions=max_sessions, procs=procs, ray_address=ray_address, capacity=capacity,
                           ray_cpus=ray_cpus, ray_memory_mb=ray_memory_mb))


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
    procs: int | None,
    json_out: Path | None,
) -> None:
    """Play every case in CASES through a real sidecar and score the result."""
    from npc_voice.bench.duplex import run_bench, step_figures
    from npc_voice.bench.score import score_folder

    t = time.monotonic()
    runs = run_bench(cases, out, realtime=realtime, parallel=parallel, sidecar=sidecar, persona_dir=personas,
                     procs=procs)
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


@bench.command("perf")
@click.option("--cases", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=Path("/work/shared/eval/dev"), show_default=True, help="Cases whose user.wav is streamed.")
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
def bench_perf(cases: Path, out: Path, levels: str, seconds: float, soak_minutes: float, procs: str | None,
               ray: bool, ray_nodes: int, failover: bool) -> None:
    """The 200 ms deadline under load: 1..16 real-time sessions per setup, start-up, failover, a long session."""
    import os

    from npc_voice.bench.perf import run_perf

    procs = procs or ",".join(dict.fromkeys(["1", str(os.cpu_count() or 1)]))
    run_perf(cases, out, tuple(int(x) for x in levels.split(",")), seconds, soak_minutes, procs, ray, ray_nodes,
             failover)
    click.echo((out / "table.md").read_text())


@bench.command("topics")
@click.option("--persona", "persona_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, show_default="assets/personas/blacksmith.yaml", help="The persona file to measure.")
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
@click.option("--device", default=None, help="Sound device (name or index) for the live conversation.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep what was said and heard here (npc.wav, mic.wav, events.jsonl).",
)
@click.option("--seconds", default=120.0, show_default=True, help="Stop a live conversation after this long.")
def talk(wav: Path | None, persona: str, device: str | None, out: Path | None, seconds: float) -> None:
    """Talk to an NPC: from the microphone, or from a WAV file; the sidecar is started and stopped for you."""
    from npc_voice.talk import talk_live, talk_wav
    from npc_voice.transport.process import SidecarProcess

    proc = SidecarProcess(procs=1)  # one conversation: no worker processes to start
    click.echo("starting the sidecar (loading speech models)...")
    try:
        proc.wait_ready()
        click.echo(f"sidecar ready in {proc.startup_s:.1f} s")
        if wav is not None:
            talk_wav(proc.address, wav, persona, out or Path(tempfile.mkdtemp(prefix="npc-voice-talk-")))
        else:
            talk_live(proc.address, persona, device, seconds)
    finally:
        proc.stop()


main.add_command(persona)

if __name__ == "__main__":
    main()
