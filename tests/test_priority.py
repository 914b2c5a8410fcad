"""Background work yields the CPU to the sessions' steps: a Whisper read's compute runs on threads below the
priority of the thread that steps (Linux, where a thread's nice value is its own)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from npc_voice.features.asr import AsrModels
from npc_voice.priority import BACKGROUND_NICE, single_threaded_math

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values: Linux")


def threads() -> dict[str, tuple[int, int]]:
    """This process's threads: (nice value, CPU ticks so far)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        out[tid] = (int(fields[16]), int(fields[11]) + int(fields[12]))
    return out


@pytest.fixture
def engine_process():
    """``single_threaded_math`` as an engine process sets it, undone after (it is process-wide)."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    torch_threads = torch.get_num_threads()
    blas = max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=None)
    single_threaded_math()
    yield
    torch.set_num_threads(torch_threads)
    if blas is not None:
        threadpool_limits(blas, user_api="blas")


def test_a_reads_compute_runs_below_the_steps_priority(engine_process: None) -> None:
    models = AsrModels()
    try:
        step = threads()[str(os.getpid())][0]  # the main thread stands for the step thread
        before = threads()
        speech = (np.random.default_rng(0).standard_normal(3 * 16000) * 3000).astype(np.int16)
        for _ in range(4):
            models.submit_transcribe(speech).result()
        after = threads()
    finally:
        models.close()
    used = {tid: after[tid][1] - before.get(tid, (0, 0))[1] for tid in after if tid != str(os.getpid())}
    total = sum(used.values())
    assert total > 0
    low = sum(ticks for tid, ticks in used.items() if after[tid][0] >= step + BACKGROUND_NICE)
    assert low >= 0.9 * total, f"{low} of {total} ticks of the reads ran below the step's priority"
