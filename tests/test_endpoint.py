"""The prosodic end-of-turn model on speech it never trained on: a held-out eSpeak voice, synthesised here.

A comma's pause should look less final than the sentence's end; the answer is a probability, takes
int16 or float audio, and does not depend on how much trailing silence the caller passes.
"""

from __future__ import annotations

import numpy as np
import pytest

from npc_voice.audio.format import SAMPLE_RATE, to_int16
from npc_voice.model.endpoint import EndOfTurn
from npc_voice.train.dialogues import HELDOUT_VOICES, espeak
from npc_voice.train.endpoint import find_points, punctuation_points

pytestmark = pytest.mark.skipif(not EndOfTurn.available(),
                                reason="models/endpoint/endpoint.pt missing: run python -m npc_voice.train.endpoint")

SENTENCES = [
    "My shield is cracked, could you take a look at it?",
    "When the tide comes in, we will sail to the island.",
    "If you see my brother, tell him to come home.",
    "Honestly, I think the price is too high.",
]


def _points(text: str, voice: tuple[str, str]) -> tuple[np.ndarray, list[int], list[int]]:
    """The utterance, its comma voice ends and its final voice end (found as in training)."""
    say = lambda t: espeak(t, voice[0], voice[1], 160, 45)  # noqa: E731
    x = say(text)
    points = find_points(x, [(say(p), lab) for p, lab in punctuation_points(text)], 0.15)
    assert points is not None, text
    x = np.concatenate([x, np.zeros(SAMPLE_RATE // 2, np.float32)])
    return x, [p.voice_end for p in points if p.label == 0], [p.voice_end for p in points if p.label == 1]


@pytest.mark.parametrize("voice", HELDOUT_VOICES[:2])
def test_comma_pause_less_final_than_sentence_end(voice: tuple[str, str]) -> None:
    model = EndOfTurn.shared()
    tail = int(0.1 * SAMPLE_RATE)
    wins = 0
    for text in SENTENCES:
        x, holds, ends = _points(text, voice)
        p_hold = model.p_end(x[: holds[0] + tail], holds[0])
        p_end = model.p_end(x[: ends[-1] + tail], ends[-1])
        wins += p_hold < p_end
    # Most sentences, not all: one odd synthetic contour in a held-out voice must not fail the suite,
    # but a model that cannot tell commas from ends on unseen voices does.
    assert wins >= len(SENTENCES) - 1


def test_probability_dtype_and_tail_invariance() -> None:
    model = EndOfTurn.shared()
    x, holds, ends = _points(SENTENCES[0], HELDOUT_VOICES[2])
    for ve in holds + ends:
        short = model.p_end(x[: ve + int(0.05 * SAMPLE_RATE)], ve)
        long = model.p_end(x[: ve + int(0.2 * SAMPLE_RATE)], ve)
        as_int = model.p_end(to_int16(x[: ve + int(0.2 * SAMPLE_RATE)]), ve)
        assert 0.0 <= short <= 1.0 and 0.0 <= long <= 1.0
        assert abs(short - long) < 0.1
        assert abs(as_int - long) < 0.05


def test_available_and_shared() -> None:
    assert EndOfTurn.available()
    assert EndOfTurn.shared() is EndOfTurn.shared()
