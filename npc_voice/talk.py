"""A conversation in the terminal: the player's voice from the microphone or a WAV file."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from npc_voice.audio.devices import read_wav
from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.audio.live import LiveDuplexDevice, NoAudioDevice
from npc_voice.audio.playback import JitterBuffer
from npc_voice.transport.client import ErrorReply, SidecarClient


def describe(e: dict[str, Any]) -> str | None:
    """One line for the events a person wants to see; None for the rest (visemes, word timing)."""
    kind = e["type"]
    if kind == "transcript":
        return f"  player{'' if e['final'] else ' (so far)'}: {e['text']}"
    if kind == "response":
        return f"  NPC [{e['topic']}, {e['confidence']:.2f}]: {e['text']}"
    if kind == "interrupted":
        return "  NPC stops: interrupted"
    if kind == "held":
        return "  NPC pauses as you talk over it" if e["held"] else "  NPC goes on"
    if kind == "backchannel":
        return f"  NPC hears a backchannel ({e['heard'] or '...'}) and goes on"
    if kind == "emotion":
        return f"  {e['who']} feels {e['emotion']} ({e['intensity']:.2f})"
    if kind == "notice":
        return f"  notice: {e['message']}"
    return None


# Decisions that only say "nothing to decide yet": not worth a line of their own.
ROUTINE_RULES = frozenset(["listening.still_talking", "listening.waiting", "speaking.nothing_heard"])


class FloorWhy:
    """``--why``: one line per floor decision that differs from the last one printed (the action, the rule and
    its reason), so "why did the smith cut me off?" is answered by a line such as
    ``floor: interrupted by speaking.cue_word: cut-in word in 'Wait, no...'``."""

    def __init__(self) -> None:
        self.last: tuple[str, str] | None = None

    def line(self, e: dict[str, Any]) -> str | None:
        rule = e.get("rule")
        if rule is None:
            return None
        key = (e["action"], rule)
        if key == self.last or (rule in ROUTINE_RULES and e["action"] in ("listen", "continue")):
            return None
        self.last = key
        return f"  floor: {e['action']} by {rule}" + (f": {e['why']}" if e.get("why") else "")


def printer(why: bool) -> Callable[[dict[str, Any]], None]:
    """What the terminal shows of each event; with ``why``, the floor's decisions too."""
    narrator = FloorWhy() if why else None

    def show(e: dict[str, Any]) -> None:
        if e["type"] == "floor":
            line = narrator.line(e) if narrator is not None else None
        else:
            line = describe(e) if not (e["type"] == "transcript" and not e["final"]) else None
        if line:
            click.echo(f"{e.get('t', 0):6.2f}s {line}")

    return show


def talk_wav(address: str, wav: Path, persona: str, out: Path, why: bool = False, policy: str = "rules") -> None:
    """Play a WAV as the player's microphone in real time and print the conversation."""
    from npc_voice.bench.duplex import run_case

    audio = read_wav(wav)
    case = {"id": wav.stem, "persona": persona, "_dir": None}
    click.echo(f"playing {wav} ({len(audio) / SAMPLE_RATE:.1f} s) to {persona}...")
    run = run_case(case, address, out, realtime=True, on_event=printer(why), user=audio, policy=policy)
    click.echo(f"done; what the player heard: {out / wav.stem / 'npc.wav'}")
    for err in run.errors:
        click.echo(f"sidecar error: {err}", err=True)


def talk_live(address: str, persona: str, device: str | None, seconds: float, why: bool = False,
              policy: str = "rules") -> None:
    """Talk through the sound card until Ctrl-C or ``seconds``."""
    buffer = JitterBuffer()
    try:
        live = LiveDuplexDevice(buffer, device=int(device) if device and device.isdigit() else device)
    except NoAudioDevice as exc:
        raise click.ClickException(
            f"{exc}. No microphone here: try `npc-voice talk --wav FILE.wav`, "
            "or the demo game's type-to-speak mode."
        ) from exc
    client = SidecarClient(address)
    session = client.open_session(persona=persona, npc_id=persona, floor=why, policy=policy)
    show = printer(why)
    if not session.wait_opened(60):
        raise click.ClickException(f"the sidecar did not open a session: {session.error}")
    click.echo("listening; speak to the NPC (Ctrl-C to stop)")
    live.start()
    t_end = time.monotonic() + seconds
    try:
        while time.monotonic() < t_end:
            while not live.chunks.empty():
                chunk = live.chunks.get_nowait()
                session.send_mic(chunk.pcm, chunk.played)
            for r in session.replies():
                if isinstance(r, ErrorReply):
                    click.echo(f"sidecar error: {r.code}: {r.message}", err=True)
                    continue
                if any(e.type == "interrupted" or (e.type == "held" and getattr(e, "held", False)) for e in r.events):
                    buffer.flush()
                buffer.push(r.pcm, live.time)
                for e in r.events:
                    wire = e.to_wire()
                    wire["t"] = live.time
                    show(wire)
            time.sleep(0.005)
    except KeyboardInterrupt:
        pass
    finally:
        live.stop()
        session.close()
        client.close()
