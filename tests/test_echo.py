"""Echo canceller behaviour on synthetic echo of espeak-ng speech."""

import numpy as np
import pytest

from npc_voice.audio.echo import EchoCanceller
from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE
from npc_voice.bench.echo_vad import (
    NPC_LINE,
    PLAYER_LINE,
    cancel,
    echo_of,
    erle_db,
    espeak,
    mic_noise,
    room_response,
    sdr_db,
)


@pytest.fixture(scope="module")
def npc() -> np.ndarray:
    return espeak(NPC_LINE, "en-us")


@pytest.fixture(scope="module")
def player() -> np.ndarray:
    return espeak(PLAYER_LINE, "en-gb+f3", pitch=70)


@pytest.mark.parametrize("room", [False, True])
def test_erle_after_convergence_at_full_gain_and_150_ms(npc: np.ndarray, room: bool) -> None:
    rng = np.random.default_rng(3)
    mic = echo_of(npc, 150, 1.0, room_response(rng) if room else None) + mic_noise(rng, len(npc))
    canceller = EchoCanceller()
    out = cancel(mic, npc, canceller)
    start = 5 * SAMPLE_RATE
    assert erle_db(mic[start : len(out)], out[start:]) >= 15.0
    assert canceller.converged
    assert 100.0 <= canceller.delay_ms <= 150.0


def test_player_survives_double_talk(npc: np.ndarray, player: np.ndarray) -> None:
    rng = np.random.default_rng(4)
    echo = echo_of(npc, 150, 1.0, room_response(rng))
    near = np.zeros(len(npc))
    start = 5 * SAMPLE_RATE
    length = min(len(player), len(npc) - start)
    near[start : start + length] = 0.5 * player[:length]
    mic = echo + near + mic_noise(rng, len(npc))
    out = cancel(mic, npc, EchoCanceller())
    stop = min(start + length, len(out))
    sdr_in, _ = sdr_db(near[start:stop], mic[start:stop])
    sdr_out, scale = sdr_db(near[start:stop], out[start:stop])
    assert sdr_out >= sdr_in + 8.0  # the player is clearer after cancelling
    assert 0.8 <= scale <= 1.2  # and not ducked
    # The filter did not diverge while the player talked: echo after the overlap is still cancelled.
    assert erle_db(mic[stop + SAMPLE_RATE : len(out)], out[stop + SAMPLE_RATE :]) >= 10.0


def test_no_echo_path_never_puts_the_npc_voice_into_the_output(npc: np.ndarray, player: np.ndarray) -> None:
    """A headset: the NPC plays, but only the player reaches the microphone. Whatever the filter learns
    from the player, the output must not carry a copy of the NPC's voice (it would sound like speech)."""
    rng = np.random.default_rng(5)
    near = np.zeros(len(npc))
    for start in range(SAMPLE_RATE, len(npc) - len(player), 3 * len(player)):
        near[start : start + len(player)] = 0.5 * player
    mic = near + mic_noise(rng, len(npc))
    out = cancel(mic, npc, EchoCanceller())
    n = len(out) // CHUNK_SAMPLES * CHUNK_SAMPLES
    mic_e = (mic[:n].reshape(-1, CHUNK_SAMPLES) ** 2).sum(axis=1)
    out_e = (out[:n].reshape(-1, CHUNK_SAMPLES) ** 2).sum(axis=1)
    assert np.all(out_e <= mic_e * 1.01 + CHUNK_SAMPLES * 1e-6)  # never louder than the mic (-60 dBFS slack)
    silent = (near[:n].reshape(-1, CHUNK_SAMPLES) ** 2).sum(axis=1) == 0
    assert np.abs(out[:n].reshape(-1, CHUNK_SAMPLES)[silent]).max() < 0.01  # no NPC voice in the pauses


def test_ref_none_passes_audio_through_and_keeps_state(npc: np.ndarray) -> None:
    rng = np.random.default_rng(5)
    mic_pcm = (rng.standard_normal(CHUNK_SAMPLES) * 1000).astype(np.int16)
    fresh = EchoCanceller()
    assert np.array_equal(fresh.process(mic_pcm, None), mic_pcm)

    mic = echo_of(npc, 60, 0.7, None) + mic_noise(rng, len(npc))
    trained = EchoCanceller()
    cancel(mic, npc, trained)
    erle = trained.echo_return_loss_enhancement
    # The echo tail of earlier reference is still cancelled, then audio passes through untouched.
    for _ in range(4):
        trained.process(mic_pcm, None)
    assert np.array_equal(trained.process(mic_pcm, None), mic_pcm)
    assert not trained.stats.ref_active
    assert trained.echo_return_loss_enhancement == erle


def test_stats_tell_echo_from_player(npc: np.ndarray, player: np.ndarray) -> None:
    rng = np.random.default_rng(6)
    mic = echo_of(npc, 150, 1.0, room_response(rng)) + mic_noise(rng, len(npc))
    start = 5 * SAMPLE_RATE
    length = min(len(player), len(npc) - start)
    with_player = mic.copy()
    with_player[start : start + length] += 0.5 * player[:length]
    excess = {}
    for name, signal in (("echo", mic), ("player", with_player)):
        canceller = EchoCanceller()
        values = []
        for c in range(len(signal) // CHUNK_SAMPLES):
            s = slice(c * CHUNK_SAMPLES, (c + 1) * CHUNK_SAMPLES)
            cancel(signal[s], npc[s], canceller)
            values.append(canceller.stats.residual_excess_db)
        excess[name] = np.array(values)[start // CHUNK_SAMPLES : (start + length) // CHUNK_SAMPLES]
    assert np.median(excess["player"]) >= np.median(excess["echo"]) + 6.0


def test_rejects_wrong_chunk_size() -> None:
    with pytest.raises(ValueError):
        EchoCanceller().process(np.zeros(100, np.int16), None)


def shifted(played: np.ndarray, shifts: list[tuple[float, int]]) -> np.ndarray:
    """The reference a live device sends after xruns: ``played`` moved by ``samples`` from ``t`` s on."""
    ref = np.zeros_like(played)
    for i, (t, samples) in enumerate(shifts):
        a = int(t * SAMPLE_RATE)
        b = int(shifts[i + 1][0] * SAMPLE_RATE) if i + 1 < len(shifts) else len(played)
        idx = np.arange(a, b) + samples
        ok = (idx >= 0) & (idx < len(played))
        ref[a:b][ok] = played[idx[ok]]
    return ref


@pytest.mark.parametrize("room", [False, True])
def test_a_reference_that_jumps_against_the_echo_is_followed_at_once(npc: np.ndarray, room: bool) -> None:
    """After an xrun the live reference lands a few ms off its echo (docs/perf/mouth_to_ear.md): the learnt
    path moves with it instead of being learnt again (which took 3-4 s at 0-3 dB, the NPC hearing itself)."""
    rng = np.random.default_rng(8)
    played = np.concatenate((npc, npc))
    mic = echo_of(played, 60, 0.25, room_response(rng, 0.2) if room else None) + mic_noise(rng, len(played))
    jumps = [(0.0, 0), (6.0, 80), (10.0, -48), (14.0, 190)]  # 5 ms later, 3 ms earlier, 12 ms later
    out = cancel(mic, shifted(played, jumps), EchoCanceller())
    for t, _ in jumps[1:]:
        after = slice(int((t + 0.4) * SAMPLE_RATE), int((t + 1.4) * SAMPLE_RATE))  # the second after the jump
        assert erle_db(mic[after], out[after]) >= 10.0


def test_an_answers_first_second_is_cancelled(npc: np.ndarray) -> None:
    """A laptop's echo (a short path): a fit on the first chunks removes most of it before the adaptive
    filter could have learnt it (alone it took 5-7 dB off this first second, 0-4 dB on the live loop's: the
    NPC heard its own first words)."""
    rng = np.random.default_rng(9)
    rir = np.zeros(320)
    rir[0], rir[37], rir[90] = 1.0, 0.4, -0.2  # direct path and two reflections
    mic = echo_of(npc, 40, 0.5, rir) + mic_noise(rng, len(npc))
    out = cancel(mic, npc, EchoCanceller())
    first = slice(0, SAMPLE_RATE)
    assert erle_db(mic[first], out[first]) >= 12.0
