"""Synthetic full-duplex dialogues for the duplex model: audio of both sides, run through the live path.

1. A bank of utterances is synthesised once and cached (not in git): player sentences in many eSpeak NG
   voices/variants, rates and pitches plus festival's kal_diphone, NPC lines in other voices. Held-out
   voices (``HELDOUT_VOICES``) are never used for training; tests and validation use them.
2. A dialogue is a random timeline in 200 ms chunks: silence, a player turn (complete, or cut
   mid-phrase with a pause and continued), a gap, the NPC's line (played, and heard back through
   the loudspeaker with delay 0-250 ms, gain up to 1 and a synthetic room), the player's "uh-huh"s
   over it or an interruption (with or without a cue word, or a new question) after which the NPC
   stops, breaths and noise bursts, background noise, and silence-only dialogues.
3. Every chunk goes through the run-time echo canceller, silero VAD and ``DuplexFeatures``; the fast
   transcript is simulated from the script with the word errors pocketsphinx makes (most words
   misheard, short cue words more often right), revealed with a lag.
Labels per chunk: shift (turn over, NPC should speak), soon (player's final words end within 0.4 s),
over (while the NPC speaks: nothing / backchannel / interruption), player (the player is speaking).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
from scipy.signal import fftconvolve, lfilter

from npc_voice.audio.echo import EchoCanceller
from npc_voice.audio.format import CHUNK_SAMPLES, CHUNK_SECONDS, SAMPLE_RATE, to_int16
from npc_voice.features.duplex_features import N_FEATURES, DuplexFeatures
from npc_voice.features.vad import VoiceActivity

CACHE = Path(os.environ.get("NPC_VOICE_CACHE", Path(tempfile.gettempdir()) / "npc-voice-cache")) / "duplex"

COMPLETE = [
    "How much for that axe?", "Do you sell arrows here?", "Where can I find the healer?",
    "Can you mend my boots?", "What is the news from the capital?", "I need a new helmet.",
    "Is the bridge to the north still open?", "Have you seen a tall man with a red cloak?",
    "Good morning to you.", "What do you have for sale today?", "I will take two of those.",
    "Could you sharpen this dagger for me?", "Who runs this town?", "Thanks, that is all I needed.",
    "Which road leads to the harbour?", "Tell me about the old mine.", "Is it safe to travel at night?",
    "How long will the repair take?", "That is too expensive.", "Can I pay you tomorrow?",
    "What happened to your arm?", "I am looking for work.", "Do you know where my brother went?",
    "Give me your best bow.", "Where do you get your iron?", "Are there wolves in the forest?",
    "I would like a room for the night.", "Farewell, friend.", "What is that smell?",
    "Can you teach me to fight?", "How far is it to the next village?", "Show me your armour.",
    "Why is the gate closed?", "Who made this ring?", "I lost my map somewhere near the river.",
    "Is the tavern open late?", "What do you want for the lantern?", "My horse threw a shoe.",
    "Do you buy old swords?", "Where is the market square?", "Hello there.", "Nice weather today.",
    "What is your name?", "Can you read this letter for me?", "I want to sell these furs.",
]
SPLIT = [
    ("I would like to buy", "some rope and a torch."), ("Could you tell me where", "the temple is?"),
    ("I was wondering if", "you could help me."), ("Do you have any", "potions left?"),
    ("My sister asked me to", "pick up her order."), ("The thing I really need is", "a warm cloak."),
    ("Can you show me the", "cheapest spear you have?"), ("I think I will take the", "small one."),
    ("Last week I saw", "smoke over the hills."), ("How much would it cost to", "fix this chain mail?"),
    ("We are heading to", "the mountains tomorrow."), ("Is there a way to", "get across the lake?"),
    ("I need something for", "my cough."), ("Tell me more about", "the king's guard."),
    ("What I wanted to ask was", "whether you trade in gems."), ("If you have a", "hammer to spare, I'd buy it."),
    ("The old woman in the", "mill sent me."), ("Could I maybe get", "a discount?"),
]
BACKCHANNELS = ["uh-huh", "mm-hm", "yeah", "I see", "right", "wow", "okay", "sure", "oh really?", "yes",
                "hmm", "got it", "oh", "yeah yeah", "right, right", "ah"]
CUES = ["wait", "hold on", "stop", "sorry", "no, that's not what I meant", "hang on", "excuse me", "no no",
        "wait, wait", "actually", "no, listen"]
NPC_LINES = [
    "Ah, that is a fine question. The iron comes down from the hills every spring, and I pay the miners well "
    "for it, because bad iron makes a bad blade and a bad blade gets a man killed.",
    "Well, let me think. The road to the harbour runs past the old mill, then you cross the stone bridge and "
    "keep the river on your left until you smell the salt.",
    "Many years ago, when I was still an apprentice, a traveller came to this forge with a broken sword and a "
    "story about a beast in the northern caves. Nobody believed him at first.",
    "We have axes, spears, a few good shields and plenty of nails. Prices depend on the work, of course, and "
    "on whether you are paying in coin or in trade.",
    "The repair will take two days at least. The rivets are rusted through and the leather straps need to be "
    "replaced before the plates will sit right again.",
    "Good day to you, traveller. It has been a quiet morning, though the guards say there was trouble on the "
    "east road last night. Keep your wits about you.",
    "My father built this forge with his own hands. He used to say that fire is patient but never forgiving, "
    "and I have found that to be true every single day since.",
    "That one costs thirty silver. I could let it go for twenty five if you bring me some charcoal from the "
    "burners in the valley, they owe me a cart.",
]
FILLER = ["a", "the", "and", "to", "of", "i", "you", "it", "is", "what", "for", "on", "that", "in", "we",
          "sword", "how", "can", "there", "her", "uh", "then", "are", "do", "be", "no", "yeah"]
PLAYER_TEXTS: dict[str, list[str]] = {  # what player speakers say, by kind
    "complete": COMPLETE, "first": [a for a, _ in SPLIT], "second": [b for _, b in SPLIT],
    "backchannel": BACKCHANNELS, "cue": CUES,
}

TRAIN_VOICES = [
    "en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbcwmd",
]
TRAIN_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "f4", "Andy", "Annie", "Alex", "Paul",
                  "Steph", "Michael", "Linda", "Mr_Serious", "grandpa", "klatt3", "Denis", "Gene"]
HELDOUT_VOICES = [("en-gb-x-gbclan", "m7"), ("en-gb-x-gbclan", "f5"), ("en-us", "Robert"), ("en-gb", "Tweaky")]
NPC_VOICES = [("en-gb", "m4"), ("en-us", "m7"), ("en-gb-scotland", "m2"), ("en-us", "f2"), ("en-gb-x-rp", "m1")]


@dataclass(frozen=True)
class Clip:
    """A synthesised utterance: speech trimmed to its extent (int16 at 16 kHz)."""

    text: str
    pcm: np.ndarray


def decode_wav(data: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(data)) as w:
        sr = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768.0
    if sr != SAMPLE_RATE:
        x = soxr.resample(x, sr, SAMPLE_RATE)
    return x


def trim_silence(x: np.ndarray) -> np.ndarray:
    """Cut leading/trailing silence (10 ms frames 40 dB below the loudest), keeping 10 ms either side."""
    hop = 160
    n = len(x) // hop
    db = 10 * np.log10(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-10)
    on = np.flatnonzero(db > db.max() - 40.0)
    if on.size == 0:
        return x
    return x[max(0, (on[0] - 1) * hop) : (on[-1] + 2) * hop]


def espeak(text: str, voice: str, variant: str, rate: int, pitch: int) -> np.ndarray:
    """One utterance from the espeak-ng command line, float at 16 kHz."""
    key = hashlib.sha1(f"{text}|{voice}|{variant}|{rate}|{pitch}".encode()).hexdigest()[:16]
    path = CACHE / "espeak" / f"{key}.npy"
    if path.exists():
        return np.load(path)
    out = subprocess.run(
        ["espeak-ng", "-v", f"{voice}+{variant}", "-s", str(rate), "-p", str(pitch), "--stdout", text],
        check=True, capture_output=True,
    ).stdout
    x = trim_silence(decode_wav(out)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


def festival(texts: list[str]) -> dict[str, np.ndarray]:
    """Utterances in festival's kal_diphone voice, all in one festival process (its start-up is slow)."""
    folder = CACHE / "festival"
    folder.mkdir(parents=True, exist_ok=True)
    names = {t: folder / f"{hashlib.sha1(t.encode()).hexdigest()[:16]}.wav" for t in texts}
    todo = [t for t, p in names.items() if not p.exists()]
    if todo:
        # through a file: festival --batch reads no script from stdin (it silently made nothing)
        script = folder / f"batch-{os.getpid()}.scm"
        script.write_text("".join(f'(utt.save.wave (utt.synth (Utterance Text "{t.replace(chr(34), "")}")) '
                                  f'"{names[t]}" (quote riff))\n' for t in todo))
        subprocess.run(["festival", "--batch", str(script)], check=True, capture_output=True)
        script.unlink()
    return {t: trim_silence(decode_wav(p.read_bytes())).astype(np.float32) for t, p in names.items() if p.exists()}


class Bank:
    """Player and NPC utterances for one voice split ("train" or "heldout")."""

    def __init__(self, split: str, rng: np.random.Generator, per_text: int = 3) -> None:
        self.split = split
        fest = festival(sorted({t for ts in PLAYER_TEXTS.values() for t in ts})) if split == "train" else {}
        self.player: dict[str, list[list[Clip]]] = {}
        # One list per (voice, rate, pitch) "speaker", so a dialogue keeps one player voice throughout.
        self.speakers: list[dict[str, list[Clip]]] = _espeak_speakers(split, rng, per_text)
        if fest:
            self.speakers.append({k: [Clip(t, fest[t]) for t in ts if t in fest] for k, ts in PLAYER_TEXTS.items()})
        self.npc = [Clip(t, espeak(t, v, var, int(rng.integers(140, 180)), int(rng.integers(30, 60))))
                    for t in NPC_LINES for v, var in NPC_VOICES[:3 if split == "train" else 5]]
        self.second = {a: b for a, b in SPLIT}


def _espeak_speakers(split: str, rng: np.random.Generator, per_text: int) -> list[dict[str, list[Clip]]]:
    """The eSpeak NG player speakers of ``split``: 24 in random train voices, or one per held-out voice."""
    if split == "train":
        voices = [(v, var) for v in TRAIN_VOICES for var in TRAIN_VARIANTS]
        return [_espeak_speaker(*voices[int(rng.integers(len(voices)))], rng, per_text) for _ in range(24)]
    return [_espeak_speaker(voice, variant, rng, per_text) for voice, variant in HELDOUT_VOICES]


def _espeak_speaker(voice: str, variant: str, rng: np.random.Generator, per_text: int) -> dict[str, list[Clip]]:
    """One player speaker: a random rate and pitch, and its clips of each kind of text."""
    rate, pitch = int(rng.integers(120, 200)), int(rng.integers(20, 80))
    return {kind: [Clip(t, espeak(t, voice, variant, rate, pitch)) for t in _speaker_texts(kind, ts, rng, per_text)]
            for kind, ts in PLAYER_TEXTS.items()}


def _speaker_texts(kind: str, texts: list[str], rng: np.random.Generator, per_text: int) -> list[str]:
    """Which texts of a kind one speaker says: every first half, backchannel and cue; a random
    ``per_text * 6`` of the complete sentences and second halves."""
    if kind in ("first", "backchannel", "cue"):
        return texts
    return list(rng.choice(texts, min(per_text * 6, len(texts)), False))


@dataclass
class Segment:
    start: float
    end: float
    role: str  # part | end | backchannel | interruption | noise
    text: str


@dataclass
class Dialogue:
    """One rendered dialogue: features and labels per chunk (label -1 = not applicable)."""

    features: np.ndarray  # (T, N_FEATURES)
    shift: np.ndarray  # (T,) 0/1/-1
    soon: np.ndarray
    over: np.ndarray  # 0 none / 1 backchannel / 2 interruption / -1
    player: np.ndarray


def _room(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """A synthetic room impulse response: direct path plus exponentially decaying noise."""
    n = max(int(rt60 * SAMPLE_RATE), 64)
    t = np.arange(n) / SAMPLE_RATE
    h = rng.standard_normal(n) * np.exp(-6.9 * t / rt60) * 0.3
    h[0] = 1.0
    return (h / np.sqrt(np.sum(h**2))).astype(np.float32)


def room_noise(rng: np.random.Generator, n: int, level_db: float) -> np.ndarray:
    """White, pink-ish or brown-ish noise at ``level_db`` dBFS."""
    x = rng.standard_normal(n)
    kind = rng.integers(3)
    if kind == 1:
        x = lfilter([1.0], [1.0, -0.9], x)
    elif kind == 2:
        x = lfilter([1.0], [1.0, -0.99], x)
    x = x / (np.std(x) + 1e-9)
    return (x * 10 ** (level_db / 20)).astype(np.float32)


def _burst(rng: np.random.Generator) -> np.ndarray:
    """A breath, rustle or knock: band-limited noise 0.1-0.5 s with a soft envelope."""
    n = int(rng.uniform(0.1, 0.5) * SAMPLE_RATE)
    x = lfilter([1.0, -rng.uniform(0.0, 0.95)], [1.0, -rng.uniform(0.0, 0.9)], rng.standard_normal(n))
    env = np.sin(np.linspace(0, np.pi, n)) ** rng.uniform(0.5, 3)
    x = x * env / (np.std(x) + 1e-9)
    return (x * 10 ** (rng.uniform(-45, -22) / 20)).astype(np.float32)


def _corrupt(words: list[str], rng: np.random.Generator) -> list[str]:
    """The fast recogniser's errors: most words misheard, short cue words more often right."""
    cue = {"wait", "stop", "hold", "no", "sorry", "hang", "actually"}
    out = []
    for w in words:
        keep = 0.7 if w in cue else 0.4
        if rng.random() < keep:
            out.append(w)
        elif rng.random() < 0.8:
            out.append(str(rng.choice(FILLER)))
    return out


Script = tuple[list[Segment], list[tuple[float, np.ndarray]], list[tuple[int, int, Clip]], float]


@dataclass
class _Timeline:
    """The player's side of a dialogue being scripted: one speaker's segments and their audio."""

    spk: dict[str, list[Clip]]
    rng: np.random.Generator
    segs: list[Segment]
    audio: list[tuple[float, np.ndarray]]

    def say(self, kind: str, role: str, at: float, clip: Clip | None = None) -> float:
        """The player says ``clip`` (else a random clip of ``kind``) from ``at``; returns when it ends."""
        clip = clip or self.spk[kind][int(self.rng.integers(len(self.spk[kind])))]
        end = at + len(clip.pcm) / SAMPLE_RATE
        self.segs.append(Segment(at, end, role, clip.text))
        self.audio.append((at, clip.pcm))
        return end


def _script(rng: np.random.Generator, bank: Bank) -> Script:
    """A random dialogue timeline: player segments with their audio, NPC lines as (start chunk, stop chunk,
    clip), and the length in seconds."""
    player = _Timeline(bank.speakers[int(rng.integers(len(bank.speakers)))], rng, [], [])
    t = float(rng.uniform(0.3, 1.5))
    mode = rng.random()
    if mode < 0.12:  # nobody talks to the NPC (maybe it is reciting; only its echo and noise are heard)
        npc = _npc_alone(rng, bank)
        return player.segs, player.audio, npc, 10.0 if not npc else (npc[0][1] + 3) * CHUNK_SECONDS
    if mode < 0.85:  # a player turn first
        t = _player_turn(player, bank, t)
    c0 = int(np.ceil(t / CHUNK_SECONDS))
    line = bank.npc[int(rng.integers(len(bank.npc)))]
    c1 = c0 + int(np.ceil(len(line.pcm) / CHUNK_SAMPLES))
    t_line = c0 * CHUNK_SECONDS
    what = rng.random()
    if what < 0.4:  # backchannels over the NPC
        _backchannels(player, t_line, c1)
    elif what < 0.8:  # an interruption: a cue then a new question, a cue alone, or a new question alone
        c1, t = _interruption(player, t_line, c1)
    end = max(c1 * CHUNK_SECONDS, t) + float(rng.uniform(0.6, 2.0))
    return player.segs, player.audio, [(c0, c1, line)], end


def _npc_alone(rng: np.random.Generator, bank: Bank) -> list[tuple[int, int, Clip]]:
    """No player: sometimes an NPC line (start chunk, stop chunk, clip), sometimes nothing at all."""
    npc = []
    if rng.random() < 0.4:
        c0 = int(rng.integers(2, 8))
        line = bank.npc[int(rng.integers(len(bank.npc)))]
        npc.append((c0, c0 + int(np.ceil(len(line.pcm) / CHUNK_SAMPLES)), line))
    return npc


def _player_turn(player: _Timeline, bank: Bank, t: float) -> float:
    """A player turn from ``t``: a complete sentence or one cut mid-phrase with a pause, sometimes followed
    by another sentence; returns when the NPC may start (after the gap)."""
    rng = player.rng
    if rng.random() < 0.6:
        t = player.say("complete", "end", t)
    else:
        first = player.spk["first"][int(rng.integers(len(player.spk["first"])))]
        t = player.say("first", "part", t, first)
        pause = float(rng.uniform(0.3, 1.8))
        seconds = [c for c in player.spk["second"] if c.text == bank.second[first.text]] or player.spk["second"]
        t = player.say("second", "end", t + pause, seconds[0])
    gap = float(rng.uniform(0.2, 1.6))
    if rng.random() < 0.15:  # the player adds a sentence after a short gap: still their turn
        player.segs[-1].role = "part"
        t = player.say("complete", "end", t + float(rng.uniform(0.2, 0.6)))
    return t + gap


def _backchannels(player: _Timeline, t_line: float, c1: int) -> None:
    """One or two backchannels over the NPC's line (which starts at ``t_line`` and stops at chunk ``c1``)."""
    rng = player.rng
    at = t_line + float(rng.uniform(0.8, 2.5))
    for _ in range(int(rng.integers(1, 3))):
        if at > c1 * CHUNK_SECONDS - 1.0:
            break
        at = player.say("backchannel", "backchannel", at) + float(rng.uniform(1.0, 2.5))


def _interruption(player: _Timeline, t_line: float, c1: int) -> tuple[int, float]:
    """The player interrupts the NPC's line; returns the chunk the NPC stops at and when the player is done."""
    rng = player.rng
    at = t_line + float(rng.uniform(0.8, 4.0))
    style = rng.random()
    onset = at
    if style < 0.75:  # a cue word first
        at = player.say("cue", "interruption", at) + float(rng.uniform(0.05, 0.3))
    if style >= 0.25:  # then (or only) a new question
        at = player.say("complete", "interruption", at)
    player.segs[-1].role = "end_interruption"
    stop = int(np.ceil(onset / CHUNK_SECONDS)) + int(rng.integers(1, 4))
    return min(c1, stop), at


def render(rng: np.random.Generator, bank: Bank) -> Dialogue:
    """Script, mix, and run one dialogue through the echo canceller, VAD and feature extractor."""
    segs, clips, npc_lines, dur = _script(rng, bank)
    n_chunks = int(np.ceil(dur / CHUNK_SECONDS))
    n = n_chunks * CHUNK_SAMPLES
    player = np.zeros(n, np.float32)
    gain = 10 ** (rng.uniform(-14, 0) / 20)
    room = _room(rng, float(rng.uniform(0.05, 0.5))) if rng.random() < 0.5 else None
    for (at, pcm) in clips:
        a = int(at * SAMPLE_RATE)
        x = pcm if room is None else fftconvolve(pcm, room)[: len(pcm) + 1600]
        b = min(n, a + len(x))
        player[a:b] += gain * x[: b - a]
    out = np.zeros(n, np.float32)
    npc_on = np.zeros(n_chunks, bool)
    for c0, c1, clip in npc_lines:
        c1 = min(c1, n_chunks)
        seg = clip.pcm[: (c1 - c0) * CHUNK_SAMPLES]
        out[c0 * CHUNK_SAMPLES : c0 * CHUNK_SAMPLES + len(seg)] = seg * 0.7
        npc_on[c0:c1] = True
    # The loudspeaker heard back: delay 0-250 ms, gain up to 1, a room; sometimes a headset (no echo).
    echo = np.zeros(n, np.float32)
    if rng.random() < 0.85:
        delay = int(rng.uniform(0.0, 0.25) * SAMPLE_RATE)
        h = _room(rng, float(rng.uniform(0.05, 0.6)))
        e = fftconvolve(out, h)[:n] * rng.uniform(0.05, 1.0)
        echo[delay:] = e[: n - delay]
    mic = player + echo + room_noise(rng, n, float(rng.uniform(-75, -40)))
    for _ in range(int(rng.poisson(1.5))):
        b = _burst(rng)
        a = int(rng.integers(0, max(1, n - len(b))))
        mic[a : a + len(b)] += b[: n - a]
    mic16, out16 = to_int16(mic), to_int16(out)

    aec, vad, feats = EchoCanceller(), VoiceActivity(), DuplexFeatures()
    x = np.zeros((n_chunks, N_FEATURES), np.float32)
    partial_words = _partials(segs, n_chunks, rng)
    for c in range(n_chunks):
        sl = slice(c * CHUNK_SAMPLES, (c + 1) * CHUNK_SAMPLES)
        played = out16[sl]
        clean = aec.process(mic16[sl], played)
        probs = vad.process(clean)
        elapsed = 0.0
        for c0, c1, _ in npc_lines:
            if c0 <= c < c1:
                elapsed = (c - c0) * CHUNK_SECONDS
        x[c] = feats.step(mic16[sl], clean, played, probs, aec.stats, bool(npc_on[c]), elapsed, partial_words[c])
    return Dialogue(x, *_labels(segs, npc_on))


def _partials(segs: list[Segment], n_chunks: int, rng: np.random.Generator) -> list[str]:
    """The simulated fast transcript at the end of each chunk (reset when a new group of speech starts)."""
    groups: list[list[Segment]] = []
    for s in segs:
        if s.role == "noise":
            continue
        if groups and _continues(groups[-1][-1], s):
            groups[-1].append(s)
        else:
            groups.append([s])
    timed = _heard_words(groups, rng)
    return [_transcript_at(timed, (c + 1) * CHUNK_SECONDS) for c in range(n_chunks)]


def _continues(last: Segment, s: Segment) -> bool:
    """Whether ``s`` is heard in the same transcript as ``last``: the rest of a turn after a part of it, or the
    question after an interruption's cue word."""
    return last.role == "part" or (last.role == "interruption" and s.role.endswith("interruption"))


def _heard_words(groups: list[list[Segment]], rng: np.random.Generator) -> list[tuple[float, float, str]]:
    """(group start, word time, word) for every word the fast recogniser gets, spread over each segment and
    revealed 0.15 s late."""
    timed: list[tuple[float, float, str]] = []
    for g in groups:
        for s in g:
            ws = [w.strip(",.?!").lower() for w in s.text.split()]
            heard = _corrupt(ws, rng)
            for i, w in enumerate(heard):
                timed.append((g[0].start, s.start + (i + 1) / max(len(heard), 1) * (s.end - s.start) + 0.15, w))
    return timed


def _transcript_at(timed: list[tuple[float, float, str]], t: float) -> str:
    """The words of the latest group of speech started by ``t`` that are revealed by then."""
    started = [g0 for g0, _, _ in timed if g0 <= t]
    if not started:
        return ""
    g0 = max(started)
    return " ".join(w for s0, tw, w in timed if s0 == g0 and tw <= t)


def _labels(segs: list[Segment], npc_on: np.ndarray) -> tuple[np.ndarray, ...]:
    n = len(npc_on)
    shift = np.zeros(n, np.int64)
    soon = np.zeros(n, np.int64)
    over = np.full(n, -1, np.int64)
    player = np.zeros(n, np.int64)
    ends = [s.end for s in segs if s.role in ("end", "end_interruption")]
    for c in range(n):
        t0, t1 = c * CHUNK_SECONDS, (c + 1) * CHUNK_SECONDS
        active = [s for s in segs if s.start < t1 - 0.04 and s.end > t0 + 0.04]
        player[c] = bool(active)
        if npc_on[c]:
            shift[c] = soon[c] = -1
            over[c] = _over_label(active)
            continue
        shift[c] = _shift_label(segs, ends, npc_on, c)
        soon[c] = int(any(t1 - 0.06 < e <= t1 + 0.4 for e in ends) and bool(active))
    return shift, soon, over, player


def _over_label(active: list[Segment]) -> int:
    """While the NPC speaks: 2 if the player interrupts, 1 if they backchannel, else 0."""
    roles = {s.role for s in active}
    if any(r.endswith("interruption") for r in roles):
        return 2
    return 1 if "backchannel" in roles else 0


def _shift_label(segs: list[Segment], ends: list[float], npc_on: np.ndarray, c: int) -> int:
    """1 if the turn is over at the end of chunk ``c``: the player's last turn ended (within 2.5 s), and
    neither they nor the NPC has spoken since."""
    t1 = (c + 1) * CHUNK_SECONDS
    done = [e for e in ends if e <= t1 - 0.06]
    if not done:
        return 0
    e = max(done)
    later_speech = any(s.start > e - 0.01 and s.start < t1 for s in segs)
    npc_since = npc_on[int(e / CHUNK_SECONDS) : c].any()
    return int(not later_speech and not npc_since and t1 - e <= 2.5)
