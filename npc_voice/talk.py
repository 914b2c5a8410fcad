"""A conversation in the terminal: the player's voice from the microphone or a WAV file.

Both modes print the conversation with times in seconds from the start of the session, and ``--out``
keeps the same files in both: ``npc.wav`` (what the loudspeaker played), ``mic.wav`` (what the sidecar
was sent, sample-aligned with it), ``events.jsonl`` (every event, ``t`` on that timeline) and
``steps.json``. If the sound device goes away mid-conversation, the conversation goes on without sound:
lines typed on the terminal are spoken into the microphone path and the NPC's answers are printed.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from npc_voice.audio.devices import read_wav, write_wav
from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE
from npc_voice.audio.live import LiveDuplexDevice, NoAudioDevice, StreamSettings, parse_device
from npc_voice.audio.playback import JitterBuffer
from npc_voice.audio.virtual import ClockedDuplexDevice, TypedMic
from npc_voice.transport.client import ErrorReply, Reply, SidecarClient

TYPED_GAIN = 0.5  # a typed line reaches the sidecar at a normal speaking level, as in the game hub


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


class LiveRecording:
    """What a live conversation keeps for ``--out``: the chunks sent, what played meanwhile, the events."""

    def __init__(self) -> None:
        self.mic: list[np.ndarray] = []
        self.played: list[np.ndarray] = []
        self.events: list[dict[str, Any]] = []
        self.steps: dict[int, dict[str, float]] = {}
        self._lock = threading.Lock()

    def chunk(self, pcm: np.ndarray, played: np.ndarray) -> None:
        self.mic.append(pcm)
        self.played.append(played)

    def event(self, e: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(e)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        empty = np.zeros(0, np.int16)
        write_wav(folder / "npc.wav", np.concatenate(self.played) if self.played else empty)
        write_wav(folder / "mic.wav", np.concatenate(self.mic) if self.mic else empty)
        with self._lock:
            events = sorted(self.events, key=lambda e: e["t"])
        with open(folder / "events.jsonl", "w") as f:
            for e in events:
                f.write(json.dumps(e) + "\n")
        (folder / "steps.json").write_text(json.dumps({
            "chunk_s": CHUNK_SAMPLES / SAMPLE_RATE,
            "steps": [{"seq": seq, **fig} for seq, fig in sorted(self.steps.items())],
        }))


def _typed_lines(typed: TypedMic, stop: threading.Event) -> None:
    """Read lines from the terminal and speak them into the microphone path (the fallback's input)."""
    from npc_voice.game.hub import PLAYER_VOICE
    from npc_voice.speech.tts import Synthesizer

    synth = Synthesizer()
    for line in sys.stdin:
        if stop.is_set():
            return
        if line.strip():
            audio = synth.synthesize(line.strip(), PLAYER_VOICE).audio
            typed.say((audio.astype(np.float32) * TYPED_GAIN).astype(np.int16))


def talk_live(
    address: str,
    persona: str,
    device: str | None,
    seconds: float,
    out: Path | None = None,
    settings: StreamSettings = StreamSettings(),  # noqa: B008 - frozen
    why: bool = False,
    policy: str = "rules",
) -> int:
    """Talk through the sound card until Ctrl-C or ``seconds``; returns the exit status. ``why``: print the
    floor's decisions too; ``policy``: the floor's strategy set."""
    buffer = JitterBuffer()
    lost: list[str] = []

    def pull(n: int, now: float) -> tuple[np.ndarray, np.ndarray]:
        pcm = buffer.pull(n, now)
        return pcm, pcm

    try:
        live: LiveDuplexDevice | ClockedDuplexDevice = LiveDuplexDevice(
            pull, parse_device(device), settings=settings, on_lost=lost.append)
    except NoAudioDevice as exc:
        raise click.ClickException(
            f"{exc}. No microphone here: try `npc-voice talk --wav FILE.wav`, `npc-voice devices` to see the "
            "sound devices, or the demo game's type-to-speak mode."
        ) from exc
    lat_in, lat_out = live.latency
    click.echo(f"microphone: {live.input_name}; speaker: {live.output_name} "
               f"(device latency {lat_in * 1000:.0f} ms in, {lat_out * 1000:.0f} ms out)")
    client = SidecarClient(address)
    session = client.open_session(persona=persona, npc_id=persona, floor=True, policy=policy)
    show = printer(why)
    if not session.wait_opened(60):
        live.stop()
        client.close()
        raise click.ClickException(f"the sidecar did not open a session: {session.error}")
    rec = LiveRecording()
    pending: dict[int, list[dict[str, Any]]] = {}
    sent_at: dict[int, float] = {}
    typed: TypedMic | None = None
    stop_typing = threading.Event()
    t0 = time.monotonic()  # the session's clock: every printed and saved time is from here

    def emit(e: dict[str, Any], t: float) -> None:
        e["t"] = round(t - t0, 4)
        rec.event(e)
        show(e)

    def on_start(seq: int, t: float) -> None:  # the device thread: reply ``seq`` starts playing at ``t``
        for e in pending.pop(seq, []):
            emit(e, t + e.pop("offset"))

    buffer.on_start = on_start
    click.echo(f"listening; speak to {persona} (Ctrl-C to stop)")
    live.start()
    status = 0
    try:
        while time.monotonic() - t0 < seconds:
            if lost and typed is None:
                click.echo(f"{time.monotonic() - t0:6.2f}s   {lost[0]}. The conversation goes on without sound: "
                           "type what you say and press Enter.", err=True)
                live.stop()
                typed = TypedMic()
                live = ClockedDuplexDevice(pull)
                live.start()
                threading.Thread(target=_typed_lines, args=(typed, stop_typing), daemon=True).start()
                status = 3  # the conversation went on, but the sound device was lost: say so to scripts
            while not live.chunks.empty():
                chunk = live.chunks.get_nowait()
                pcm = chunk.pcm if typed is None else typed.read(CHUNK_SAMPLES)
                rec.chunk(pcm, chunk.played)
                seq = session.send_mic(pcm, chunk.played if typed is None else None, t_capture=chunk.t_end - t0)
                sent_at[seq] = time.monotonic()
            for r in session.replies():
                if isinstance(r, ErrorReply):
                    click.echo(f"sidecar error: {r.code}: {r.message}", err=True)
                    continue
                _take(r, buffer, pending, rec, sent_at, emit)
            time.sleep(0.005)
    except KeyboardInterrupt:
        pass
    finally:
        stop_typing.set()
        live.stop()
        session.close()
        client.close()
    if out is not None:
        rec.save(out / "live")
        click.echo(f"kept in {out / 'live'}: npc.wav, mic.wav, events.jsonl, steps.json")
    return status


def _take(r: Reply, buffer: JitterBuffer, pending: dict[int, list[dict[str, Any]]], rec: LiveRecording,
          sent_at: dict[int, float], emit: Any) -> None:
    """One step reply: events without an offset now, the others when their audio starts playing."""
    timed = []
    for e in r.events:
        # The line stopped, or was held while the player's voice runs over it: drop what is queued.
        if e.type == "interrupted" or (e.type == "held" and getattr(e, "held", False)):
            buffer.flush()
        wire = e.to_wire()
        if e.offset is None:
            emit(wire, r.arrival)
        else:
            timed.append(wire)
    if timed:
        pending[r.seq] = timed
    rec.steps[r.seq] = {"compute_ms": round(r.compute_ms, 2),
                        "roundtrip_ms": round((r.arrival - sent_at.get(r.seq, r.arrival)) * 1000, 2)}
    buffer.push(r.pcm, time.monotonic(), tag=r.seq)
