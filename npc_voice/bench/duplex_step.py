"""Step-time and memory bench for one session: the whole per-chunk step, and the duplex model alone.

    python -m npc_voice.bench.duplex_step [--minutes 5] [--memory-minutes 60] [--json out.json]

A long synthetic conversation (held-out eSpeak voices saying questions every ~8 s, the NPC's answers
heard back through the loudspeaker at 120 ms delay and gain 0.5) is fed chunk by chunk to one
``Session`` on one core, as the sidecar would. Reported: the step's compute time p50/p90/p99/max over
all steps, and separately over steps that start an answer (those may wait for the look-ahead
transcript, which is work done in the background, not in the step). Then the duplex model alone
(features + network) runs a ``--memory-minutes`` session: its per-step time and its state size and
Python heap, sampled every simulated 5 minutes, must stay flat.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import tracemalloc

import numpy as np
import torch

from npc_voice.audio.echo import EchoStats
from npc_voice.audio.format import CHUNK_SAMPLES, CHUNK_SECONDS, SAMPLE_RATE, to_int16
from npc_voice.model.duplex import DuplexModel
from npc_voice.train.dialogues import COMPLETE, HELDOUT_VOICES, espeak

CHUNKS_PER_MINUTE = int(60 / CHUNK_SECONDS)


def player_stream(n_chunks: int, seed: int = 0) -> np.ndarray:
    """Player audio: a question every 7-10 s in held-out voices, with a low noise floor."""
    rng = np.random.default_rng(seed)
    n = n_chunks * CHUNK_SAMPLES
    out = (rng.standard_normal(n) * 10 ** (-60 / 20)).astype(np.float32)
    t = 1.0
    while t * SAMPLE_RATE < n:
        voice, variant = HELDOUT_VOICES[int(rng.integers(len(HELDOUT_VOICES)))]
        x = espeak(str(rng.choice(COMPLETE)), voice, variant, 160, 50) * 0.5
        a = int(t * SAMPLE_RATE)
        out[a : a + len(x)] += x[: n - a]
        t += len(x) / SAMPLE_RATE + float(rng.uniform(7.0, 10.0))
    return out


def _pct(xs: list[float] | np.ndarray) -> dict[str, float]:
    a = np.asarray(xs)
    return {"n": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p90_ms": round(float(np.percentile(a, 90)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
            "max_ms": round(float(a.max()), 2)}


def bench_session(minutes: float) -> dict:
    from npc_voice.engine.resources import EngineResources
    from npc_voice.engine.session import Session

    torch.set_num_threads(1)
    n_chunks = int(minutes * CHUNKS_PER_MINUTE)
    user = player_stream(n_chunks)
    res = EngineResources()
    session = Session(res, "blacksmith", "bench", seed=0)
    delay = int(0.12 * SAMPLE_RATE)
    # What the loudspeaker plays, on the mic's timeline, with ``delay`` samples of silence in front so
    # the echo of sample i is out[i] (played at i - delay).
    out = np.zeros(delay + (n_chunks + 1) * CHUNK_SAMPLES, np.float32)
    all_ms, answer_ms, other_ms = [], [], []
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for c in range(n_chunks):
        a, b = c * CHUNK_SAMPLES, (c + 1) * CHUNK_SAMPLES
        mic = to_int16(user[a:b] + 0.5 * out[a:b])
        played = to_int16(out[a + delay : b + delay])
        result = session.step(mic, played)
        # The reply plays during the next chunk.
        out[b + delay : b + delay + CHUNK_SAMPLES] = result.pcm.astype(np.float32) / 32768.0
        all_ms.append(result.compute_ms)
        (answer_ms if any(e.type == "response" for e in result.events) else other_ms).append(result.compute_ms)
    session.close()
    return {"minutes": minutes, "all_steps": _pct(all_ms), "answer_steps": _pct(answer_ms) if answer_ms else None,
            "other_steps": _pct(other_ms),
            "rss_growth_mb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024, 1)}


def bench_model_memory(minutes: float) -> dict:
    """The duplex model alone over a long session: per-step time and state/heap size every 5 minutes."""
    torch.set_num_threads(1)
    from npc_voice.features.vad import VoiceActivity

    n_chunks = int(minutes * CHUNKS_PER_MINUTE)
    block = 5 * CHUNKS_PER_MINUTE
    user = to_int16(player_stream(block, seed=1))
    state = DuplexModel.shared().session()
    vad = VoiceActivity()
    quiet = EchoStats(False, -60.0, -60.0, -100.0, 0.0, 0.0)
    times = np.zeros(n_chunks)  # preallocated: the bench's own bookkeeping must not look like growth
    samples = []
    tracemalloc.start()
    for c in range(n_chunks):
        k = c % block
        chunk = user[k * CHUNK_SAMPLES : (k + 1) * CHUNK_SAMPLES]
        probs = vad.process(chunk)
        t0 = time.perf_counter()
        state.step(chunk, chunk, None, probs, quiet, False, 0.0, "")
        times[c] = (time.perf_counter() - t0) * 1000
        if (c + 1) % block == 0:
            samples.append({"minute": round((c + 1) / CHUNKS_PER_MINUTE, 1), "state_bytes": state.nbytes(),
                            "heap_kb": round(tracemalloc.get_traced_memory()[0] / 1024, 1),
                            "step_p50_ms": round(float(np.percentile(times[c + 1 - block : c + 1], 50)), 3),
                            "step_p99_ms": round(float(np.percentile(times[c + 1 - block : c + 1], 99)), 3)})
    tracemalloc.stop()
    return {"minutes": minutes, "model_step": _pct(times), "over_time": samples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--memory-minutes", type=float, default=60.0)
    ap.add_argument("--json")
    args = ap.parse_args()
    out = {"session": bench_session(args.minutes), "model": bench_model_memory(args.memory_minutes)}
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
