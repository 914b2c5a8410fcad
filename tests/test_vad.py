"""Streaming silero VAD: speech vs silence/noise, framing, per-session state."""

import numpy as np
import pytest
import torch
from silero_vad import load_silero_vad

from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE, to_int16
from npc_voice.bench.echo_vad import NPC_LINE, espeak
from npc_voice.features.vad import FRAME_SAMPLES, VoiceActivity, shared_session


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return to_int16(espeak(NPC_LINE, "en-us"))


def stream(vad: VoiceActivity, pcm: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [vad.process(pcm[i : i + CHUNK_SAMPLES]) for i in range(0, len(pcm), CHUNK_SAMPLES)]
    )


def test_high_on_speech_low_on_silence_and_noise(speech: np.ndarray) -> None:
    assert np.mean(stream(VoiceActivity(), speech) > 0.5) > 0.6
    assert stream(VoiceActivity(), np.zeros(2 * SAMPLE_RATE, np.int16)).max() < 0.1
    noise = to_int16(np.random.default_rng(0).standard_normal(2 * SAMPLE_RATE) * 10 ** (-50 / 20))
    assert stream(VoiceActivity(), noise).max() < 0.5


def test_frames_per_chunk_and_leftover() -> None:
    vad = VoiceActivity()
    counts = [len(vad.process(np.zeros(CHUNK_SAMPLES, np.int16))) for _ in range(8)]
    assert set(counts) == {6, 7}
    assert sum(counts) == 8 * CHUNK_SAMPLES // FRAME_SAMPLES


def test_matches_silero_onnx_wrapper(speech: np.ndarray) -> None:
    ours = stream(VoiceActivity(), speech[: 3 * SAMPLE_RATE])
    model = load_silero_vad(onnx=True)
    audio = torch.from_numpy(speech[: len(ours) * FRAME_SAMPLES].astype(np.float32) / 32768.0)
    theirs = [
        model(audio[i : i + FRAME_SAMPLES], SAMPLE_RATE).item() for i in range(0, len(audio), FRAME_SAMPLES)
    ]
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_sessions_are_independent(speech: np.ndarray) -> None:
    noise = to_int16(np.random.default_rng(1).standard_normal(len(speech)) * 0.05)
    alone_a = stream(VoiceActivity(), speech)
    alone_b = stream(VoiceActivity(), noise)
    a, b = VoiceActivity(), VoiceActivity()
    assert a._session is b._session is shared_session()
    inter_a, inter_b = [], []
    for i in range(0, len(speech), CHUNK_SAMPLES):
        inter_a.append(a.process(speech[i : i + CHUNK_SAMPLES]))
        inter_b.append(b.process(noise[i : i + CHUNK_SAMPLES]))
    np.testing.assert_array_equal(np.concatenate(inter_a), alone_a)
    np.testing.assert_array_equal(np.concatenate(inter_b), alone_b)


def test_reset_restarts_the_stream(speech: np.ndarray) -> None:
    vad = VoiceActivity()
    first = stream(vad, speech[: 2 * SAMPLE_RATE])
    vad.process(speech[100:1000])
    vad.reset()
    np.testing.assert_array_equal(stream(vad, speech[: 2 * SAMPLE_RATE]), first)
