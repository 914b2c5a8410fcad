"""Echo cancelling and voice activity, measured on synthetic echo of espeak-ng speech and a real call.

Run: ``.venv/bin/python -m npc_voice.bench.echo_vad``. Prints ERLE per delay/gain/room, how well the
player's voice survives double talk, what silero VAD says on residual echo versus the player over
echo, VAD frame accuracy on ``shared/eval/real/phone_call`` against its RTTM, and per-chunk costs.
The signal helpers here are also what ``tests/test_echo.py`` and ``tests/test_vad.py`` use.
"""

import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.io.wavfile
import soxr

from npc_voice.audio.echo import EchoCanceller
from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE, to_int16
from npc_voice.data import shared_eval_dir
from npc_voice.features.vad import FRAME_SAMPLES, VoiceActivity

NPC_LINE = (
    "Greetings traveller. The road to the northern keep has been dangerous since the bandits took the "
    "old mill. If you seek the blacksmith, he left for the village at dawn, and he will not be back "
    "before the harvest festival. Mind the wolves on the ridge, they hunt at dusk."
)
PLAYER_LINE = (
    "Wait, wait, stop. I need to ask you about the blacksmith first. Where did he go, and when is he back?"
)
MIC_NOISE_DBFS = -75.0
PHONE_CALL = shared_eval_dir() / "real" / "phone_call"


def espeak(text: str, voice: str = "en-us", pitch: int = 50) -> np.ndarray:
    """Speech from espeak-ng as float32 at 16 kHz (espeak writes 22.05 kHz)."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "say.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(wav), text], check=True)
        rate, pcm = scipy.io.wavfile.read(wav)
    return soxr.resample(pcm.astype(np.float32) / 32768.0, rate, SAMPLE_RATE).astype(np.float32)


def room_response(rng: np.random.Generator, rt60: float = 0.3, seconds: float = 0.3) -> np.ndarray:
    """Synthetic room impulse response: exponentially decaying noise (-60 dB after ``rt60``), unit energy."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    h = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
    return h / np.sqrt(np.sum(h**2))


def echo_of(played: np.ndarray, delay_ms: float, gain: float, rir: np.ndarray | None) -> np.ndarray:
    """What the mic hears of ``played``: room-coloured, delayed, at ``gain`` x the played RMS level."""
    echo = np.convolve(played, rir)[: len(played)] if rir is not None else played.astype(np.float64)
    delay = int(delay_ms * SAMPLE_RATE / 1000)
    echo = np.concatenate((np.zeros(delay), echo))[: len(played)]
    return echo * gain * np.sqrt(np.mean(played**2) / np.mean(echo**2))


def mic_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return 10 ** (MIC_NOISE_DBFS / 20) * rng.standard_normal(n)


def cancel(mic: np.ndarray, ref: np.ndarray | None, canceller: EchoCanceller) -> np.ndarray:
    """Run float signals through the canceller chunk by chunk; float output, whole chunks only."""
    chunks = len(mic) // CHUNK_SAMPLES
    mic16 = to_int16(mic)
    ref16 = to_int16(ref) if ref is not None else None
    out = []
    for c in range(chunks):
        s = slice(c * CHUNK_SAMPLES, (c + 1) * CHUNK_SAMPLES)
        out.append(canceller.process(mic16[s], ref16[s] if ref16 is not None else None))
    return np.concatenate(out).astype(np.float64) / 32768.0


def erle_db(mic: np.ndarray, out: np.ndarray) -> float:
    """Echo return loss enhancement over a segment holding only echo (and mic noise)."""
    return float(10 * np.log10(np.sum(mic**2) / max(np.sum(out**2), 1e-20)))


def sdr_db(clean: np.ndarray, est: np.ndarray) -> tuple[float, float]:
    """Signal-to-distortion of ``est`` against ``clean`` after the best scale; returns (dB, scale)."""
    scale = float(np.dot(est, clean) / np.dot(clean, clean))
    err = est - scale * clean
    return float(10 * np.log10(np.sum((scale * clean) ** 2) / np.sum(err**2))), scale


def vad_probs(audio: np.ndarray) -> np.ndarray:
    """Silero probabilities of float audio through a fresh streaming session, one per 512 samples."""
    vad = VoiceActivity()
    pcm = to_int16(audio)
    probs = [vad.process(pcm[i : i + CHUNK_SAMPLES]) for i in range(0, len(pcm), CHUNK_SAMPLES)]
    return np.concatenate(probs)


def frame_slice(start: int, stop: int) -> slice:
    """VAD frames lying wholly inside samples [start, stop)."""
    return slice(-(-start // FRAME_SAMPLES), stop // FRAME_SAMPLES)


def bench_erle(npc: np.ndarray, rng: np.random.Generator) -> None:
    print("ERLE (dB) on echo only, NPC speech 0-3 s skipped for convergence; then 3-6 s / 6 s-end")
    print(f"{'room':>5} {'delay':>5} {'gain':>4} {'3-6 s':>6} {'6 s-':>6} {'est':>5} {'bulk':>5} {'ms':>6}")
    for room in (False, True):
        for delay in (0, 60, 150, 250):
            for gain in (0.3, 0.7, 1.0):
                rir = room_response(rng) if room else None
                mic = echo_of(npc, delay, gain, rir) + mic_noise(rng, len(npc))
                canceller = EchoCanceller()
                t0 = time.perf_counter()
                out = cancel(mic, npc, canceller)
                ms = (time.perf_counter() - t0) * 1000 / (len(out) // CHUNK_SAMPLES)
                a, b = 3 * SAMPLE_RATE, 6 * SAMPLE_RATE
                print(
                    f"{'yes' if room else 'no':>5} {delay:>5} {gain:>4} {erle_db(mic[a:b], out[a:b]):6.1f} "
                    f"{erle_db(mic[b : len(out)], out[b:]):6.1f} "
                    f"{canceller.echo_return_loss_enhancement:5.1f} "
                    f"{canceller.delay_ms:5.0f} {ms:8.2f}"
                )


def bench_double_talk(npc: np.ndarray, player: np.ndarray, rng: np.random.Generator) -> None:
    print(
        "\nDouble talk: player (at -6 dB of the NPC level) from 5 s over continuous NPC echo, room RT60 0.3 s"
    )
    print(
        f"{'delay':>5} {'gain':>4} {'SDR mic':>7} {'SDR out':>7} {'scale':>5} "
        f"{'VAD echo-only raw':>17} {'VAD echo-only out':>17} {'VAD player out':>14} {'ERLE after':>10}"
    )
    start = 5 * SAMPLE_RATE
    for delay in (60, 150, 250):
        for gain in (0.3, 1.0):
            echo = echo_of(npc, delay, gain, room_response(rng))
            near = np.zeros(len(npc))
            length = min(len(player), len(npc) - start)
            near[start : start + length] = 0.5 * player[:length]
            mic = echo + near + mic_noise(rng, len(npc))
            out = cancel(mic, npc, EchoCanceller())
            stop = min(start + length, len(out))
            sdr_in, _ = sdr_db(near[start:stop], mic[start:stop])
            sdr_out, scale = sdr_db(near[start:stop], out[start:stop])
            after = erle_db(mic[stop + SAMPLE_RATE : len(out)], out[stop + SAMPLE_RATE :])
            raw_probs = vad_probs(mic[: len(out)])
            probs = vad_probs(out)
            echo_frames = frame_slice(3 * SAMPLE_RATE, start)
            player_voiced = _voiced_frames(near[: len(out)])
            print(
                f"{delay:>5} {gain:>4} {sdr_in:7.1f} {sdr_out:7.1f} {scale:5.2f} "
                f"{np.mean(raw_probs[echo_frames] > 0.5):17.2f} {np.mean(probs[echo_frames] > 0.5):17.2f} "
                f"{np.mean(probs[player_voiced] > 0.5):14.2f} {after:10.1f}"
            )
    print("  VAD columns: share of 32 ms frames with p > 0.5; echo-only 3-5 s; player = frames where the")
    print("  clean player signal is voiced (RMS > -45 dBFS). SDR of the player signal in mic / in output.")


def _voiced_frames(clean: np.ndarray) -> np.ndarray:
    frames = len(clean) // FRAME_SAMPLES
    rms = np.sqrt(np.mean(clean[: frames * FRAME_SAMPLES].reshape(frames, FRAME_SAMPLES) ** 2, axis=1))
    return rms > 10 ** (-45 / 20)


def bench_phone_call() -> None:
    wav = PHONE_CALL / "sample.wav"
    if not wav.exists():
        print(f"\nphone call: {wav} not found, skipped")
        return
    rate, pcm = scipy.io.wavfile.read(wav)
    assert rate == SAMPLE_RATE
    audio = pcm.astype(np.float64) / 32768.0
    t0 = time.perf_counter()
    probs = vad_probs(audio)
    ms = (time.perf_counter() - t0) * 1000 / (len(audio) / CHUNK_SAMPLES)
    truth = np.zeros(len(probs), bool)
    for line in (PHONE_CALL / "sample.rttm").read_text().splitlines():
        fields = line.split()
        onset, duration = float(fields[3]), float(fields[4])
        truth[frame_slice(int(onset * SAMPLE_RATE), int((onset + duration) * SAMPLE_RATE))] = True
    speech = probs > 0.5
    print(f"\nphone call VAD vs RTTM ({len(probs)} frames of 32 ms, threshold 0.5):")
    print(
        f"  frame accuracy {np.mean(speech == truth):.3f}, recall {np.mean(speech[truth]):.3f}, "
        f"false alarm {np.mean(speech[~truth]):.3f} (RTTM speech share {truth.mean():.2f}); {ms:.2f} ms/chunk"
    )


def bench_vad_cost(npc: np.ndarray) -> None:
    vad = VoiceActivity()
    pcm = to_int16(np.tile(npc, 2))
    chunks = len(pcm) // CHUNK_SAMPLES
    t0 = time.perf_counter()
    for c in range(chunks):
        vad.process(pcm[c * CHUNK_SAMPLES : (c + 1) * CHUNK_SAMPLES])
    print(f"\nVAD cost: {(time.perf_counter() - t0) * 1000 / chunks:.2f} ms per 200 ms chunk (1 thread)")


def main() -> None:
    rng = np.random.default_rng(7)
    npc = espeak(NPC_LINE, "en-us")
    player = espeak(PLAYER_LINE, "en-gb+f3", pitch=70)
    bench_erle(npc, rng)
    bench_double_talk(npc, player, rng)
    bench_phone_call()
    bench_vad_cost(npc)


if __name__ == "__main__":
    main()
