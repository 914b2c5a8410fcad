"""ASR bench: word error rate and compute of the streaming and accurate passes.

Systems: (a) pocketsphinx with its general LM, (b) pocketsphinx with the blended persona LM,
(c) Whisper tiny.en on a 10 s window, (d) the same with the persona keyword prompt. Speech is
synthesised here (several espeak-ng voices, rates and pitches, and festival) from new phrasings of
the blacksmith topics that are not in the persona file, plus off-topic and glue phrases; and the
real two-party phone call in ../shared/eval/real/phone_call (its STM transcript). The read_speech
folder carries no transcripts, so it cannot be scored.

Run: .venv/bin/python -m npc_voice.bench.asr_wer [--voices N] [--json out.json]
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from npc_voice.audio.devices import read_wav, write_wav
from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE, to_int16
from npc_voice.data import builtin_persona_dir, shared_eval_dir
from npc_voice.features.asr import AsrModels, StreamingRecognizer, persona_prompt
from npc_voice.features.lm import build_persona_lm
from npc_voice.persona.loader import PersonaStore
from npc_voice.train.dialogues import decode_wav

PERSONA = builtin_persona_dir() / "blacksmith.yaml"
PHONE_CALL = shared_eval_dir() / "real" / "phone_call"

# New phrasings of the blacksmith topics (none is in the persona file), then off-topic speech, then glue.
IN_TOPIC = [
    "good afternoon, it is nice to meet you",
    "hello smith, are you busy today",
    "i must be going now, see you around",
    "thank you for your help, goodbye friend",
    "what should i call you",
    "have you always lived in this village",
    "i am looking for a strong sword",
    "could you sell me a steel blade for my journey",
    "how much would a longsword cost me",
    "i would like a sturdy shield made of oak",
    "do you make shields strong enough to stop an axe",
    "that price is far too high for me",
    "would you take twenty gold for it",
    "what do you charge for your work",
    "my armor has a big hole in it, can you patch it",
    "the edge of my sword is dull, can you sharpen it",
    "could you fix this dented helmet",
    "which road leads to the castle",
    "is the inn far from here",
    "where do i find the market square",
    "tell me the story of the dragon",
    "did the dragon really burn the mill",
    "what does the dragon on the mountain look like",
    "who owned this forge before you",
    "when did you start working with iron",
    "what is the hardest thing you ever made at this forge",
]
OFF_TOPIC = [
    "the weather has been very cold this week",
    "my brother is looking for work in the city",
    "have you heard any news from the king",
    "i think it is going to rain tonight",
    "do you like to read books in the evening",
    "my horse lost a shoe on the way here",
    "the children were playing by the river all morning",
    "what time does the sun go down in winter",
    "i had a strange dream about the sea last night",
    "my mother makes the best apple pie in town",
]
GLUE = [
    "uh huh",
    "okay",
    "yeah right",
    "i see",
    "wait, hold on",
    "no that's not what i meant",
    "sorry, excuse me",
    "actually, stop",
]

# espeak-ng voice, words per minute, pitch (0..100); then festival's default voice.
VOICES: list[tuple[str, str, int, int]] = [
    ("espeak", "en-us+m3", 165, 35),
    ("espeak", "en-us+f3", 150, 60),
    ("espeak", "en-gb+m1", 180, 45),
    ("espeak", "en-gb-scotland+f2", 140, 55),
    ("espeak", "en-us+m7", 195, 25),
    ("festival", "kal_diphone", 0, 0),
]


def normalise(text: str) -> list[str]:
    """Words for WER: lower case, no punctuation, hyphens as spaces, 'ok' as 'okay'."""
    text = text.lower().replace("\u2019", "'").replace("-", " ")
    words = re.sub(r"[^a-z' ]+", " ", text).split()
    return ["okay" if w == "ok" else w.strip("'") for w in words if w.strip("'")]


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def synthesise(text: str, voice: tuple[str, str, int, int], out_dir: Path) -> np.ndarray:
    """Speak `text` with one voice, at 16 kHz (cached by file name)."""
    engine, name, rate, pitch = voice
    key = re.sub(r"[^a-z0-9]+", "_", f"{engine}_{name}_{rate}_{pitch}_{text.lower()}")[:150]
    final = out_dir / f"{key}.wav"
    if not final.exists():
        raw = out_dir / f"{key}.raw.wav"
        if engine == "espeak":
            cmd = ["espeak-ng", "-v", name, "-s", str(rate), "-p", str(pitch), "-w", str(raw), text]
            subprocess.run(cmd, check=True, capture_output=True)
        else:
            subprocess.run(
                ["text2wave", "-o", str(raw), "-eval", f"(voice_{name})"],
                input=text.encode(),
                check=True,
                capture_output=True,
            )
        write_wav(final, to_int16(decode_wav(raw.read_bytes())))  # the synthesisers write 22.05 kHz
        raw.unlink()
    return read_wav(final)


@dataclass
class Score:
    """Errors, reference words and compute of one system on one set."""

    errors: int = 0
    words: int = 0
    chunk_ms: list[float] = field(default_factory=list)
    utt_ms: list[float] = field(default_factory=list)

    def add(self, ref: str, hyp: str) -> None:
        r = normalise(ref)
        self.errors += edit_distance(r, normalise(hyp))
        self.words += len(r)

    def summary(self) -> dict[str, float]:
        out = {"wer": round(self.errors / max(self.words, 1), 3), "words": self.words}
        for name, xs in (("chunk_ms", self.chunk_ms), ("utterance_ms", self.utt_ms)):
            if xs:
                out[f"{name}_mean"] = round(float(np.mean(xs)), 2)
                out[f"{name}_p95"] = round(float(np.percentile(xs, 95)), 2)
        return out


def stream(rec: StreamingRecognizer, audio: np.ndarray, score: Score) -> str:
    """Feed 200 ms chunks as the engine does; return pocketsphinx's final text."""
    rec.start()
    for i in range(0, audio.size, CHUNK_SAMPLES):
        t = time.perf_counter()
        rec.feed(audio[i : i + CHUNK_SAMPLES])
        score.chunk_ms.append((time.perf_counter() - t) * 1000)
    return rec.finish(accurate=False).fast_text


def run(n_voices: int, verbose: bool) -> dict[str, dict[str, dict[str, float]]]:
    lm = build_persona_lm(PERSONA)
    models = AsrModels()
    prompt = persona_prompt(lm, PersonaStore(PERSONA.parent).load(PERSONA.stem).name)
    recs = {"ps_general": StreamingRecognizer(models, None), "ps_persona": StreamingRecognizer(models, lm)}
    pad = np.zeros(int(0.3 * SAMPLE_RATE), dtype=np.int16)
    cases: list[tuple[str, str, str, np.ndarray]] = []
    with tempfile.TemporaryDirectory() as tmp:
        audio_dir = Path(tmp)
        k = 0
        for group, texts in (("in_topic", IN_TOPIC), ("off_topic", OFF_TOPIC), ("glue", GLUE)):
            for text in texts:
                for _ in range(n_voices):  # rotate voices so every sentence gets several different ones
                    voice = VOICES[k % len(VOICES)]
                    k += 1
                    speech = synthesise(text, voice, audio_dir)
                    cases.append((group, f"{voice[0]}:{voice[1]}", text, np.concatenate([pad, speech, pad])))
    if PHONE_CALL.exists():
        call = read_wav(PHONE_CALL / "sample.wav")
        for line in (PHONE_CALL / "sample.stm").read_text().splitlines():
            parts = line.split(maxsplit=5)
            start, end = float(parts[3]), float(parts[4])
            seg = call[max(0, int((start - 0.15) * SAMPLE_RATE)) : int((end + 0.15) * SAMPLE_RATE)]
            cases.append(("real_phone", f"real:{parts[2]}", parts[5], seg))

    systems = ["ps_general", "ps_persona", "whisper", "whisper_prompt"]
    scores: dict[str, dict[str, Score]] = {s: {} for s in systems}
    by_voice: dict[str, dict[str, Score]] = {s: {} for s in systems}
    for group, voice, text, audio in cases:
        hyps = {}
        for name, rec in recs.items():
            hyps[name] = stream(rec, audio, scores[name].setdefault(group, Score()))
        for name, p in (("whisper", None), ("whisper_prompt", prompt)):
            t = time.perf_counter()
            hyps[name] = models.transcribe(audio, p)
            scores[name].setdefault(group, Score()).utt_ms.append((time.perf_counter() - t) * 1000)
        for name, hyp in hyps.items():
            scores[name][group].add(text, hyp)
            by_voice[name].setdefault(voice, Score()).add(text, hyp)
        if verbose:
            click.echo(f"[{group}] {text}\n" + "".join(f"    {n:15s} {h}\n" for n, h in hyps.items()))
    models.close()
    result = {}
    for name in systems:
        total = Score()
        for sc in scores[name].values():
            total.errors += sc.errors
            total.words += sc.words
            total.chunk_ms += sc.chunk_ms
            total.utt_ms += sc.utt_ms
        result[name] = {g: sc.summary() for g, sc in scores[name].items()} | {"all": total.summary()}
        result[name] |= {v: {"wer": sc.summary()["wer"]} for v, sc in by_voice[name].items()}
    return result


@click.command()
@click.option("--voices", default=3, show_default=True, help="Voices per sentence (rotating over 6).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the figures here.")
@click.option("--verbose", is_flag=True, help="Print every hypothesis.")
def main(voices: int, json_out: Path | None, verbose: bool) -> None:
    """Print WER and compute per system and set."""
    import torch

    torch.set_num_threads(1)
    result = run(voices, verbose)
    for name, groups in result.items():
        click.echo(f"{name}:")
        for group, summary in groups.items():
            click.echo(f"  {group:28s} " + "  ".join(f"{k}={v}" for k, v in summary.items()))
    if json_out:
        json_out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
