"""TTS speed: how fast eSpeak NG (through `npc_voice.speech.tts`) turns an NPC's line into 16 kHz audio.

Reports the one-off engine start, synthesis time and real-time factor (compute / audio length) per
sentence, and the latency that matters for turn-taking: time until the first sentence of a 60-word
line is ready with `Synthesizer.sentences`, against synthesising the whole line at once. Also the
throughput when two threads (two NPCs) share the one engine.

Run: .venv/bin/python -m npc_voice.bench.tts_speed [--repeats 5] [--voice en-us+m3]
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import click

from npc_voice.speech.tts import Synthesizer, VoiceSettings, split_sentences

# 60 words in five sentences: a blacksmith answering at length.
LINE_60 = (
    "Aye, I can mend that blade, but not today. The forge has been cold since the storm cracked the "
    "chimney, and the ore cart from the northern mines is three days late. Come back on market day with "
    "twenty silver. If you want it sharper than before, bring me good oil. I will not rush honest work."
)
# The same 60 words as one run-on sentence: the worst case for time to first audio.
LINE_60_ONE_SENTENCE = LINE_60.replace(". ", ", ").replace("Aye, I", "Aye I")

_T = TypeVar("_T")


def _timed(fn: Callable[[], _T]) -> tuple[float, _T]:
    """(wall seconds, result) of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _first_and_total(synth: Synthesizer, text: str, voice: VoiceSettings) -> tuple[float, float, float]:
    """(seconds to the first utterance, seconds to all of them, seconds of audio) for `sentences`."""
    start = time.perf_counter()
    first = None
    audio = 0.0
    for utterance in synth.sentences(text, voice):
        if first is None:
            first = time.perf_counter() - start
        audio += utterance.duration
    return first or 0.0, time.perf_counter() - start, audio


@click.command()
@click.option("--repeats", default=5, show_default=True, help="Runs per measurement (the median is shown).")
@click.option("--voice", default="en-us+m3", show_default=True, help="eSpeak voice, e.g. en-us, en+f3.")
def main(repeats: int, voice: str) -> None:
    """Measure synthesis speed on this machine."""
    settings = VoiceSettings(voice=voice)
    init_s, synth = _timed(Synthesizer)
    print(f"engine start (load library, voices): {init_s * 1000:.1f} ms")
    synth.synthesize("Warm up.", settings)

    print(f"\nper sentence ({voice}, rate {settings.rate} wpm), median of {repeats}:")
    print(f"{'words':>5} {'audio s':>8} {'synth ms':>9} {'RTF':>7}  sentence")
    rtfs = []
    for sentence in split_sentences(LINE_60):
        runs = [_timed(lambda s=sentence: synth.synthesize(s, settings)) for _ in range(repeats)]
        seconds = statistics.median(t for t, _ in runs)
        audio = runs[0][1].duration
        rtfs.append(seconds / audio)
        print(f"{len(sentence.split()):>5} {audio:>8.2f} {seconds * 1000:>9.1f} {seconds / audio:>7.4f}"
              f"  {sentence[:50]}")
    print(f"median RTF per sentence: {statistics.median(rtfs):.4f}")

    print(f"\n60-word line, median of {repeats}:")
    for label, text in (("5 sentences", LINE_60), ("1 sentence", LINE_60_ONE_SENTENCE)):
        whole = [_timed(lambda t=text: synth.synthesize(t, settings)) for _ in range(repeats)]
        streamed = [_first_and_total(synth, text, settings) for _ in range(repeats)]
        whole_s = statistics.median(t for t, _ in whole)
        first_s = statistics.median(f for f, _, _ in streamed)
        total_s = statistics.median(t for _, t, _ in streamed)
        audio_s = whole[0][1].duration
        print(f"  {label}: audio {audio_s:.2f} s | synthesize() {whole_s * 1000:.1f} ms"
              f" (RTF {whole_s / audio_s:.4f})"
              f" | sentences(): first ready {first_s * 1000:.1f} ms, all {total_s * 1000:.1f} ms")

    print("\ntwo threads sharing the engine (two NPCs talking at once):")
    jobs = 2 * repeats

    def worker() -> None:
        for _ in range(jobs):
            synth.synthesize(LINE_60, settings)

    solo_s, _ = _timed(worker)
    threads = [threading.Thread(target=worker) for _ in range(2)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    duo_s = time.perf_counter() - start
    print(f"  {jobs} lines alone: {solo_s:.2f} s; {jobs} lines in each of 2 threads: {duo_s:.2f} s"
          f" (the lock serialises eSpeak, so about 2x is expected)")


if __name__ == "__main__":
    main()
