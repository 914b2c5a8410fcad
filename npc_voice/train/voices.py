"""Synthetic speakers saying ordinary things in an ordinary voice: the tone model's examples of plain speech.

Why: RAVDESS has 12 actors whose "neutral" is a handful of clips recorded in one studio; everything else they
say is acted emotion. Left with only that, the model learnt that any voice unlike those neutral clips (another
microphone, a synthetic voice, a longer sentence) is emotional. These speakers add many more voices, rates and
pitches saying everyday sentences with no emotion, labelled neutral and low arousal.

Speakers are eSpeak NG voice x variant combinations (the duplex trainer's ``TRAIN_VOICES``/``TRAIN_VARIANTS``:
never the variants of ``npc-voice bench cases`` or the duplex trainer's held-out voices) with their own rate
and pitch, and festival's kal_diphone at a few speeds. The sentences are written here for this purpose and
are none of the bench cases' texts. Audio is rendered once and cached (``NPC_VOICE_CACHE``), never committed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

from npc_voice.audio.format import SAMPLE_RATE, to_int16
from npc_voice.train.dialogues import TRAIN_VARIANTS, TRAIN_VOICES, espeak, festival

SENTENCES = [
    "I came by to see whether my order is ready.", "The road from the mill was muddy this morning.",
    "Could you show me the small knives on that shelf?", "My brother told me you do good work.",
    "I think it will rain again before the evening.", "We are staying at the inn for two more nights.",
    "Do you take silver coins from the northern mint?", "I need a few hooks for the barn door.",
    "The harvest festival starts at the end of the week.", "Would you have time to look at my plough?",
    "I have never been to the capital myself.", "That looks like a well made lantern.",
    "How long have you lived in this village?", "The children were playing by the river again.",
    "I will come back after lunch, if that suits you.", "My horse lost a shoe on the way here.",
    "Is it far to the next town along this road?", "I was told to ask for the master of the house.",
    "The baker says the flour came late this month.", "Can I leave this bag here for a moment?",
    "We need to be on our way before sunset.", "I am looking for a gift for my father.",
    "There is a fair price for everything, I suppose.", "Could you write down the name for me?",
    "It was a long walk, but the weather was fine.", "I would be grateful for a little advice.",
    "The old bridge has been mended, I hear.", "Let me think about it for a minute.",
    "My cousin works at the stables near the gate.", "Have the merchants arrived from the coast yet?",
    "I usually buy my nails from the market.", "Perhaps you could recommend somebody.",
    "The chimney of our house needs a new cover.", "I am not in any hurry, take your time.",
    "Which of these two would last longer?", "I heard the mayor is planning a new well.",
    "We had a quiet winter up in the hills.", "Is this the one you finished yesterday?",
    "I can pay half now and half next week.", "My neighbour borrowed my axe and never returned it.",
    "Thanks, that is all I needed to know.", "Good afternoon, I hope business is going well.",
    "The traders usually come on the first day of the month.", "I have a list of things to pick up today.",
    "Could you tell me what time the market closes?", "I left my cart just outside the door.",
    "That sounds reasonable to me.", "I was wondering whether you repair locks as well.",
    "We should talk about the price another day.", "The fields are still wet from last night.",
    "Well, I suppose that will do for now.", "It is a bit colder than yesterday.",
    "I would like something simple and sturdy.", "My wife asked me to bring back some thread.",
    "Is there anyone else in town who sells tools?", "Right, I will wait here then.",
    "I have been travelling for about a week.", "The priest mentioned your name to me.",
    "Could I have a look at the one in the window?", "So, how does this usually work?",
]


@dataclass(frozen=True)
class Speaker:
    """One synthetic voice: an eSpeak NG voice+variant at a rate and pitch, or festival at a speed."""

    engine: str  # "espeak" or "festival"
    voice: str = ""
    variant: str = ""
    rate: int = 165
    pitch: int = 50
    speed: float = 1.0  # festival: resampled, which moves pitch and formants


def speakers(n_espeak: int, n_festival: int, seed: int) -> list[Speaker]:
    rng = np.random.default_rng(seed)
    out = [Speaker("espeak", str(rng.choice(TRAIN_VOICES)), str(rng.choice(TRAIN_VARIANTS)),
                   int(rng.integers(130, 200)), int(rng.integers(25, 76))) for _ in range(n_espeak)]
    out += [Speaker("festival", speed=float(s)) for s in np.linspace(0.9, 1.1, n_festival)]
    return out


def render(speaker: Speaker, texts: list[str]) -> list[np.ndarray]:
    """The speaker's utterances (int16, 16 kHz, trimmed to the speech)."""
    if speaker.engine == "espeak":
        audio = [espeak(t, speaker.voice, speaker.variant, speaker.rate, speaker.pitch) for t in texts]
    else:
        said = festival(texts)
        audio = [soxr.resample(said[t], SAMPLE_RATE * speaker.speed, SAMPLE_RATE) for t in texts if t in said]
    return [to_int16(0.5 * a / (np.max(np.abs(a)) + 1e-9)) for a in audio]


def sentences_for(index: int, count: int, seed: int) -> list[str]:
    """A speaker's own sample of the sentences (different speakers say different things)."""
    rng = np.random.default_rng(seed * 7919 + index)
    return [SENTENCES[i] for i in rng.choice(len(SENTENCES), size=count, replace=False)]
