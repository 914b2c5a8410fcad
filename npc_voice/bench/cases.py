"""Our own held-out duplex bench cases: the format and timing of ``/work/shared/eval/dev``, other voices and wordings.

Why: the project is judged on case sets with voices and phrasings we do not have, so the dev set alone invites
tuning to its speakers and sentences. These cases are spoken by eSpeak NG voice variants that neither training
(``TRAIN_VARIANTS``) nor its held-out voices use, in several accents, with new wordings for every blacksmith
topic, mild background noise and a random level. Each case draws from its own seeded generator (and each task
from its own phrase decks), so a case does not change when another task's count does, and a seed always
renders the same bytes.

Layout (see the shared README): ``OUT/<id>/user.wav`` (16 kHz mono int16) and ``OUT/<id>/case.json``.
"""

from __future__ import annotations

import json
import subprocess
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from scipy.signal import butter, sosfilt

from npc_voice.audio.devices import write_wav
from npc_voice.audio.format import SAMPLE_RATE, to_int16
from npc_voice.train.dialogues import decode_wav, room_noise, trim_silence

T = TypeVar("T")

PERSONA = "blacksmith"
MS = SAMPLE_RATE // 1000  # samples per millisecond: every time in a case is a whole millisecond

# Accents x variants; no variant is in TRAIN_VARIANTS or HELDOUT_VOICES, and the variants Whisper tiny.en could
# not read even in en-us (Alicia, Andrea, belinda, Lee, Marco, shelby, zac, kaukovalta, ...) are left out.
ACCENTS = ["en-us", "en-gb", "en-029", "en-gb-scotland", "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbcwmd",
           "en-gb-x-gbclan"]
VARIANTS = ["m8", "adam", "benjamin", "caleb", "david", "edward", "edward2", "Henrique", "Hugo", "iven", "iven3",
            "iven4", "john", "max", "Mike", "norbert", "quincy", "rob", "travis", "victor", "Storm", "Diogo",
            "Mario", "michel", "miguel", "pablo", "sandro", "antonio", "gustave", "marcelo", "Nguyen", "boris",
            "pedro", "anika", "aunty"]
RATES = (140, 190)  # words per minute
PITCHES = (30, 70)  # eSpeak NG's 0..100
SPEECH_DB = (-30.0, -20.0)  # speech RMS of a case, dBFS
NOISE_DB = (-60.0, -50.0)  # background noise, dBFS

# New wordings of every topic: none is a dev case's text, a persona example, a training or an ASR bench sentence.
PHRASES: dict[str, list[str]] = {
    "greeting": ["Hey there, blacksmith!", "Good afternoon, sir.", "Hi, how is your day going?", "Evening, friend.",
                 "Greetings, master smith.", "Hello, is anybody here?"],
    "farewell": ["Thanks, I'll be off now.", "Take care, see you soon.", "Well, I should get going.",
                 "Bye, and thank you.", "So long, friend.", "Catch you later, smith."],
    "about_self": ["Do you have a name?", "Are you the smith around here?", "Tell me a little about yourself.",
                   "How should I address you?", "Have we met? What do they call you?"],
    "buy_sword": ["Have you got any blades for sale?", "I'm in the market for a good sword.",
                  "Can you make me a longsword?", "Show me the swords you've got.",
                  "I need a sharp sword before I travel north.", "Any good swords in stock today?"],
    "buy_shield": ["I could use a sturdy shield.", "Got any shields I could buy?", "Do you make round shields?",
                   "I'd like to buy a kite shield.", "Is that shield on the wall for sale?",
                   "I want a shield to carry into battle."],
    "prices": ["Are your prices fair?", "Would you take less for it?", "That's a lot of gold. Can you go lower?",
               "What would a sword set me back?", "How much is that shield over there?",
               "Give me a better price and I'll buy it.", "Is everything here this expensive?"],
    "repair": ["Could you fix my helmet?", "The handle of my axe came loose. Can you fix that?",
               "I bent my spear. Can you straighten it?", "Could you patch up this chain mail?",
               "My gauntlet is torn. Can you mend it?", "Would you sharpen my old hatchet?"],
    "directions": ["Which way to the tavern?", "How do I reach the castle from here?",
                   "Could you point me toward the inn?", "I'm trying to find the castle gate. Where is it?",
                   "What's the quickest road to the market?"],
    "dragon_story": ["Is it true a dragon attacked this village?", "I heard rumours about a dragon. What happened?",
                     "Did you ever see the dragon yourself?", "Where did the dragon come from?",
                     "What's this talk of a dragon in the hills?", "Could you tell me the dragon story?"],
    "forge_story": ["How did you learn smithing?", "How long has this forge been here?", "Who built this forge?",
                    "Why did you become a smith?", "Did you always want to work with iron?",
                    "Tell me how you got started at the anvil."],
}
# Wordings that name a second topic: both answers are acceptable.
ALSO = {"What would a sword set me back?": ["buy_sword"], "How much is that shield over there?": ["buy_shield"]}
# A turn cut by a pause where its first part is plainly unfinished.
SPLITS: list[tuple[str, str, list[str]]] = [
    ("Could I get", "a new shield?", ["buy_shield"]),
    ("I was hoping you could", "repair my axe.", ["repair"]),
    ("Which road do I take", "to reach the castle?", ["directions"]),
    ("How much would you want", "for that longsword?", ["prices", "buy_sword"]),
    ("I'd really like to hear", "about the dragon.", ["dragon_story"]),
    ("What I need most is", "a strong blade.", ["buy_sword"]),
    ("Could you tell me how", "you became a smith?", ["forge_story"]),
    ("The strap on my shield", "has snapped. Can you mend it?", ["repair"]),
    ("Before I go, could you show me", "the way to the inn?", ["directions"]),
]
# (what is written, what eSpeak NG is given): it spells "Mm-hm" out as letters.
BACKCHANNELS: list[tuple[str, str]] = [
    (t, t) for t in ["Right.", "Yeah.", "I see.", "Wow.", "Okay.", "Sure.", "Huh.", "Aha.", "Oh wow.", "Hmm.",
                     "Go on.", "Really?", "Interesting.", "Uh-huh."]
] + [("Mm-hm.", "[[m:'hm:]]")]
# (cue and new request, acceptable topics for the answer, the story it cannot cut: it asks for that one).
INTERRUPTIONS: list[tuple[str, list[str], str | None]] = [
    ("Hold on, I actually wanted to ask about shields.", ["buy_shield", "prices"], None),
    ("Sorry, stop. How far is it to the castle?", ["directions"], None),
    ("Wait. What do you charge for repairs?", ["repair", "prices"], None),
    ("No, no, I meant the forge. How did it start?", ["forge_story"], "forge_story"),
    ("Hang on, I asked about the dragon, not the forge.", ["dragon_story"], "dragon_story"),
    ("Excuse me, I'm in a hurry. Just sell me a sword.", ["buy_sword"], None),
    ("Okay, stop there. Can you mend my chain mail?", ["repair"], None),
    ("Sorry to cut in, but which way is the tavern?", ["directions"], None),
    ("Actually, never mind the story. What does a shield cost?", ["buy_shield", "prices"], None),
    ("Wait, wait. I never got your name.", ["about_self"], None),
]
SMOOTH_TOPICS = ["buy_sword", "buy_shield", "prices", "repair", "directions", "about_self", "greeting", "farewell"]
STORIES = ["dragon_story", "forge_story"]
TASKS = {"smooth_turn": 19, "pause_handling": 8, "user_backchannel": 8, "user_interruption": 8, "echo": 8,
         "silence": 3}


@dataclass(frozen=True)
class Speaker:
    """One case's player voice."""

    voice: str
    variant: str
    rate: int
    pitch: int
    level_db: float  # speech RMS

    @property
    def name(self) -> str:
        return f"{self.voice}+{self.variant}"


class Deck:
    """Seeded draws without repeats (until a list runs out) per task, so a task's cases use varied wordings."""

    def __init__(self, seed: int, task: str) -> None:
        self.rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
        self.used: dict[str, set[int]] = {}

    def draw(self, key: str, items: Sequence[T], ok: Callable[[T], bool] = lambda _: True) -> T:
        """A random item of `items` that passes `ok`, not drawn before under `key` while fresh ones remain."""
        idx = [i for i, item in enumerate(items) if ok(item)]
        used = self.used.setdefault(key, set())
        fresh = [i for i in idx if i not in used] or idx
        if len(fresh) == len(idx):
            used.difference_update(idx)
        i = int(self.rng.choice(fresh))
        used.add(i)
        return items[i]


class Timeline:
    """A case's microphone: speech placed at whole milliseconds, segment extents measured from the clips."""

    def __init__(self, speaker: Speaker, rng: np.random.Generator) -> None:
        self.speaker = speaker
        self.rng = rng
        self.clips: list[tuple[int, np.ndarray]] = []
        self.segments: list[dict] = []

    def say(self, start: float, text: str, role: str, spoken: str | None = None) -> tuple[float, float]:
        """Place `text` at `start` s (rounded to 1 ms); returns its extent, the trimmed clip's length from there."""
        clip = synthesise(spoken or text, self.speaker)
        clip = np.pad(clip, (0, -len(clip) % MS))  # a whole number of ms, so the extent is exact
        level = self.speaker.level_db + self.rng.uniform(-1.5, 1.5)
        clip = clip * min(10 ** (level / 20) / (np.sqrt(np.mean(clip**2)) + 1e-9), 0.9 / np.abs(clip).max())
        t0 = round(start * 1000)
        t1 = t0 + len(clip) // MS
        self.clips.append((t0 * MS, clip))
        self.segments.append({"start": t0 / 1000, "end": t1 / 1000, "text": text, "role": role})
        return t0 / 1000, t1 / 1000

    def audio(self, duration: float) -> np.ndarray:
        """The speech over background noise, as int16."""
        x = room_noise(self.rng, round(duration * 1000) * MS, self.rng.uniform(*NOISE_DB))
        for at, clip in self.clips:
            x[at : at + len(clip)] += clip
        return to_int16(x)


def synthesise(text: str, s: Speaker) -> np.ndarray:
    """One utterance from the espeak-ng command line, trimmed to its speech, float at 16 kHz."""
    wav = subprocess.run(
        ["espeak-ng", "-v", s.name, "-s", str(s.rate), "-p", str(s.pitch), "--stdout", text],
        check=True, capture_output=True,
    ).stdout
    return trim_silence(decode_wav(wav)).astype(np.float32)


def _speaker(rng: np.random.Generator) -> Speaker:
    return Speaker(
        voice=str(rng.choice(ACCENTS)), variant=str(rng.choice(VARIANTS)),
        rate=int(rng.integers(RATES[0], RATES[1] + 1)), pitch=int(rng.integers(PITCHES[0], PITCHES[1] + 1)),
        level_db=round(float(rng.uniform(*SPEECH_DB)), 1),
    )


def _story(deck: Deck, i: int) -> tuple[str, str]:
    """The i-th long-story question of a task: dragon and forge alternate."""
    topic = STORIES[i % 2]
    return topic, deck.draw(topic, PHRASES[topic])


def _smooth(tl: Timeline, deck: Deck, i: int) -> tuple[float, dict, dict]:
    topic = SMOOTH_TOPICS[i % len(SMOOTH_TOPICS)]
    text = deck.draw(topic, PHRASES[topic])
    _, end = tl.say(tl.rng.uniform(0.8, 1.5), text, "turn")
    return end + 6.0, {"respond_after": end, "topics": [topic, *ALSO.get(text, [])]}, {}


def _pause(tl: Timeline, deck: Deck, i: int) -> tuple[float, dict, dict]:
    first, second, topics = deck.draw("split", SPLITS)
    # Half the speakers hesitate with eSpeak's "continuing" tone (a trailing comma), half as at a sentence end.
    _, mid = tl.say(tl.rng.uniform(0.9, 1.2), first, "turn_part", first + "," if tl.rng.random() < 0.5 else first)
    resume, end = tl.say(mid + tl.rng.uniform(0.5, 1.3), second, "turn_part")
    return end + 6.0, {"no_takeover": [[mid, resume]], "respond_after": end, "topics": topics}, {}


def _backchannel(tl: Timeline, deck: Deck, i: int) -> tuple[float, dict, dict]:
    """One or two "uh-huh"s 3-7 s after the question, while the NPC is well into its story."""
    topic, text = _story(deck, i)
    _, ra = tl.say(tl.rng.uniform(0.9, 1.2), text, "turn")
    two = tl.rng.random() < 0.6
    written, spoken = deck.draw("backchannel", BACKCHANNELS)
    at = ra + (tl.rng.uniform(3.0, 4.5) if two else tl.rng.uniform(3.0, 7.0))
    windows = [list(tl.say(at, written, "backchannel", spoken))]
    if two:
        written, spoken = deck.draw("backchannel", BACKCHANNELS)
        windows.append(list(tl.say(tl.rng.uniform(windows[0][1] + 1.5, ra + 7.0), written, "backchannel", spoken)))
    duration = max(ra + tl.rng.uniform(12.5, 14.5), windows[-1][1] + 5.0)
    return duration, {"respond_after": ra, "topics": [topic], "backchannels": windows}, {}


def _interruption(tl: Timeline, deck: Deck, i: int) -> tuple[float, dict, dict]:
    topic, text = _story(deck, i)
    _, ra = tl.say(tl.rng.uniform(0.9, 1.2), text, "turn")
    said, after, _ = deck.draw("interruption", INTERRUPTIONS, lambda it: it[2] != topic)
    start, end = tl.say(ra + tl.rng.uniform(3.0, 7.0), said, "interruption")
    expect = {"respond_after": ra, "topics": [topic], "interrupt": [start, end], "topics_after_interrupt": after}
    return end + 6.0, expect, {}


def _echo(tl: Timeline, deck: Deck, i: int) -> tuple[float, dict, dict]:
    topic, text = _story(deck, i)
    _, ra = tl.say(tl.rng.uniform(0.9, 1.2), text, "turn")
    echo = {"delay_ms": int(tl.rng.integers(0, 251)), "gain": round(float(tl.rng.uniform(0.2, 1.0)), 2)}
    return ra + 14.0, {"respond_after": ra, "topics": [topic]}, {"echo": echo}


def _bursts(rng: np.random.Generator, x: np.ndarray, breath: bool) -> None:
    """Add wordless noise bursts to `x`: breaths (band-passed, slow swell) or rustles (low-passed, fast decay),
    their loudest 20 ms at -40 to -30 dBFS, under any speech; one per equal slot of `x`, so none overlap."""
    count = int(rng.integers(3, 7))
    slot = len(x) // count
    for k in range(count):
        n = int(rng.uniform(0.3, 0.9) * SAMPLE_RATE) if breath else int(rng.uniform(0.08, 0.35) * SAMPLE_RATE)
        if breath:
            sos = butter(2, [rng.uniform(300, 600), rng.uniform(1800, 3500)], "bandpass", fs=SAMPLE_RATE, output="sos")
            env = np.sin(np.linspace(0, np.pi, n)) ** rng.uniform(1.0, 2.5)
        else:
            sos = butter(2, rng.uniform(800, 4000), "lowpass", fs=SAMPLE_RATE, output="sos")
            env = np.exp(-np.arange(n) / (rng.uniform(0.02, 0.1) * SAMPLE_RATE))
        b = sosfilt(sos, rng.standard_normal(n)) * env
        loudest = np.sqrt(np.max(np.convolve(b**2, np.ones(320) / 320, "valid")))  # its loudest 20 ms
        b *= 10 ** (rng.uniform(-40, -30) / 20) / (loudest + 1e-9)
        at = k * slot + int(rng.integers(0, slot - n))
        x[at : at + n] += b.astype(np.float32)


def _silence(rng: np.random.Generator, i: int) -> tuple[np.ndarray, str]:
    """Nobody talks: room noise with breaths, room noise with rustles, then near-silence."""
    n = 12 * SAMPLE_RATE
    if i % 3 == 2:
        return to_int16(room_noise(rng, n, rng.uniform(-75, -68))), "near-silence"
    x = room_noise(rng, n, rng.uniform(-52, -45))
    _bursts(rng, x, breath=i % 3 == 0)
    return to_int16(x), "room noise and " + ("breaths" if i % 3 == 0 else "rustles")


RENDER = {"smooth_turn": _smooth, "pause_handling": _pause, "user_backchannel": _backchannel,
          "user_interruption": _interruption, "echo": _echo}


def render_cases(out: Path, seed: int = 0, per_task: dict | None = None) -> list[str]:
    """Write every case into `out` (`per_task`: case counts that override the dev-like defaults); returns the ids."""
    counts = {**TASKS, **(per_task or {})}
    out.mkdir(parents=True, exist_ok=True)
    ids, lines = [], []
    for task_no, (task, count) in enumerate(counts.items()):
        deck = Deck(seed, task)
        for i in range(count):
            cid = f"{task}-{i + 1:03d}"
            rng = np.random.default_rng([seed, task_no, i])
            if task == "silence":
                pcm, what = _silence(rng, i)
                duration, segments, expect, extra = 12.0, [], {"no_takeover": [[0.0, 12.0]]}, {}
            else:
                tl = Timeline(_speaker(rng), rng)
                duration, expect, extra = RENDER[task](tl, deck, i)
                duration = round(duration, 3)
                pcm, segments = tl.audio(duration), tl.segments
                s = tl.speaker
                what = f"{s.name}, rate {s.rate}, pitch {s.pitch}, speech {s.level_db} dBFS"
            case = {"id": cid, "persona": PERSONA, "sample_rate": SAMPLE_RATE, "duration": duration,
                    "user_segments": segments, "task": task, **extra, "expect": expect}
            (out / cid).mkdir(exist_ok=True)
            write_wav(out / cid / "user.wav", pcm)
            (out / cid / "case.json").write_text(json.dumps(case, indent=1) + "\n")
            ids.append(cid)
            lines.append(f"| {cid} | {what} |")
    (out / "README.md").write_text(_readme(seed, counts, lines))
    return ids


def _readme(seed: int, counts: dict, lines: list[str]) -> str:
    return "\n".join([
        "# Held-out duplex cases", "",
        f"Rendered by `npc-voice bench cases OUT --seed {seed}` (npc_voice/bench/cases.py); seed {seed}. "
        "Same format as /work/shared/eval/dev; score with its score.py.", "",
        "Counts: " + ", ".join(f"{t} {n}" for t, n in counts.items()) + ".", "",
        f"Voice pool: eSpeak NG accents {', '.join(ACCENTS)} with variants {', '.join(VARIANTS)}; "
        f"rate {RATES[0]}-{RATES[1]} wpm, pitch {PITCHES[0]}-{PITCHES[1]}, one speaker per case. None of these "
        "variants is used in training (TRAIN_VARIANTS) or its held-out voices.", "",
        f"Speech level {SPEECH_DB[0]:g} to {SPEECH_DB[1]:g} dBFS RMS, background noise {NOISE_DB[0]:g} to "
        f"{NOISE_DB[1]:g} dBFS.", "",
        "| case | speaker |", "|---|---|", *lines, "",
    ])
