"""Which accurate recogniser reads the player's turns: word error rate and read time of each of
``features.asr.RECOGNISERS`` on the same turns, read as the engine reads them (the persona's prompt where the
recogniser takes one, the beam's best readings, the token probabilities of the best).

Turns: every player segment (turns, their parts, backchannels, interruptions) of the case folders given (the
shared dev set, held-out sets from ``npc-voice bench cases``), cut with 150 ms either side; the real phone call's
STM segments; and ``../shared/eval/real/read_speech`` (no transcripts: read time only, and how often the
recognisers agree). Read time is one read on an otherwise idle process, one thread: run it under the bench lock
for figures to report. The bench figures (relevance, latency) come from ``npc-voice bench duplex --asr NAME``.

Run: ``python -m npc_voice.bench.recognisers ../shared/eval/dev HELDOUT... [--json out.json]``
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np

from npc_voice.audio.devices import read_wav
from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.bench.asr_wer import PERSONA, PHONE_CALL, edit_distance, normalise
from npc_voice.features.asr import RECOGNISERS, AsrModels, persona_prompt
from npc_voice.features.lm import build_persona_lm
from npc_voice.persona.loader import load_persona
from npc_voice.train.clarity import PLAYER_ROLES

READ_SPEECH = PHONE_CALL.parent / "read_speech"


def case_turns(folder: Path) -> list[tuple[str, np.ndarray]]:
    """(what was said, its audio) for every player segment of the cases in ``folder``."""
    out = []
    for case_json in sorted(folder.glob("*/case.json")):
        case = json.loads(case_json.read_text())
        audio = read_wav(case_json.parent / "user.wav")
        for s in case["user_segments"]:
            if s["role"] in PLAYER_ROLES:
                a, b = max(0, int((s["start"] - 0.15) * SAMPLE_RATE)), int((s["end"] + 0.15) * SAMPLE_RATE)
                out.append((s["text"], audio[a:b]))
    return out


def phone_turns() -> list[tuple[str, np.ndarray]]:
    if not PHONE_CALL.exists():
        return []
    call = read_wav(PHONE_CALL / "sample.wav")
    out = []
    for line in (PHONE_CALL / "sample.stm").read_text().splitlines():
        parts = line.split(maxsplit=5)
        start, end = float(parts[3]), float(parts[4])
        out.append((parts[5], call[max(0, int((start - 0.15) * SAMPLE_RATE)) : int((end + 0.15) * SAMPLE_RATE)]))
    return out


def measure(asr: AsrModels, prompt: str, turns: list[tuple[str | None, np.ndarray]]) -> tuple[dict, list[str]]:
    """WER (over turns with a transcript) and read time p50/p99 (ms) of one recogniser; and what it read."""
    errors = words = 0
    times, texts = [], []
    for ref, audio in turns:
        t = time.perf_counter()
        text = asr.read(audio, prompt).text
        times.append((time.perf_counter() - t) * 1000)
        texts.append(text)
        if ref is not None:
            r = normalise(ref)
            errors += edit_distance(r, normalise(text))
            words += len(r)
    out = {"turns": len(turns), "read_ms_p50": round(float(np.percentile(times, 50)), 1),
           "read_ms_p99": round(float(np.percentile(times, 99)), 1)}
    if words:
        out |= {"wer": round(errors / words, 3), "words": words}
    return out, texts


@click.command()
@click.argument("folders", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--recogniser", "names", multiple=True, type=click.Choice(RECOGNISERS),
              help="Only these (default: all).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(folders: tuple[Path, ...], names: tuple[str, ...], json_out: Path | None) -> None:
    """WER and read time of each recogniser on the same turns."""
    import torch

    torch.set_num_threads(1)
    sets: dict[str, list[tuple[str | None, np.ndarray]]] = {f.name: case_turns(f) for f in folders}  # type: ignore[misc]
    sets["phone_call"] = phone_turns()  # type: ignore[assignment]
    if READ_SPEECH.exists():
        sets["read_speech"] = [(None, read_wav(p)) for p in sorted(READ_SPEECH.glob("*.wav"))]
    persona = load_persona(PERSONA)
    prompt = persona_prompt(build_persona_lm(PERSONA), persona.name)
    result: dict[str, dict] = {}
    read: dict[str, list[str]] = {}
    for name in names or RECOGNISERS:
        asr = AsrModels(recogniser=name)
        for set_name, turns in sets.items():
            figures, texts = measure(asr, prompt, turns)
            result.setdefault(name, {})[set_name] = figures
            read[f"{name}:{set_name}"] = texts
            click.echo(f"{name:15s} {set_name:14s} " + "  ".join(f"{k}={v}" for k, v in figures.items()))
        asr.close()
    if "read_speech" in sets and len(result) > 1:  # no transcripts: how often two recognisers read the same words
        first = next(iter(result))
        for name in list(result)[1:]:
            a, b = read[f"{first}:read_speech"], read[f"{name}:read_speech"]
            e = sum(edit_distance(normalise(x), normalise(y)) for x, y in zip(a, b, strict=True))
            n = sum(len(normalise(x)) for x in a)
            result[name]["read_speech"]["differs_from_" + first] = round(e / max(n, 1), 3)
    if json_out:
        json_out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
