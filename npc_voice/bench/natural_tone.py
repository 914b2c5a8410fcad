"""How often the tone reader hears strong emotion in ordinary speech: ``python -m npc_voice.bench.natural_tone``.

Acted corpora (RAVDESS) say whether the reader tells emotions apart; they do not say whether it leaves
calm people alone. This plays speech that is expected to be neutral or calm through the run-time path
and counts, per turn, what the game would have been told:

- ``phone_call``: ``../shared/eval/real/phone_call`` (two real people on a phone line), each speaker's
  turns (``sample.stm``) one after another as one player's session;
- ``read_speech``: ``../shared/eval/real/read_speech`` (LibriSpeech test-other), one session per speaker;
- ``dev``: the duplex bench's ``../shared/eval/dev`` cases (synthetic player voices), one session per case,
  its ``user_segments`` the turns.

The path is the engine's: silero voice activity with the engine's hysteresis (``HearingConfig``'s
``speech_on``, ``speech_off``, ``hangover_frames``) says which chunks are speech, ``PlayerTone.step`` reads
every chunk, ``end_of_speech`` gives each stretch's verdict, ``with_voice`` adds the recogniser's read of the
stretch's voice (Whisper tiny.en's encoder states, as the engine's turn read keeps them) and ``event_for``
decides what would be sent. A turn counts as *read angry* when an ``emotion`` event said "angry" with
intensity >= 0.6 between the turn's start and 1 s after its end (the bench scorer's window): what a player
would see on the NPC's reading of them. *Strong* is any category but neutral at that intensity.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npc_voice.audio.devices import read_wav
from npc_voice.audio.format import CHUNK_SAMPLES, CHUNK_SECONDS, SAMPLE_RATE
from npc_voice.config import HearingConfig
from npc_voice.data import shared_eval_dir
from npc_voice.events import Emotion
from npc_voice.features.asr import AsrModels
from npc_voice.features.prosody import chunks
from npc_voice.features.vad import VoiceActivity
from npc_voice.model.emotion import PlayerTone, ToneModel

SHARED = shared_eval_dir()
STRONG_INTENSITY = 0.6  # the yardstick: "read as angry" is angry at this intensity or more
WINDOW_AFTER_S = 1.0  # events up to this long after a turn's end still belong to it (the bench scorer's rule)
GAP_S = 1.0  # silence between the turns of one speaker, when they are cut out of a longer recording
PAD_S = 0.25  # audio kept before and after a turn cut out of a recording


@dataclass(frozen=True)
class Session:
    """One player's audio and where their turns are in it (seconds)."""

    name: str
    audio: np.ndarray  # int16, 16 kHz
    turns: list[tuple[float, float]]


def _join(name: str, pieces: list[np.ndarray]) -> Session:
    """Pieces one after another with ``GAP_S`` of silence before each: one session, a turn per piece."""
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), dtype=np.int16)
    parts, turns, t = [], [], 0.0
    for p in pieces:
        parts += [gap, p]
        t += GAP_S
        turns.append((t, t + p.size / SAMPLE_RATE))
        t += p.size / SAMPLE_RATE
    parts.append(gap)
    return Session(name, np.concatenate(parts), turns)


def phone_call_sessions(folder: Path) -> list[Session]:
    """Each speaker of the call as a player: their ``sample.stm`` turns, in order, cut out of the mix."""
    audio = read_wav(folder / "sample.wav")
    by_speaker: dict[str, list[np.ndarray]] = {}
    for line in (folder / "sample.stm").read_text().splitlines():
        f = line.split()
        if len(f) < 5:
            continue
        start, end = float(f[3]), float(f[4])
        a = max(0, int((start - PAD_S) * SAMPLE_RATE))
        b = min(audio.size, int((end + PAD_S) * SAMPLE_RATE))
        by_speaker.setdefault(f[2], []).append(audio[a:b])
    return [_join(f"phone_call/{who}", pieces) for who, pieces in sorted(by_speaker.items())]


def read_speech_sessions(folder: Path) -> list[Session]:
    """Each LibriSpeech speaker (the file name's first field) as a player, their utterances in order."""
    by_speaker: dict[str, list[np.ndarray]] = {}
    for path in sorted(folder.glob("*.wav")):
        by_speaker.setdefault(path.stem.split("-")[0], []).append(read_wav(path))
    return [_join(f"read_speech/{who}", pieces) for who, pieces in sorted(by_speaker.items())]


def case_sessions(folder: Path) -> list[Session]:
    """Each bench case as a session; its ``user_segments`` are the turns."""
    out = []
    for case_json in sorted(folder.glob("*/case.json")):
        case = json.loads(case_json.read_text())
        turns = [(float(s["start"]), float(s["end"])) for s in case.get("user_segments", [])]
        if turns:
            out.append(Session(f"{folder.name}/{case['id']}", read_wav(case_json.parent / "user.wav"), turns))
    return out


def default_sets(shared: Path = SHARED) -> dict[str, list[Session]]:
    return {
        "phone_call": phone_call_sessions(shared / "real" / "phone_call"),
        "read_speech": read_speech_sessions(shared / "real" / "read_speech"),
        "dev": case_sessions(shared / "dev"),
    }


class SpeechFlags:
    """Chunk speech flags as the engine derives them: silero probabilities with its hysteresis."""

    def __init__(self) -> None:
        c = HearingConfig()
        self.on, self.off, self.hangover = c.speech_on, c.speech_off, c.hangover_frames
        self.vad = VoiceActivity()
        self.in_speech = False
        self._below = 0

    def push(self, chunk: np.ndarray) -> bool:
        """Is the player speaking at the end of this chunk?"""
        for p in self.vad.process(chunk):
            if self.in_speech:
                self._below = self._below + 1 if p < self.off else 0
                if self._below >= self.hangover:
                    self.in_speech, self._below = False, 0
            elif p >= self.on:
                self.in_speech = True
        return self.in_speech


def play(session: Session, model: ToneModel, asr: AsrModels | None = None) -> list[tuple[float, Emotion]]:
    """Run a session through the tone path; every player ``emotion`` event with its time (end of its chunk).

    With ``asr``, a stretch's verdict also has the recogniser's read of its voice, as the engine's turn read
    gives it (``Read.voice`` of the stretch's audio from the chunk before its onset); it is told at the end of
    the stretch (the engine tells it when its read is done, ~0.1-0.3 s later)."""
    tone, flags = PlayerTone(model), SpeechFlags()
    events: list[tuple[float, Emotion]] = []
    audio = np.concatenate([session.audio, np.zeros(CHUNK_SAMPLES * 3, dtype=np.int16)])
    start = 0
    for k, part in enumerate(chunks(audio)):
        was = flags.in_speech
        speaking = flags.push(part)
        if speaking and not was:
            start = max(0, k - 1)
        estimate = tone.step(part, speaking)
        if was and not speaking:
            estimate = tone.end_of_speech() or estimate
            if asr is not None and tone.hears_voices:
                heard = asr.voice(audio[start * CHUNK_SAMPLES:(k + 1) * CHUNK_SAMPLES])
                estimate = tone.with_voice(heard, asr.recogniser) or estimate
        ev = tone.event_for(estimate)
        if ev is not None:
            events.append(((k + 1) * CHUNK_SECONDS, ev))
    return events


def turn_readings(session: Session, events: list[tuple[float, Emotion]]) -> list[list[Emotion]]:
    """The events that belong to each turn (from its start to ``WINDOW_AFTER_S`` after its end)."""
    return [[e for t, e in events if s <= t <= end + WINDOW_AFTER_S] for s, end in session.turns]


def _strong(e: Emotion, category: str | None = None) -> bool:
    return e.emotion != "neutral" and e.intensity >= STRONG_INTENSITY and category in (None, e.emotion)


def measure(sessions: list[Session], model: ToneModel, asr: AsrModels | None = None) -> dict[str, object]:
    """Per-turn rates for one set: read angry, read with any strong emotion, and the last readings' classes."""
    angry = strong = read = n = 0
    last = Counter()
    for session in sessions:
        for said in turn_readings(session, play(session, model, asr)):
            n += 1
            read += bool(said)
            angry += any(_strong(e, "angry") for e in said)
            strong += any(_strong(e) for e in said)
            last[said[-1].emotion if said else "none"] += 1
    return {"sessions": len(sessions), "turns": n, "turns_read": read,
            "angry_rate": round(angry / max(n, 1), 3), "angry_turns": angry,
            "strong_rate": round(strong / max(n, 1), 3), "strong_turns": strong,
            "last_reading": dict(sorted(last.items()))}


def natural_report(model: ToneModel, sets: dict[str, list[Session]] | None = None, voice: bool = True
                   ) -> dict[str, dict[str, object]]:
    """``measure`` for each set; ``voice``: with the recogniser's read of each stretch's voice, as the engine."""
    asr = AsrModels() if voice and model.voice is not None else None
    return {name: measure(sessions, model, asr) for name, sessions in (sets or default_sets()).items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="a model folder (default: the shipped models/emotion)")
    ap.add_argument("--prosody-only", action="store_true", help="without the recogniser's read of the voice")
    ap.add_argument("--cases", type=Path, action="append", default=[],
                    help="also a bench case folder (e.g. one made by `npc-voice bench cases`); repeatable")
    args = ap.parse_args(argv)
    model = ToneModel(args.model) if args.model else ToneModel.shared()
    sets = default_sets()
    for folder in args.cases:
        sets[str(folder)] = case_sessions(folder)
    print(json.dumps(natural_report(model, sets, voice=not args.prosody_only), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
