"""Background work yields the CPU to the sessions' steps.

A step is due every 200 ms and takes ~10 ms; the work around it (Whisper reads, topic fits, speaker embeddings,
persona rebuilds) takes 0.1-0.3 s at a time. Under load they share the cores, and a step that waits behind them
comes back late. Their threads run at a lower priority (``BACKGROUND_NICE``), so a step takes a core at once and
the reads use what is left. Two players in real time on held-out seed 2902 (2 cores): step p99 94 -> 62 ms, steps
over 50 ms 332 -> 102 of 4,941, turn latency unchanged. On Linux a thread's nice value is its own and a thread
it starts inherits it, so Whisper's own compute thread (CTranslate2 starts it when the model loads) is lowered by
loading the model on such a thread. Matrix products run on the thread that asks for them
(``single_threaded_math``): OpenBLAS's own worker thread would run a read's products at the steps' priority, and
split a step's across two busy cores.
"""

from __future__ import annotations

import contextlib
import os

# How far background threads stand below the steps: at nice 5 a busy thread weighs a third of a step thread in the
# Linux scheduler, so reads still progress at once on an idle core and steps win a contended one.
BACKGROUND_NICE = 5


def single_threaded_math() -> None:
    """The process's BLAS and torch computations on the calling thread only (an engine process: each session's
    step and each read is one thread's work; the cores are shared among sessions, not within a step)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1, user_api="blas")


def background_thread() -> None:
    """Lower the calling thread's priority (a ``ThreadPoolExecutor`` initializer). Where the system has no
    per-thread nice value, or refuses, nothing changes."""
    with contextlib.suppress(AttributeError, OSError):
        os.nice(BACKGROUND_NICE)
