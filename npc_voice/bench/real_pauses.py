"""Real people's pauses: does the NPC cut into a person who is only pausing, and does it answer when they end?

The dev cases are synthetic voices; people pause differently (breaths, hesitations, clause breaks).
``../shared/eval/real/read_speech`` holds 12 read sentences (LibriSpeech) with natural pauses inside
them and nothing after: every pause is a hold. Each is played to a fresh session (the default floor
policy, the blacksmith, simulated clock so the machine's load does not matter) followed by 3 s of
silence, and we count

- **takeovers**: the NPC starting to speak while the reader still has speech to come (more than
  0.3 s before the end of their last word), i.e. in one of their pauses;
- **answered**: the NPC answering in the 3 s after the reader stopped (a person finishing a sentence
  expects an answer, even a "say that again"), and how long after the end it started;
- **pauses**: the silences of 0.2 s or more inside each sentence (from the VAD), so the takeover count has
  a denominator.

``python -m npc_voice.bench.real_pauses`` prints one line per sentence and the totals.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from npc_voice import events as ev
from npc_voice.audio.devices import read_wav
from npc_voice.audio.format import CHUNK_SAMPLES, CHUNK_SECONDS, SAMPLE_RATE, silence
from npc_voice.data import shared_eval_dir
from npc_voice.features.vad import FRAME_SECONDS, VoiceActivity

READ_SPEECH = shared_eval_dir() / "real" / "read_speech"
TAIL_S = 3.0
MIN_PAUSE_S = 0.2


def speech_extent(audio: np.ndarray) -> tuple[float, float, list[tuple[float, float]]]:
    """First and last speech (s) by the VAD, and the pauses of MIN_PAUSE_S or more between them."""
    vad = VoiceActivity()
    probs = np.concatenate([vad.process(c) for c in audio[: len(audio) // CHUNK_SAMPLES * CHUNK_SAMPLES]
                            .reshape(-1, CHUNK_SAMPLES)])
    voiced = np.flatnonzero(probs >= 0.5)
    if voiced.size == 0:
        return 0.0, 0.0, []
    pauses = []
    for a, b in zip(voiced, voiced[1:], strict=False):
        if (b - a - 1) * FRAME_SECONDS >= MIN_PAUSE_S:
            pauses.append((round((a + 1) * FRAME_SECONDS, 2), round(b * FRAME_SECONDS, 2)))
    return voiced[0] * FRAME_SECONDS, (voiced[-1] + 1) * FRAME_SECONDS, pauses


def run(folder: Path, persona: str = "blacksmith") -> list[dict]:
    import torch

    from npc_voice.engine.resources import EngineResources
    from npc_voice.engine.session import Session

    torch.set_num_threads(1)
    res = EngineResources()
    out = []
    try:
        for path in sorted(folder.glob("*.wav")):
            audio = read_wav(path)
            start, end, pauses = speech_extent(audio)
            audio = np.concatenate([audio, np.zeros(int(TAIL_S * SAMPLE_RATE), np.int16)])
            audio = np.pad(audio, (0, -len(audio) % CHUNK_SAMPLES))
            session = Session(res, persona, path.stem, seed=1, simulated_clock=True)
            played, starts = silence(), []
            for k, chunk in enumerate(audio.reshape(-1, CHUNK_SAMPLES)):
                result = session.step(chunk, played)
                played = result.pcm
                starts += [(k + 1) * CHUNK_SECONDS for e in result.events if isinstance(e, ev.SpeechStart)]
            session.close()
            inside = [t for t in starts if t < end - 0.3]
            after = [t for t in starts if t >= end - 0.3]
            out.append({
                "file": path.name, "speech_s": round(end - start, 2), "pauses": len(pauses),
                "takeovers": len(inside), "answered": bool(after),
                "latency_s": round(after[0] - end, 2) if after else None,
            })
    finally:
        res.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=READ_SPEECH)
    ap.add_argument("--persona", default="blacksmith")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows = run(args.folder, args.persona)
    for r in rows:
        print(f"{r['file']:24} speech {r['speech_s']:5.2f} s  pauses {r['pauses']:2}  takeovers {r['takeovers']}  "
              f"answered {'yes' if r['answered'] else 'no '}  latency {r['latency_s']}")
    pauses = sum(r["pauses"] for r in rows)
    took = sum(r["takeovers"] for r in rows)
    lat = [r["latency_s"] for r in rows if r["latency_s"] is not None]
    print(f"sentences {len(rows)}; pauses inside them {pauses}; takeovers {took} "
          f"({took / max(pauses, 1):.3f} per pause); answered {sum(r['answered'] for r in rows)}/{len(rows)}; "
          f"latency median {np.median(lat) if lat else float('nan'):.2f} s (end of speech to the step that "
          f"starts the answer; the player hears it up to one chunk plus the jitter buffer later)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
