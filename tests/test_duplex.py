"""The duplex model's behaviour on held-out synthetic voices, its bounded state, and the ``duplex`` strategy's rules."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from npc_voice.audio.echo import EchoCanceller, EchoStats
from npc_voice.audio.format import CHUNK_SAMPLES, CHUNK_SECONDS, SAMPLE_RATE, to_int16
from npc_voice.features.duplex_features import N_FEATURES
from npc_voice.features.vad import VoiceActivity
from npc_voice.floor.decision import Action
from npc_voice.floor.observation import DuplexOutputs, FloorObservation
from npc_voice.floor.strategies import duplex_strategy
from npc_voice.model.duplex import MODEL_DIR, WINDOW, DuplexModel
from npc_voice.train.dialogues import HELDOUT_VOICES, NPC_LINES, NPC_VOICES, Bank, espeak, render
from npc_voice.train.duplex import auc

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "duplex.pt").exists(), reason="model not trained")
QUIET = EchoStats(False, -100.0, -100.0, -100.0, 0.0, 0.0)


@pytest.fixture(scope="module")
def model() -> DuplexModel:
    return DuplexModel.shared()


def _run(model: DuplexModel, audio: np.ndarray, words_at: list[tuple[float, str]]) -> list[DuplexOutputs]:
    """Feed player-only audio chunk by chunk; the transcript is what a recogniser had heard by then."""
    state, vad = model.session(), VoiceActivity()
    pcm = to_int16(audio)
    outs = []
    for c in range(len(pcm) // CHUNK_SAMPLES):
        chunk = pcm[c * CHUNK_SAMPLES : (c + 1) * CHUNK_SAMPLES]
        t = (c + 1) * CHUNK_SECONDS
        partial = " ".join(w for at, w in words_at if at <= t)
        outs.append(state.step(chunk, chunk, None, vad.process(chunk), QUIET, False, 0.0, partial))
    return outs


def test_shift_after_a_finished_question_not_in_a_mid_sentence_pause(model: DuplexModel) -> None:
    voice, variant = HELDOUT_VOICES[0]
    first = espeak("Could you tell me where", voice, variant, 150, 45)
    second = espeak("the temple is?", voice, variant, 150, 45)
    gap = np.zeros(int(1.0 * SAMPLE_RATE), np.float32)
    audio = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), first, gap, second,
                            np.zeros(int(1.6 * SAMPLE_RATE), np.float32)]) * 0.5
    t1 = 1.0 + len(first) / SAMPLE_RATE
    t2 = t1 + 1.0 + len(second) / SAMPLE_RATE
    words = [(t1, w) for w in ["could", "you", "tell", "me", "where"]] + [(t2, w) for w in ["the", "temple", "is"]]
    outs = _run(model, audio, words)
    in_pause = max(o.shift for o in outs[int((t1 + 0.3) / CHUNK_SECONDS) : int((t1 + 0.9) / CHUNK_SECONDS)])
    after = outs[int((t2 + 0.4) / CHUNK_SECONDS)].shift
    assert after > in_pause
    assert after >= 0.5 > in_pause


def test_silence_and_noise_never_ask_for_the_floor(model: DuplexModel) -> None:
    rng = np.random.default_rng(3)
    audio = (rng.standard_normal(10 * SAMPLE_RATE) * 0.01).astype(np.float32)
    audio[3 * SAMPLE_RATE : int(3.3 * SAMPLE_RATE)] += rng.standard_normal(int(0.3 * SAMPLE_RATE)) * 0.05
    outs = _run(model, audio, [])
    assert max(o.shift for o in outs) < 0.5


def test_backchannel_and_interruption_separate_on_heldout_voices(model: DuplexModel) -> None:
    rng = np.random.default_rng(11)
    bank = Bank("heldout", np.random.default_rng(1))
    net = model.net
    scores, labels, echo_only = [], [], []
    while len(labels) < 40 or len(set(labels)) < 2:
        d = render(rng, bank)
        with torch.no_grad():
            over = torch.softmax(net(torch.from_numpy(d.features)[None])[0, :, 2:5], -1).numpy()
        m = d.over > 0
        scores.extend(over[m, 2])
        labels.extend((d.over[m] == 2).astype(int))
        echo_only.extend(over[(d.over == 0) & (d.player == 0), 2])
    assert auc(np.array(scores), np.array(labels)) > 0.8
    assert float(np.mean(np.array(echo_only) >= 0.6)) < 0.05


def test_echo_alone_does_not_interrupt_the_npc(model: DuplexModel) -> None:
    """The NPC's own line heard back at full gain, 200 ms late, through a plain delay: no interruption."""
    voice, variant = NPC_VOICES[-1]
    line = espeak(NPC_LINES[0], voice, variant, 160, 40) * 0.7
    n = (len(line) // CHUNK_SAMPLES) * CHUNK_SAMPLES
    out = to_int16(line[:n])
    delay = int(0.2 * SAMPLE_RATE)
    mic = np.concatenate([np.zeros(delay, np.int16), out])[:n]
    state, vad, aec = model.session(), VoiceActivity(), EchoCanceller()
    policy = duplex_strategy()
    for c in range(n // CHUNK_SAMPLES):
        sl = slice(c * CHUNK_SAMPLES, (c + 1) * CHUNK_SAMPLES)
        clean = aec.process(mic[sl], out[sl])
        o = state.step(mic[sl], clean, out[sl], vad.process(clean), aec.stats, True, c * CHUNK_SECONDS, "")
        obs = FloorObservation(npc_speaking=True, in_speech=False, speech_s=0.0, silence_s=1.0,
                               turn_speech_s=0.0, words="", model=o, model_previous=state.previous)
        assert policy.decide(obs).action is not Action.INTERRUPTED


def test_state_is_bounded_and_step_matches_the_sequence_model(model: DuplexModel) -> None:
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.standard_normal((50, N_FEATURES)).astype(np.float32))
    net = model.net
    with torch.no_grad():
        full = net(x[None])[0]
        ctx, h = torch.zeros(WINDOW, net.q.in_features), torch.zeros(net.q.in_features)
        for t in range(50):
            logits, ctx, h = net.step(x[t], ctx, t, h)
            assert torch.allclose(logits, full[t], atol=1e-4)
    state = model.session()
    size = state.nbytes()
    silent = np.zeros(CHUNK_SAMPLES, np.int16)
    for _ in range(600):
        state.step(silent, silent, None, np.zeros(6, np.float32), QUIET, False, 0.0, "")
    assert state.nbytes() == size
    assert state.ctx.shape == (WINDOW, net.q.in_features)


def _outputs(**kw: float) -> DuplexOutputs:
    base = dict(shift=0.0, soon=0.0, silent=1.0, backchannel=0.0, interrupt=0.0, player=0.0)
    return DuplexOutputs(**{**base, **kw})


def _obs(**kw: object) -> FloorObservation:
    base = dict(npc_speaking=False, in_speech=False, speech_s=0.5, silence_s=0.2, turn_speech_s=1.0, words="")
    return FloorObservation(**{**base, **kw})  # type: ignore[arg-type]


def test_policy_combines_words_and_acoustics() -> None:
    p = duplex_strategy()

    def decide(out, o, accurate=False, previous=None):
        return p.decide(replace(o, model=out, model_previous=previous, words_accurate=accurate)).action

    # A cue word counts only when the model hears the player (not the NPC's own echo saying "wait").
    assert decide(_outputs(player=0.9), _obs(npc_speaking=True, in_speech=True, words="wait")) is Action.INTERRUPTED
    assert decide(_outputs(player=0.1), _obs(npc_speaking=True, in_speech=True, words="wait")) is Action.CONTINUE
    # ...including when the recogniser delivers it just after the stretch ended.
    assert decide(_outputs(), _obs(npc_speaking=True, words="stop stop"), previous=_outputs(player=0.9)) is \
        Action.INTERRUPTED
    # "no" alone opens either: it is not a cue; the interruption head decides.
    assert decide(_outputs(player=0.9), _obs(npc_speaking=True, in_speech=True, words="no")) is Action.CONTINUE
    sure = _outputs(player=0.9, interrupt=0.8)
    assert decide(sure, _obs(npc_speaking=True, in_speech=True, words="no"), previous=sure) is Action.INTERRUPTED
    # One chunk of interruption evidence is not enough (an "mm-hm" onset); two in a row are.
    assert decide(sure, _obs(npc_speaking=True, in_speech=True, words="no"), previous=_outputs()) is \
        Action.CONTINUE
    # A finished stretch over the NPC without interruption evidence was a backchannel.
    assert decide(_outputs(backchannel=0.9), _obs(npc_speaking=True, words="uh huh")) is Action.BACKCHANNEL
    # Listening: words that end mid-phrase wait for a longer pause even when the model says shift.
    assert decide(_outputs(shift=0.9), _obs(words="i would like to buy"), accurate=True) is Action.LISTEN
    assert decide(_outputs(shift=0.9), _obs(words="i would like to buy a sword"), accurate=True) is Action.RESPOND
    # The fast partial's ending ("...like on a") is too often misheard to veto the model.
    assert decide(_outputs(shift=0.9), _obs(words="i would like on a")) is Action.RESPOND
    assert decide(_outputs(shift=0.1), _obs(words="i would like to buy a sword")) is Action.LISTEN
