"""Per-chunk cost of emotion for one session: ``python -m npc_voice.bench.emotion_speed``.

Plays RAVDESS clips (1 s of silence, the clip, 1 s of silence) through ``PlayerTone`` and
``NpcFeelings`` exactly as the engine would, one 200 ms chunk at a time, on one thread, and
reports per-chunk wall time (median, p95, max) for speech chunks, silent chunks and the
end-of-speech verdict, and for the verdict again with the recogniser's read of the voice
(``with_voice``; the Whisper encode itself is the turn read's and not counted) and the pooling of the
encoder states that a sure read adds (``pooled_states``). The budget is 5 ms per chunk per session.
Text sentiment is timed separately: it runs once per final transcript, not per chunk.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE, to_float
from npc_voice.features.asr import AsrModels, pooled_states
from npc_voice.features.prosody import chunks
from npc_voice.model.emotion import NpcFeelings, PlayerTone, ToneModel
from npc_voice.model.sentiment import SentimentModel
from npc_voice.train.emotion import DEFAULT_DATA, read_wav


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--clips", type=int, default=40)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = ToneModel.shared()
    paths = sorted(args.data.glob("Actor_*/*.wav"))[:: max(1, 720 // args.clips)][: args.clips]
    tone, feel = PlayerTone(model), NpcFeelings({"baseline_mood": "grumpy", "volatility": 0.5})
    pad = np.zeros(SAMPLE_RATE, dtype=np.int16)
    times: dict[str, list[float]] = {"speech": [], "silence": [], "end_of_speech": [], "with_voice": [],
                                     "pool_encoder_states": []}
    asr = AsrModels() if model.voice is not None else None
    states = np.random.default_rng(0).standard_normal((500, 384)).astype(np.float32)  # tiny.en, a 10 s window
    for path in paths:
        clip = np.concatenate([pad, read_wav(path), pad])
        heard = asr.voice(clip) if asr is not None else None
        t0 = time.perf_counter()
        pooled_states(states, clip.size)
        times["pool_encoder_states"].append(time.perf_counter() - t0)
        for part in chunks(clip):
            speech = float(np.sqrt(np.mean(to_float(part) ** 2))) > 0.003
            t0 = time.perf_counter()
            est = tone.step(part, speech)
            tone.event_for(est)
            feel.update(CHUNK_SAMPLES / SAMPLE_RATE, None, None, {}, None)
            feel.event()
            feel.voice_shift()
            times["speech" if speech else "silence"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        final = tone.end_of_speech()
        tone.event_for(final)
        feel.update(0.0, final, None, {}, None)
        times["end_of_speech"].append(time.perf_counter() - t0)
        if asr is not None:
            t0 = time.perf_counter()
            revised = tone.with_voice(heard, asr.recogniser)
            tone.event_for(revised)
            feel.update(0.0, revised, None, {}, None)
            times["with_voice"].append(time.perf_counter() - t0)
    sent = SentimentModel.shared()
    texts = [f"you are a useless fool number {i}" for i in range(50)]
    t0 = time.perf_counter()
    for text in texts:
        sent.analyse(text)
    sentiment_ms = (time.perf_counter() - t0) / len(texts) * 1000
    out = {k: {"n": len(v), "median_ms": round(float(np.median(v)) * 1000, 3),
               "p95_ms": round(float(np.percentile(v, 95)) * 1000, 3), "max_ms": round(max(v) * 1000, 3)}
           for k, v in times.items() if v}
    out["sentiment_per_new_transcript_ms"] = round(sentiment_ms, 2)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
