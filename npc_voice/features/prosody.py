"""Streaming prosody: how the player's voice sounds, one 200 ms chunk at a time.

Each chunk is cut into 40 ms frames every 10 ms (the tail of the previous chunk is kept, so
frames run on seamlessly across chunks). Per frame, numpy only: energy, F0 and periodicity from
YIN (de Cheveigne & Kawahara 2002, FFT form), a 26-band log-mel spectrum, MFCC 1-12, spectral
centroid, alpha ratio, Hammarberg index, high-band ratio and spectral flux. Everything is
vectorised over a chunk's 20 frames, which keeps a chunk around a millisecond.

``ProsodyTracker`` keeps the frames of the current stretch of speech (the engine says which
chunks are speech) and turns them into one utterance-level vector (``FEATURE_NAMES``): level,
pitch contour statistics in semitones, voicing, jitter/shimmer-like micro-variation, a syllable
rate and spectral shape. It also keeps the player's own baseline over the session (the mean of
their finished utterances), because absolute pitch and loudness say more about the speaker and
the microphone than about the emotion. Training runs the very same tracker over whole clips, so
what the model learned from is exactly what it sees at run time.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks, lfilter

from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE, to_float

FRAME = 640  # 40 ms: two periods of a 50 Hz voice
HOP = 160  # 10 ms
NFFT = 1024  # >= FRAME + max lag, so the FFT autocorrelation does not wrap
F0_MIN, F0_MAX = 60.0, 600.0
YIN_THRESHOLD = 0.15  # de Cheveigne & Kawahara's absolute threshold: the first dip below it wins
VOICING_THRESHOLD = 0.4  # a frame whose best dip stays above this is unvoiced
OCTAVE_FOLD_ST = 9.0  # a voiced frame this far from the utterance median is taken as an octave error
N_MELS = 26
N_MFCC = 12
ACTIVE_RANGE_DB = 35.0  # frames this far below the utterance's loudest are pauses, not speech
ABS_FLOOR_DB = -65.0
MIN_ACTIVE_FRAMES = 30  # 0.3 s of sounding speech before an utterance vector means anything
MIN_VOICED_FRAMES = 10
MAX_UTTERANCE_FRAMES = 1500  # keep the last 15 s: long monologues should not grow without bound

_LAG_MIN = int(SAMPLE_RATE / F0_MAX)
_LAG_MAX = int(np.ceil(SAMPLE_RATE / F0_MIN))

# Per-frame descriptor columns.
F_DB, F_VOICED, F_ST, F_PER, F_CENT, F_ALPHA, F_HAMM, F_HF, F_FLUX = range(9)
F_MFCC = 9
N_FRAME_COLS = F_MFCC + N_MFCC

FEATURE_NAMES: tuple[str, ...] = (
    "loud_p90_db", "loud_std_db", "loud_range_db", "shimmer_db",
    "f0_mean_st", "f0_std_st", "f0_p10_st", "f0_p90_st", "f0_range_st", "f0_delta_st", "jitter_st",
    "f0_slope_st_s",
    "voiced_ratio", "periodicity_mean", "periodicity_std", "syllable_rate",
    "centroid_mean_khz", "centroid_std_khz", "alpha_mean_db", "alpha_std_db", "hammarberg_db",
    "hf_ratio_db", "flux_mean",
    *(f"mfcc{i}_mean" for i in range(1, N_MFCC + 1)),
    *(f"mfcc{i}_std" for i in range(1, N_MFCC + 1)),
)
# The features a speaker's own baseline is subtracted from (speaker- and microphone-bound).
BASELINE_NAMES: tuple[str, ...] = ("loud_p90_db", "f0_mean_st", "f0_range_st", "centroid_mean_khz",
                                   "alpha_mean_db", "syllable_rate")
BASELINE_INDEX = np.array([FEATURE_NAMES.index(n) for n in BASELINE_NAMES])


def _mel_filterbank() -> np.ndarray:
    """Triangular mel filters (HTK mel scale), ``(NFFT//2+1, N_MELS)``."""
    def mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    edges_mel = np.linspace(mel(60.0), mel(7600.0), N_MELS + 2)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    freqs = np.fft.rfftfreq(NFFT, 1.0 / SAMPLE_RATE)
    fb = np.zeros((freqs.size, N_MELS), dtype=np.float32)
    for m in range(N_MELS):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - lo) / (mid - lo)
        down = (hi - freqs) / (hi - mid)
        fb[:, m] = np.clip(np.minimum(up, down), 0.0, None)
    return fb


def _dct_matrix() -> np.ndarray:
    """Orthonormal DCT-II rows 1..N_MFCC (c0 is overall level, which the microphone sets)."""
    n = np.arange(N_MELS)
    k = np.arange(1, N_MFCC + 1)[:, None]
    return (np.sqrt(2.0 / N_MELS) * np.cos(np.pi * k * (2 * n + 1) / (2 * N_MELS))).T.astype(np.float32)


_WINDOW = np.hanning(FRAME).astype(np.float32)
_YIN_W = FRAME - _LAG_MAX - 2  # integration window: every lag still has a full window of samples
_MEL_FB = _mel_filterbank()
_DCT = _dct_matrix()
_FREQS = np.fft.rfftfreq(NFFT, 1.0 / SAMPLE_RATE).astype(np.float32)
_BAND_LOW = (_FREQS >= 50) & (_FREQS < 1000)
_BAND_MID = (_FREQS >= 1000) & (_FREQS < 5000)
_BAND_H0 = _FREQS < 2000
_BAND_H1 = (_FREQS >= 2000) & (_FREQS < 5000)
_BAND_HF = _FREQS >= 4000
_EPS = 1e-10


def frame_descriptors(frames: np.ndarray, prev_shape: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame descriptors ``(n, N_FRAME_COLS)`` for float frames ``(n, FRAME)``, and the last
    frame's level-free log-mel, to pass back in as ``prev_shape`` so flux runs on across calls.
    """
    n = frames.shape[0]
    out = np.zeros((n, N_FRAME_COLS), dtype=np.float32)
    power_t = np.mean(frames * frames, axis=1)
    out[:, F_DB] = 10.0 * np.log10(power_t + _EPS)

    spec = np.fft.rfft(frames * _WINDOW, NFFT, axis=1)
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)

    # Pitch: YIN's cumulative-mean-normalised difference, its cross-correlation term by FFT.
    xf = np.fft.rfft(frames, NFFT, axis=1)
    hf = np.fft.rfft(frames[:, :_YIN_W], NFFT, axis=1)
    cc = np.fft.irfft(np.conj(hf) * xf, NFFT, axis=1)[:, : _LAG_MAX + 2]
    csum = np.concatenate([np.zeros((n, 1), np.float32), np.cumsum(frames * frames, axis=1)], axis=1)
    lags = np.arange(_LAG_MAX + 2)
    e_tau = csum[:, lags + _YIN_W] - csum[:, lags]
    diff = np.maximum(csum[:, _YIN_W:_YIN_W + 1] + e_tau - 2.0 * cc, 0.0)
    diff[:, 0] = 0.0
    running = np.cumsum(diff[:, 1:], axis=1) / lags[1:]
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] / np.maximum(running, _EPS)
    band = cmnd[:, _LAG_MIN:_LAG_MAX + 1]
    below = band < YIN_THRESHOLD
    first = np.where(below.any(axis=1), np.argmax(below, axis=1), np.argmin(band, axis=1))
    # The dip after the first crossing (searched up to 1.5x that lag, never an octave down).
    rel = np.arange(band.shape[1])[None, :]
    near = (rel >= first[:, None]) & (rel <= (first[:, None] + _LAG_MIN) * 1.5 - _LAG_MIN)
    best = np.argmin(np.where(near, band, np.inf), axis=1)
    rows = np.arange(n)
    i = np.clip(_LAG_MIN + best, 1, _LAG_MAX)
    y0, y1, y2 = cmnd[rows, i - 1], cmnd[rows, i], cmnd[rows, i + 1]
    denom = y0 - 2 * y1 + y2
    shift = np.where(np.abs(denom) > 1e-6, 0.5 * (y0 - y2) / np.where(denom == 0, 1, denom), 0.0)
    lag = i + np.clip(shift, -0.5, 0.5)
    aperiodicity = np.clip(y1, 0.0, 1.0)
    voiced = (aperiodicity < VOICING_THRESHOLD) & (out[:, F_DB] > ABS_FLOOR_DB)
    out[:, F_VOICED] = voiced
    out[:, F_ST] = np.where(voiced, 12.0 * np.log2(SAMPLE_RATE / lag / 100.0), 0.0)
    out[:, F_PER] = 1.0 - aperiodicity

    tot = power.sum(axis=1) + _EPS
    out[:, F_CENT] = (power @ _FREQS) / tot / 1000.0
    out[:, F_ALPHA] = 10.0 * np.log10((power[:, _BAND_LOW].sum(axis=1) + _EPS) /
                                      (power[:, _BAND_MID].sum(axis=1) + _EPS))
    out[:, F_HAMM] = 10.0 * np.log10((power[:, _BAND_H0].max(axis=1) + _EPS) /
                                     (power[:, _BAND_H1].max(axis=1) + _EPS))
    out[:, F_HF] = 10.0 * np.log10((power[:, _BAND_HF].sum(axis=1) + _EPS) / tot)

    logmel = 10.0 * np.log10(power @ _MEL_FB + _EPS)
    out[:, F_MFCC:] = (logmel @ _DCT) / 10.0
    # Flux on level-free log-mel (each frame minus its mean), so a gain change is not "flux".
    shape = logmel - logmel.mean(axis=1, keepdims=True)
    prev = np.vstack([shape[:1] if prev_shape is None else prev_shape[None, :], shape[:-1]])
    out[:, F_FLUX] = np.sqrt(np.mean((shape - prev) ** 2, axis=1))
    return out, shape[-1].copy()


def _second_difference(x: np.ndarray) -> np.ndarray:
    """|x[t] - (x[t-1] + x[t+1]) / 2|: micro-variation with the slow contour removed."""
    return np.abs(x[1:-1] - 0.5 * (x[:-2] + x[2:]))


def utterance_features(frames: np.ndarray) -> np.ndarray | None:
    """The utterance-level vector (``FEATURE_NAMES``) from a stretch's frame descriptors, or None
    while there is too little sounding speech to say anything."""
    if frames.shape[0] < MIN_ACTIVE_FRAMES:
        return None
    db = frames[:, F_DB]
    gate = max(float(np.percentile(db, 98)) - ACTIVE_RANGE_DB, ABS_FLOOR_DB)
    active = db > gate
    voiced = active & (frames[:, F_VOICED] > 0.5)
    if active.sum() < MIN_ACTIVE_FRAMES or voiced.sum() < MIN_VOICED_FRAMES:
        return None
    frames = frames.copy()
    # Octave errors of the tracker (a frame a whole octave off the speaker's median) are folded back.
    med = float(np.median(frames[voiced, F_ST]))
    off = frames[:, F_ST] - med
    frames[:, F_ST] -= np.where(voiced & (off > OCTAVE_FOLD_ST), 12.0, 0.0)
    frames[:, F_ST] += np.where(voiced & (off < -OCTAVE_FOLD_ST), 12.0, 0.0)
    a = frames[active]
    v = frames[voiced]
    st = v[:, F_ST]
    adb = a[:, F_DB]
    # Runs of consecutive voiced frames, for deltas, jitter and shimmer that never straddle a gap.
    cons = voiced[1:] & voiced[:-1]
    st_all, db_all = frames[:, F_ST], frames[:, F_DB]
    delta = np.abs(np.diff(st_all))[cons]
    # Octave jumps are tracker errors rather than intonation: cap a frame-to-frame step at 3 st.
    delta = np.minimum(delta, 3.0)
    tri = voiced[2:] & voiced[1:-1] & voiced[:-2]
    jitter = np.minimum(_second_difference(st_all)[tri], 3.0)
    shimmer = np.minimum(_second_difference(db_all)[tri], 6.0)
    t = np.nonzero(voiced)[0] * (HOP / SAMPLE_RATE)
    slope = float(np.polyfit(t, st, 1)[0]) if t[-1] - t[0] > 0.2 else 0.0
    # Syllable nuclei: prominent peaks of the smoothed energy on voiced frames.
    env = np.convolve(db_all, np.ones(5) / 5.0, mode="same")
    env = np.where(voiced, env, gate)
    peaks, _ = find_peaks(env, prominence=3.0, distance=8)
    active_s = active.sum() * HOP / SAMPLE_RATE
    p10, p90 = np.percentile(st, [10, 90])
    l10, l90 = np.percentile(adb, [10, 90])
    mf = a[:, F_MFCC:]
    feats = [
        l90, adb.std(), l90 - l10, float(shimmer.mean()) if shimmer.size else 0.0,
        st.mean(), st.std(), p10, p90, p90 - p10, float(delta.mean()) if delta.size else 0.0,
        float(jitter.mean()) if jitter.size else 0.0, np.clip(slope, -30.0, 30.0),
        voiced.sum() / active.sum(), v[:, F_PER].mean(), v[:, F_PER].std(), peaks.size / active_s,
        a[:, F_CENT].mean(), a[:, F_CENT].std(), a[:, F_ALPHA].mean(), a[:, F_ALPHA].std(),
        a[:, F_HAMM].mean(), a[:, F_HF].mean(), a[:, F_FLUX].mean(),
        *mf.mean(axis=0), *mf.std(axis=0),
    ]
    return np.asarray(feats, dtype=np.float32)


class ProsodyTracker:
    """Per-session streaming prosody: feed every chunk with the engine's speech flag.

    Frames of the current stretch of speech are kept until ``end_utterance``; the player's
    session baseline is the running mean of their finished utterances' ``BASELINE_NAMES``.
    """

    def __init__(self) -> None:
        self._tail = np.zeros(FRAME - HOP, dtype=np.float32)
        self._hp_state = np.zeros(1, dtype=np.float64)
        self._prev_shape: np.ndarray | None = None
        self._utt: list[np.ndarray] = []
        self._utt_frames = 0
        self.baseline_sum = np.zeros(len(BASELINE_NAMES), dtype=np.float64)
        self.baseline_n = 0

    def push(self, pcm_chunk: np.ndarray, is_speech: bool) -> None:
        """Analyse one chunk (int16 PCM); its frames join the utterance only if it is speech."""
        x = to_float(np.asarray(pcm_chunk, dtype=np.int16))
        # DC / rumble blocker (one-pole high-pass), state carried across chunks.
        y, self._hp_state = lfilter([1.0, -1.0], [1.0, -0.995], x, zi=self._hp_state)
        buf = np.concatenate([self._tail, y.astype(np.float32)])
        self._tail = buf[-(FRAME - HOP):].copy()
        n = (buf.size - FRAME) // HOP + 1
        if not is_speech:
            self._prev_shape = None
            return
        frames = np.lib.stride_tricks.sliding_window_view(buf, FRAME)[::HOP][:n]
        desc, self._prev_shape = frame_descriptors(frames, self._prev_shape)
        self._utt.append(desc)
        self._utt_frames += n
        while self._utt_frames - self._utt[0].shape[0] >= MAX_UTTERANCE_FRAMES:
            self._utt_frames -= self._utt.pop(0).shape[0]

    @property
    def speech_seconds(self) -> float:
        """Length of the current stretch of speech fed so far."""
        return self._utt_frames * HOP / SAMPLE_RATE

    def frames(self) -> np.ndarray:
        """Frame descriptors of the current stretch, ``(n, N_FRAME_COLS)``."""
        if not self._utt:
            return np.zeros((0, N_FRAME_COLS), dtype=np.float32)
        return np.concatenate(self._utt)

    def features(self) -> np.ndarray | None:
        """Utterance-level vector of the current stretch so far (None if too little speech)."""
        return utterance_features(self.frames())

    def end_utterance(self) -> np.ndarray | None:
        """Close the stretch: returns its vector and folds it into the speaker's baseline."""
        feats = self.features()
        self._utt, self._utt_frames = [], 0
        self._prev_shape = None
        if feats is not None:
            self.baseline_sum += feats[BASELINE_INDEX]
            self.baseline_n += 1
        return feats


def chunks(pcm: np.ndarray) -> list[np.ndarray]:
    """Split int16 PCM into whole 200 ms chunks, zero-padding the last one."""
    pad = (-pcm.size) % CHUNK_SAMPLES
    padded = np.concatenate([pcm, np.zeros(pad, dtype=pcm.dtype)])
    return list(padded.reshape(-1, CHUNK_SAMPLES))
