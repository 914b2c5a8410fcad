"""Acoustic echo cancelling: remove the NPC's own voice from the player's microphone.

The client sends, with each 200 ms mic chunk, the audio it played during that interval (sample-aligned
by a file device; by a live one to within its stream times' error, a few ms, moved after an xrun), so
the echo is a causal, filtered copy of that reference: delay 0-250 ms, gain up to 1, plus room colouring.
A partitioned-block frequency-domain NLMS filter (MDF, as in Speex) models that path. Its step size
follows Valin's optimal-rate rule (residual echo / error power per bin, with the residual echo estimated
from a leakage factor), so the filter keeps learning while only echo is present and nearly freezes while
the player talks over the NPC (double talk) instead of diverging. The bulk delay is found first by
GCC-PHAT, so the filter's partitions are spent on the room response. There is no non-linear residual-echo
suppressor: it would duck the player in double talk, which is the case this canceller is for.

Two things the adaptive filter is too slow for, each taken only on evidence from the chunk itself (the
path it finds must leave a quarter of the residual echo, and at most half the mic, so the player's voice
never passes for a path): an answer's first second, before the filter has learnt anything, is fitted by
least squares (the path's first 32 ms, on one chunk); and a reference that jumps against its echo (the
live device after an xrun) moves the learnt path with it, sample-exact, instead of learning it again.

Why not a PyPI binding: WebRTC AEC3 (pywebrtc-audio 0.2.0, a self-contained wheel) removes more
echo (25-58 dB), but its suppressor ducks the player by 4-12 dB during double talk, leaving the
player at about 0 dB SDR, and it exposes no echo statistics.
"""

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE

_EPS = 1e-10
# Far-end block power (float, full scale 1.0) below which the reference counts as silent (-70 dBFS).
_REF_SILENT = 1e-7
_STEP_INITIAL = 0.8  # NLMS step before convergence
_STEP_SCALE = 2.0  # multiplier on Valin's optimal rate (the leakage estimate is conservative)
_LEAK_CONVERGED = 0.1  # leave the fixed-step start once the residual echo is 10 dB down...
_INITIAL_BLOCKS = 250  # ...or after 5 s of far-end audio (blocks of 20 ms), whichever comes first
# The learnt echo path is moved to a new lag only if that leaves at most a quarter of the residual echo (6 dB
# less) on the chunk: a reference that jumped by 3-19 ms left 0-1 dB of ERLE until the filter re-learnt.
_MOVED_RESIDUAL = 0.25
# A chunk the filter took less than 10 dB off while it converges (3 dB once converged: the learnt path is lost, and
# a fit would throw away the room's tail it learnt) is fitted by least squares on its own...
_FIT_BELOW = 0.1
_FIT_LOST = 0.5
_FIT_BEFORE = 32  # ...from 2 ms before the echo's peak (a direct path ahead of the strongest reflection)
_FIT_RIDGE = 1e-3  # ridge on the reference's autocorrelation: speech alone leaves it nearly singular


@dataclass(frozen=True)
class EchoStats:
    """What the last processed chunk looked like, for telling "only echo" from "player talking".

    Levels are dBFS over the chunk. ``residual_excess_db`` compares the output with what it should
    hold if the mic had only echo: the residual echo the filter expects to leave (predicted echo
    level minus ERLE) plus the output's noise floor. Near 0 dB (a few dB) for echo only, well
    above (>10 dB) when something else, usually the player, is in the output. Meaningful only while
    ``ref_active``; ``erle_db`` ignores stationary noise, so it can exceed the measured mic/out ratio.
    """

    ref_active: bool
    mic_db: float
    out_db: float
    echo_db: float
    erle_db: float
    residual_excess_db: float


def _db(power: float) -> float:
    return float(10.0 * np.log10(power + _EPS))


class EchoCanceller:
    """One session's echo canceller: bulk-delay tracking plus an MDF adaptive filter.

    ``max_delay_ms`` bounds the bulk delay searched by GCC-PHAT; ``filter_ms`` is the adaptive filter's
    span after that delay (room response). Output is sample-aligned with the mic (no added latency).
    """

    def __init__(
        self,
        filter_ms: float = 320.0,
        block: int = 320,
        max_delay_ms: float = 300.0,
        realign_ms: float = 80.0,
        fit_ms: float = 32.0,
    ) -> None:
        if CHUNK_SAMPLES % block:
            raise ValueError(f"block {block} must divide the chunk size {CHUNK_SAMPLES}")
        self.block = block
        self.partitions = max(1, int(np.ceil(filter_ms * SAMPLE_RATE / 1000.0 / block)))
        self.max_lag = int(max_delay_ms * SAMPLE_RATE / 1000.0)
        self.realign = int(realign_ms * SAMPLE_RATE / 1000.0)
        self.fit_taps = int(fit_ms * SAMPLE_RATE / 1000.0)
        self._gcc_size = 1 << int(np.ceil(np.log2(self.max_lag + 2 * CHUNK_SAMPLES)))
        self.reset()

    def reset(self) -> None:
        """Forget the echo path and all history (a new conversation, or a different device)."""
        n, k = self.block, self.partitions
        bins = n + 1
        self._history = np.zeros(CHUNK_SAMPLES + self.max_lag + (k + 1) * n)  # reference, newest last
        self._delay = 0  # bulk delay (samples) applied to the reference before the filter
        self._cross = np.zeros(self._gcc_size // 2 + 1, np.complex128)  # smoothed mic x ref cross-spectrum
        self._weights = np.zeros((k, bins), np.complex128)
        self._ref_spectra = np.zeros((k, bins), np.complex128)
        self._ref_power = np.zeros(k)  # far-end power of each partition's newest block, to skip silence
        self._norm = np.zeros(bins)
        self._err_smooth = np.zeros(bins)
        self._echo_smooth = np.zeros(bins)
        self._p_ey = 0.0
        self._p_yy = 0.0
        self._leak = 0.5
        self._adapted_blocks = 0
        self._erle_db = 0.0
        self._floor = 0.0
        self._stats = EchoStats(False, -100.0, -100.0, -100.0, 0.0, 0.0)

    @property
    def echo_return_loss_enhancement(self) -> float:
        """Current ERLE estimate in dB (from the filter's leakage factor; 0 before convergence)."""
        return self._erle_db

    @property
    def stats(self) -> EchoStats:
        """Statistics of the last processed chunk."""
        return self._stats

    @property
    def converged(self) -> bool:
        """True once the filter left its fixed-step start (ERLE >= 10 dB, or 5 s of far-end audio)."""
        return self._adapted_blocks >= _INITIAL_BLOCKS

    def process(self, mic: np.ndarray, ref: np.ndarray | None) -> np.ndarray:
        """Cancel the echo of ``ref`` (what was played during this chunk) from ``mic``; int16 in, int16 out.

        ``ref=None`` means nothing was played: once the echo tail of earlier reference has left the
        filter the chunk passes through unchanged (output == mic) and the filter state is kept.
        """
        if mic.shape != (CHUNK_SAMPLES,):
            raise ValueError(f"mic chunk must have {CHUNK_SAMPLES} samples, got {mic.shape}")
        if ref is not None and ref.shape != mic.shape:
            raise ValueError(f"ref chunk must match the mic chunk, got {ref.shape}")
        d = mic.astype(np.float64) / 32768.0
        if ref is None:
            if not self._ref_power.any():
                mic_db = _db(float(np.mean(d * d)))
                self._stats = EchoStats(False, mic_db, mic_db, -100.0, self._erle_db, 0.0)
                return mic.copy()
            x = np.zeros(CHUNK_SAMPLES)
        else:
            x = ref.astype(np.float64) / 32768.0
        self._history[:-CHUNK_SAMPLES] = self._history[CHUNK_SAMPLES:]
        self._history[-CHUNK_SAMPLES:] = x
        self._track_delay(d)
        n = self.block
        out = np.empty(CHUNK_SAMPLES)
        echo_energy = 0.0
        for start in range(0, CHUNK_SAMPLES, n):
            out[start : start + n], y = self._block(d[start : start + n], start)
            echo_energy += float(np.dot(y, y))
        out_energy = float(np.dot(out, out))
        mic_energy = float(np.dot(d, d))
        ref_active = bool(self._ref_power.any())
        # Noise floor of the output: minimum statistics, rising 0.4 dB per chunk so it follows a change.
        self._floor = min(out_energy, self._floor * 1.1) if self._floor > 0.0 else out_energy
        expected_residual = echo_energy * self._leak + self._floor
        self._stats = EchoStats(
            ref_active=ref_active,
            mic_db=_db(mic_energy / CHUNK_SAMPLES),
            out_db=_db(out_energy / CHUNK_SAMPLES),
            echo_db=_db(echo_energy / CHUNK_SAMPLES),
            erle_db=self._erle_db,
            residual_excess_db=_db(out_energy / CHUNK_SAMPLES) - _db(expected_residual / CHUNK_SAMPLES)
            if ref_active
            else 0.0,
        )
        return np.clip(np.round(out * 32768.0), -32768, 32767).astype(np.int16)

    @property
    def delay_ms(self) -> float:
        """Bulk echo delay currently compensated before the adaptive filter."""
        return self._delay * 1000.0 / SAMPLE_RATE

    def _track_delay(self, d: np.ndarray) -> None:
        """Follow the echo path between chunks: where it is (GCC-PHAT), whether the learnt one moved, whether a
        fit on this chunk alone beats it, and where the filter's span sits.

        Placing the filter's span on the delay (whole blocks, a block of hysteresis) keeps the learnt response
        where it is: the filter then spends its partitions on the room response rather than on the empty
        delay, which converges several times faster on speech than one long filter from lag 0.
        """
        n, size = self.block, self._gcc_size
        ref_window = self._history[-(CHUNK_SAMPLES + self.max_lag) :]
        current = ref_window[-CHUNK_SAMPLES:]
        floor = _REF_SILENT * CHUNK_SAMPLES
        if float(np.dot(current, current)) < floor or float(np.dot(d, d)) < floor:
            return
        left = self._realign(d)
        kept = float(np.dot(left, left))
        cross = np.conj(np.fft.rfft(d, size)) * np.fft.rfft(ref_window, size)
        self._cross = 0.7 * self._cross + 0.3 * cross
        lag = self._gcc_lag(self._cross)
        now = self._gcc_lag(cross)
        if now is not None and kept > (_FIT_LOST if self.converged else _FIT_BELOW) * float(np.dot(d, d)):
            self._fit(d, left, now)
        if lag is None:
            return
        # Start the filter 40-60 ms before the main peak: early reflections or a direct path weaker
        # than the first reflection must stay causal. Move later only by more than a block (jitter).
        delay = max(0, lag - 5 * n // 2) // n * n
        if delay < self._delay or delay > self._delay + n:
            self._place(delay, self._delay - delay)

    def _gcc_lag(self, cross: np.ndarray) -> int | None:
        """The echo's lag (samples) at the peak of the PHAT-weighted cross-correlation, if it stands out."""
        corr = np.fft.irfft(cross / (np.abs(cross) + _EPS), self._gcc_size)[: self.max_lag + 1]
        peak = int(np.argmax(corr))
        if corr[peak] < 6.0 * float(np.std(corr)):
            return None
        return self.max_lag - peak

    def _realign(self, d: np.ndarray) -> np.ndarray:
        """Move the learnt echo path if the echo now arrives earlier or later than it says; returns what the
        (moved) learnt path leaves of this chunk's microphone.

        A reference that jumps against the echo (the live device after an xrun: a few ms, docs/perf/
        mouth_to_ear.md) moves the whole response: the filter then removed nothing (0-1 dB) until it had
        re-learnt it, 3-4 s each time, with the NPC hearing itself meanwhile. The learnt path's echo of this
        chunk's reference, slid up to ``realign_ms`` either way, says where the echo went: the path is moved
        there, sample-exact, only if that leaves at most ``_MOVED_RESIDUAL`` of the residual and removes at least
        half of the mic, so a player talking over the NPC (or a path that changed shape) never moves it.
        """
        n = self.block
        mic = float(np.dot(d, d))
        taps = np.fft.irfft(self._weights, 2 * n, axis=1)[:, :n].reshape(-1)
        if not taps.any():
            return d
        later, earlier = min(self.realign, self.max_lag - self._delay), self.realign
        # echo[u]: the learnt path's echo of the reference; moved m samples later, the chunk's echo would be
        # echo[later - m : later - m + CHUNK_SAMPLES]. Moved earlier than the bulk delay, the response's first
        # taps fall off the filter: they are the 40-60 ms kept before the main peak, nearly zero (and they
        # would need reference not yet played: zeros here).
        end = len(self._history) - self._delay + earlier
        x = self._history[end - CHUNK_SAMPLES - earlier - later - len(taps) + 1 : end]
        x = np.concatenate((x, np.zeros(max(0, earlier - self._delay))))
        size = 1 << int(np.ceil(np.log2(len(x))))
        echo = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(taps, size), size)[len(taps) - 1 : len(x)]
        size = 1 << int(np.ceil(np.log2(len(echo) + CHUNK_SAMPLES)))
        corr = np.fft.irfft(np.fft.rfft(echo, size) * np.conj(np.fft.rfft(d, size)), size)[: earlier + later + 1]
        energy = np.concatenate(([0.0], np.cumsum(echo * echo)))
        window = energy[CHUNK_SAMPLES : CHUNK_SAMPLES + earlier + later + 1] - energy[: earlier + later + 1]
        residual = mic - 2.0 * corr + window  # at index later - m: the residual with the path moved m later
        best = int(np.argmin(residual))
        if best == later or residual[best] > _MOVED_RESIDUAL * residual[later] or residual[best] > 0.5 * mic:
            best = later
        else:
            delay = self._delay + later - best
            self._place(max(0, delay), min(0, delay))
        return d - echo[best : best + CHUNK_SAMPLES]

    def _fit(self, d: np.ndarray, left: np.ndarray, lag: int) -> None:
        """Least squares on this chunk alone: the ``fit_ms`` of echo path from just before ``lag`` that best explain
        what the learnt path ``left`` of the microphone ``d``, added to it if that leaves at most
        ``_MOVED_RESIDUAL`` of the residual and at most half the mic.

        The adaptive filter needs seconds of the NPC's speech to learn the path (it removed 0-4 dB over an
        answer's first second: the NPC heard its own first words); a fit of the path's first 32 ms on one chunk
        removes most of a laptop's echo at once, and the adaptive filter refines it and learns the room's tail.
        The player talking, or noise, is what no filter of the NPC's voice fits: it never passes for a path.
        """
        n, k, taps = self.block, self.partitions, self.fit_taps
        start = max(0, lag - _FIT_BEFORE)
        end = len(self._history) - start
        x = self._history[end - CHUNK_SAMPLES - taps + 1 : end]  # the reference x[j + taps - 1 - i] at tap i
        size = 1 << int(np.ceil(np.log2(len(x) + CHUNK_SAMPLES)))
        spectrum = np.fft.rfft(x, size)
        auto = np.fft.irfft(spectrum * np.conj(spectrum), size)[:taps]
        if auto[0] <= _EPS:
            return
        cross = np.fft.irfft(spectrum * np.conj(np.fft.rfft(left, size)), size)[:taps][::-1]
        auto[0] *= 1.0 + _FIT_RIDGE
        path = scipy.linalg.solve_toeplitz(auto, cross)
        residual = left - np.convolve(x, path, "valid")
        fit = float(np.dot(residual, residual))
        if fit > _MOVED_RESIDUAL * float(np.dot(left, left)) or fit > 0.5 * float(np.dot(d, d)):
            return
        if start < self._delay or start + taps > self._delay + k * n:  # the fit's span is outside the filter's
            delay = max(0, lag - 5 * n // 2) // n * n
            self._place(delay, self._delay - delay)
        response = np.fft.irfft(self._weights, 2 * n, axis=1)[:, :n].reshape(-1)
        first = start - self._delay
        response[first : first + taps] += path[: len(response) - first]
        self._weights = np.fft.rfft(np.concatenate((response.reshape(k, n), np.zeros((k, n))), axis=1), axis=1)

    def _shifted_weights(self, shift: int) -> np.ndarray:
        """The filter's weights with its impulse response ``shift`` samples later (earlier if negative)."""
        n, k = self.block, self.partitions
        taps = np.fft.irfft(self._weights, 2 * n, axis=1)[:, :n].reshape(-1)
        moved = np.zeros_like(taps)
        if 0 <= shift < len(taps):
            moved[shift:] = taps[: len(taps) - shift]
        elif -len(taps) < shift < 0:
            moved[:shift] = taps[-shift:]
        padded = np.concatenate((moved.reshape(k, n), np.zeros((k, n))), axis=1)
        return np.fft.rfft(padded, axis=1)

    def _place(self, delay: int, shift: int) -> None:
        """Put the filter's start at bulk ``delay`` with its response ``shift`` samples later (``shift`` = old delay
        minus new keeps the learnt echo path where it is), and refill the reference partitions for it."""
        n, k = self.block, self.partitions
        if shift:
            self._weights = self._shifted_weights(shift)
        self._delay = delay
        end = len(self._history) - CHUNK_SAMPLES - delay
        for p in range(k):
            block = self._history[end - (p + 2) * n : end - p * n]
            self._ref_spectra[p] = np.fft.rfft(block)
            power = float(np.dot(block[n:], block[n:])) / n
            self._ref_power[p] = power if power > _REF_SILENT else 0.0

    def _block(self, d: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
        """One overlap-save block: filter, then update. Returns (error = output, predicted echo)."""
        n = self.block
        end = len(self._history) - CHUNK_SAMPLES + start + n - self._delay
        frame = self._history[end - 2 * n : end]
        x_power = float(np.dot(frame[n:], frame[n:])) / n
        self._ref_spectra[1:] = self._ref_spectra[:-1]
        self._ref_spectra[0] = np.fft.rfft(frame)
        self._ref_power[1:] = self._ref_power[:-1]
        self._ref_power[0] = x_power if x_power > _REF_SILENT else 0.0

        y = np.fft.irfft(np.einsum("kb,kb->b", self._weights, self._ref_spectra), 2 * n)[n:]
        e = d - y
        # Louder out than in means the filter is adding a copy of the NPC's voice instead of removing
        # it (it adapted on the player, e.g. with a headset and no echo at all): the output is never
        # louder than the microphone, so that copy cannot reach the VAD as "the player talking".
        out = d.copy() if float(np.dot(e, e)) > float(np.dot(d, d)) + n * _REF_SILENT else e
        zeros = np.zeros(n)
        err_spec = np.fft.rfft(np.concatenate((zeros, e)))
        err_pow = err_spec.real**2 + err_spec.imag**2
        echo_spec = np.fft.rfft(np.concatenate((zeros, y)))
        echo_pow = echo_spec.real**2 + echo_spec.imag**2

        if self._ref_power.any():
            self._update(err_spec, err_pow, echo_pow)
        return out, y

    def _update(self, err_spec: np.ndarray, err_pow: np.ndarray, echo_pow: np.ndarray) -> None:
        """Leakage estimate, optimal step per bin, constrained gradient step on all partitions."""
        n, k = self.block, self.partitions
        spectra = self._ref_spectra
        self._norm = np.einsum("kb,kb->b", spectra.real, spectra.real) + np.einsum(
            "kb,kb->b", spectra.imag, spectra.imag
        )

        # Leakage: how much of the predicted echo's variation shows up in the error. Deviations from
        # slow averages cancel stationary noise and the uncorrelated player voice.
        self._err_smooth += 0.05 * (err_pow - self._err_smooth)
        self._echo_smooth += 0.05 * (echo_pow - self._echo_smooth)
        de = err_pow - self._err_smooth
        dy = echo_pow - self._echo_smooth
        self._p_ey = 0.95 * self._p_ey + 0.05 * float(np.dot(de, dy))
        self._p_yy = 0.95 * self._p_yy + 0.05 * float(np.dot(dy, dy))
        if self._p_yy > _EPS:
            self._leak = min(max(self._p_ey / self._p_yy, 1e-4), 1.0)

        if self.converged:
            # Optimal rate: the share of the error that is residual echo; the player's voice and
            # noise in the error shrink it, which is what keeps the filter from diverging in double talk.
            residual = np.minimum(self._leak * echo_pow, 0.5 * err_pow)
            err_total = float(err_pow.sum()) + _EPS
            rer = min(max(3.0 * self._leak * float(echo_pow.sum()) / err_total, 1e-3), 0.5)
            step = _STEP_SCALE * (0.7 * residual + 0.3 * rer * err_pow) / (err_pow + _EPS)
            self._erle_db = float(-10.0 * np.log10(self._leak))
        else:
            # Before the leakage estimate means anything: a fixed large step to get near the echo path.
            step = np.full_like(err_pow, _STEP_INITIAL)
            self._adapted_blocks += 1
            if self._adapted_blocks >= k and self._leak < _LEAK_CONVERGED:
                self._adapted_blocks = _INITIAL_BLOCKS

        gain = step / (self._norm + 2 * n * k * _REF_SILENT)
        grad = np.conj(self._ref_spectra) * (err_spec * gain)
        active = self._ref_power > 0.0
        g = np.fft.irfft(grad[active], 2 * n, axis=1)
        g[:, n:] = 0.0
        self._weights[active] += np.fft.rfft(g, axis=1)
