"""Train the player-tone model on RAVDESS actors 01-12 and synthetic plain speech, validated speaker-independently.

    python -m npc_voice.train.emotion [--data ../shared/eval/real/emotion] [--out models/emotion]

1. Speakers: the 12 RAVDESS actors (acted emotions, one studio) and synthetic speakers saying everyday
   sentences in a plain voice (``train.voices``: eSpeak NG and festival voices, labelled neutral), because
   a player is mostly not acting anything and RAVDESS alone taught the model that any unfamiliar voice is
   emotional.
2. Every utterance goes through the run-time path: 200 ms int16 chunks, an energy voice-activity flag per
   chunk (with a hang-over, like the engine's VAD), ``ProsodyTracker`` fed chunk by chunk. Each speaker is
   recorded clean and in a few simulated sessions through another channel (``train.channel``: a microphone's
   colour, a room's reverberation, a phone line, noise, a level from -42 to -10 dBFS, a small speed change).
   All utterances of a speaker in one session share that channel, as a player's share their headset.
3. Speaker-independent cross-validation: 4 folds of 3 actors (both sexes in each) and a quarter of the
   synthetic speakers; the held-out speakers never touch training. Each training sample sees a speaker
   baseline built from 0..12 of that speaker's other utterances in the same session plus itself
   (``model_input``), so the model works from the first utterance on. Held-out figures are given *cold*
   (a session's first utterance) and *warm* (10 other utterances heard before).
4. The shipped model is an ensemble trained on everything; its calibration for ordinary conversation
   (``ToneCalibration``: natural class priors, unsure -> neutral) is applied to every figure reported, and the
   acted-speech figures are also given without it.
5. Natural speech: the shipped model is played through the engine's path (silero voice activity,
   ``PlayerTone``, ``event_for``) over ``../shared/eval/real/phone_call``, ``real/read_speech`` and the dev
   bench voices, and the report gives how many turns were read as angry / as any strong emotion
   (``bench.natural_tone``). None of that audio is used in training.
Writes ``tone.pt``, ``tone.json``, ``report.json``, ``report.md`` and confusion PNGs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
import wave
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from npc_voice.audio.format import SAMPLE_RATE, to_float
from npc_voice.data import shared_eval_dir
from npc_voice.features.asr import DEFAULT_RECOGNISER, AsrModels
from npc_voice.features.prosody import BASELINE_INDEX, FEATURE_NAMES, ProsodyTracker, chunks
from npc_voice.model.emotion import (
    CALIBRATION,
    CLASSES,
    MODEL_DIR,
    ToneModel,
    ToneNet,
    model_input,
    n_inputs,
    novelty_stats,
    verdict,
)
from npc_voice.model.voice_tone import VoiceToneModel, mix
from npc_voice.train import channel as channels
from npc_voice.train import voices

DEFAULT_DATA = shared_eval_dir() / "real" / "emotion"
RAVDESS = {1: "neutral", 2: "calm", 3: "happy", 4: "sad", 5: "angry", 6: "fearful", 7: "disgust",
           8: "surprised"}
TRAIN_CLASS = {"neutral": "neutral", "calm": "neutral", "happy": "happy", "sad": "sad", "angry": "angry",
               "fearful": "fearful", "surprised": "surprised"}  # disgust: arousal unclear, category absent
HIGH_AROUSAL = {"happy", "angry", "fearful", "surprised"}
LOW_AROUSAL = {"neutral", "calm", "sad"}
FOUR = {"neutral": "neutral", "calm": "neutral", "happy": "happy", "sad": "sad", "angry": "angry"}
FOLDS = ((1, 2, 3), (4, 5, 6), (7, 8, 9), (10, 11, 12))  # odd actors male, even female
ROW_LABELS = tuple(RAVDESS.values())
SYNTH_BASE = 100  # synthetic speakers are numbered from here (actors are 1-24)
LEAD_S = 0.4  # the channel's noise before each utterance: the VAD flag and the tracker see a real onset
VOICE_RECOGNISER = DEFAULT_RECOGNISER  # the voice read learns this recogniser's encoder states
VOICE_DECAY = 1e-2  # L2 on the voice read's weights: 768 inputs, ~1,000 clips per speaker group; keep it plain
VOICE_STEPS = 400  # full-batch Adam steps for the voice read (a convex problem: it converges well before)


@dataclass(frozen=True)
class Clip:
    """One utterance of one speaker: a RAVDESS file or a synthetic sentence (``pcm`` set)."""

    path: Path | None
    actor: int
    emotion: str
    strong: bool
    pcm: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else f"synth-{self.actor}-{zlib.crc32(self.pcm.tobytes())}"

    def audio(self) -> np.ndarray:
        return self.pcm if self.pcm is not None else read_wav(self.path)  # type: ignore[arg-type]


def list_clips(data: Path) -> list[Clip]:
    """RAVDESS file names: modality-channel-emotion-intensity-statement-repetition-actor.

    The actor is the folder's (the speaker-independent split is by folder), and a file whose
    audio repeats an earlier one is skipped: the shared copy has one clip twice under two actor
    numbers, which would leak a clip across the split.
    """
    out, seen = [], set()
    # Files named for their own folder's actor first, so a stray copy is the one skipped.
    for p in sorted(data.glob("Actor_*/*.wav"), key=lambda p: (p.stem[-2:] != p.parent.name[-2:], p)):
        digest = hashlib.sha1(p.read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        f = [int(x) for x in p.stem.split("-")]
        out.append(Clip(p, int(p.parent.name.split("_")[1]), RAVDESS[f[2]], f[3] == 2))
    return out


def synthetic_clips(n_espeak: int, n_festival: int, per_speaker: int, seed: int) -> list[Clip]:
    """Plain speech of synthetic speakers (``train.voices``), labelled neutral."""
    out = []
    speakers = voices.speakers(n_espeak, n_festival, seed)
    for i, sp in enumerate(tqdm(speakers, desc="synthetic speakers", unit="speaker")):
        for pcm in voices.render(sp, voices.sentences_for(i, per_speaker, seed)):
            out.append(Clip(None, SYNTH_BASE + i, "neutral", False, pcm))
    return out


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        if w.getframerate() != SAMPLE_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16 kHz mono int16")
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def session_channel(actor: int, session: int) -> channels.Channel:
    """Session 0 is the recording as it is; the others go through a random player set-up."""
    if session == 0:
        return channels.CLEAN
    return channels.random_channel(np.random.default_rng(1000 * actor + session))


def vad_flags(parts: list[np.ndarray], rng: np.random.Generator) -> list[bool]:
    """Chunk speech flags from energy, widened by a random hang-over like a real VAD's."""
    db = np.array([10 * np.log10(np.mean(to_float(c) ** 2) + 1e-12) for c in parts])
    floor = np.percentile(db, 10)
    speech = db > max(floor + 6.0, db.max() - 30.0)
    idx = np.nonzero(speech)[0]
    flags = speech.copy()
    if idx.size:
        lo = max(0, idx[0] - int(rng.integers(0, 2)))
        hi = min(len(parts), idx[-1] + 1 + int(rng.integers(0, 4)))
        flags[lo:hi] = True  # short gaps inside the stretch stay speech, as the engine's VAD holds them
    return flags.tolist()


_ASR: AsrModels | None = None  # one recogniser per worker process


def clip_features(clip: Clip, session: int, voice: bool = True) -> tuple[np.ndarray | None, float, np.ndarray]:
    """The utterance vector of one clip in one session, computed chunk by chunk, its speech seconds, and the
    recogniser's pooled encoder states of the same audio (``Read.voice``; empty without ``voice``)."""
    global _ASR
    seed = zlib.crc32(f"{clip.name}/{session}".encode())
    pcm = channels.apply(clip.audio(), session_channel(clip.actor, session), seed, lead_s=LEAD_S)
    parts = chunks(pcm)
    tracker = ProsodyTracker()
    for part, flag in zip(parts, vad_flags(parts, np.random.default_rng(seed)), strict=True):
        tracker.push(part, flag)
    seconds = tracker.speech_seconds
    if not voice:
        return tracker.end_utterance(), seconds, np.zeros(0, np.float32)
    if _ASR is None:
        _ASR = AsrModels(recogniser=VOICE_RECOGNISER)
    heard = _ASR.voice(pcm)
    assert heard is not None, VOICE_RECOGNISER
    return tracker.end_utterance(), seconds, heard


def _extract(job: tuple[list[Clip], int, bool]) -> list[tuple[np.ndarray | None, float, np.ndarray]]:
    torch.set_num_threads(1)
    clips, session, voice = job
    return [clip_features(c, session, voice) for c in clips]


@dataclass
class Table:
    """All clip-session feature rows with their labels."""

    x: np.ndarray  # (n, n_features)
    actor: np.ndarray  # speaker: RAVDESS actor, or SYNTH_BASE + i
    session: np.ndarray
    emotion: np.ndarray  # RAVDESS label ("neutral" for synthetic speech)
    cls: np.ndarray  # index into CLASSES, -1 for disgust
    high: np.ndarray  # 1 high arousal, 0 low, -1 unknown
    seconds: np.ndarray  # speech seconds the tracker counted (the calibration leans short readings to neutral)
    voice: np.ndarray  # (n, 2 x encoder width): the recogniser's pooled encoder states (``Read.voice``)

    @property
    def synthetic(self) -> np.ndarray:
        return self.actor >= SYNTH_BASE

    def subset(self, rows: np.ndarray) -> Table:
        return Table(self.x[rows], self.actor[rows], self.session[rows], self.emotion[rows], self.cls[rows],
                     self.high[rows], self.seconds[rows], self.voice[rows])


def build_table(clips: list[Clip], sessions: int, workers: int, synthetic_sessions: int | None = None,
                voices: bool = True) -> Table:
    """Feature rows of every clip in every session (RAVDESS: ``sessions``; synthetic: ``synthetic_sessions``);
    ``voices``: with the recogniser's encoder states (a Whisper encode per row)."""
    synth_s = sessions if synthetic_sessions is None else synthetic_sessions
    jobs = [([c for c in clips if c.actor == a], s, voices) for a in sorted({c.actor for c in clips})
            for s in range(synth_s if a >= SYNTH_BASE else sessions)]
    rows, meta, heard = [], [], []
    with ProcessPoolExecutor(workers) as pool:
        for (job_clips, s, _), feats in tqdm(zip(jobs, pool.map(_extract, jobs), strict=True), total=len(jobs),
                                          desc="features (speaker x session)", unit="job"):
            for c, (f, seconds, voice) in zip(job_clips, feats, strict=True):
                if f is None or not np.all(np.isfinite(f)):
                    continue
                rows.append(f)
                heard.append(voice)
                meta.append((c.actor, s, c.emotion, seconds))
    actor, session, emotion, seconds = (np.array(v) for v in zip(*meta, strict=True))
    cls = np.array([CLASSES.index(TRAIN_CLASS[e]) if e in TRAIN_CLASS else -1 for e in emotion])
    high = np.array([1 if e in HIGH_AROUSAL else 0 if e in LOW_AROUSAL else -1 for e in emotion])
    return Table(np.stack(rows).astype(np.float32), actor, session, emotion, cls, high, seconds.astype(np.float32),
                 np.stack(heard).astype(np.float32))


def save_table(t: Table, path: Path) -> None:
    np.savez_compressed(path, **{k: getattr(t, k) for k in TABLE_FIELDS})


def load_table(path: Path) -> Table:
    with np.load(path) as f:
        return Table(**{k: f[k] for k in TABLE_FIELDS})


TABLE_FIELDS = ("x", "actor", "session", "emotion", "cls", "high", "seconds", "voice")


def baseline_prior(t: Table) -> np.ndarray:
    """Population mean of the baseline features (per-speaker means averaged: every speaker counts once)."""
    per_actor = [t.x[t.actor == a][:, BASELINE_INDEX].mean(axis=0) for a in np.unique(t.actor)]
    return np.mean(per_actor, axis=0).astype(np.float32)


def class_prior(t: Table, rows: np.ndarray) -> np.ndarray:
    """The class frequencies of the training rows (what the ensemble's probabilities assume)."""
    counts = np.bincount(t.cls[rows][t.cls[rows] >= 0], minlength=len(CLASSES)).astype(np.float64)
    return counts / counts.sum()


def make_inputs(t: Table, rows: np.ndarray, prior: np.ndarray, rng: np.random.Generator,
                k_choices: tuple[int, ...]) -> np.ndarray:
    """Model inputs for ``rows``, each with a baseline from k other clips of its speaker's session."""
    out = np.zeros((rows.size, n_inputs()), dtype=np.float32)
    base = t.x[:, BASELINE_INDEX]
    groups: dict[tuple[int, int], np.ndarray] = {}
    for j, r in enumerate(rows):
        k = int(rng.choice(k_choices))
        total, n = np.zeros(len(BASELINE_INDEX)), 0
        if k:
            key = (int(t.actor[r]), int(t.session[r]))
            if key not in groups:
                groups[key] = np.nonzero((t.actor == key[0]) & (t.session == key[1]))[0]
            same = groups[key][groups[key] != r]
            pick = rng.choice(same, size=min(k, same.size), replace=False)
            total, n = base[pick].sum(axis=0), pick.size
        out[j] = model_input(t.x[r], total, n, prior)
    return out


TRAIN_K = (0, 0, 0, 1, 2, 3, 5, 8, 12)


BALANCE = 0.5  # class weights: 1/frequency to this power (0 = plain frequencies, 1 = every class weighs the same)


def class_weights(t: Table, rows: np.ndarray) -> np.ndarray:
    """Loss weights per class, so the many plain-speech rows do not drown the acted emotions."""
    freq = np.maximum(class_prior(t, rows), 1e-6)
    w = freq ** -BALANCE
    return w / (w * freq).sum()


def effective_prior(t: Table, rows: np.ndarray) -> np.ndarray:
    """The class prior the weighted loss trains towards (what the ensemble's probabilities assume)."""
    p = class_prior(t, rows) * class_weights(t, rows)
    return p / p.sum()


def train_net(t: Table, rows: np.ndarray, prior: np.ndarray, seed: int, epochs: int, hidden: int) -> ToneNet:
    """One ensemble member: fresh baselines drawn every epoch, label smoothing, input jitter, class weights."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = ToneNet(n_inputs(), hidden=hidden)
    x0 = make_inputs(t, rows, prior, rng, TRAIN_K)
    net.mean.copy_(torch.from_numpy(x0.mean(axis=0)))
    net.std.copy_(torch.from_numpy(x0.std(axis=0) + 1e-3))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    ce = nn.CrossEntropyLoss(weight=torch.from_numpy(class_weights(t, rows)).float(), label_smoothing=0.1,
                             ignore_index=-1)
    cls_t = torch.from_numpy(t.cls[rows]).long()
    high_t = torch.from_numpy(t.high[rows]).float()
    for epoch in range(epochs):
        x = torch.from_numpy(x0 if epoch == 0 else make_inputs(t, rows, prior, rng, TRAIN_K))
        net.train()
        for b in torch.randperm(rows.size).split(64):
            xb = x[b] + torch.randn_like(x[b]) * net.std * 0.1
            logits, ar = net(xb)
            known = high_t[b] >= 0
            loss = ce(logits, cls_t[b])
            if known.any():
                loss = loss + nn.functional.binary_cross_entropy_with_logits(ar[known], high_t[b][known])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    net.eval()
    return net


def train_voice(t: Table, rows: np.ndarray, seed: int, steps: int = VOICE_STEPS) -> VoiceToneModel:
    """The voice read: softmax regression (and an arousal logit) on standardised pooled encoder states, with the
    prosody ensemble's class weights and label smoothing; full batch."""
    torch.manual_seed(seed)
    v = t.voice[rows]
    mean, std = v.mean(axis=0), v.std(axis=0) + 1e-3
    x = torch.from_numpy((v - mean) / std)
    lin = nn.Linear(v.shape[1], len(CLASSES) + 1)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2)
    ce = nn.CrossEntropyLoss(weight=torch.from_numpy(class_weights(t, rows)).float(), label_smoothing=0.1,
                             ignore_index=-1)
    cls_t = torch.from_numpy(t.cls[rows]).long()
    high_t = torch.from_numpy(t.high[rows]).float()
    known = high_t >= 0
    for _ in range(steps):
        out = lin(x + torch.randn_like(x) * 0.1)
        loss = ce(out[:, :-1], cls_t) + nn.functional.binary_cross_entropy_with_logits(out[known, -1], high_t[known])
        loss = loss + VOICE_DECAY * lin.weight.pow(2).sum() / v.shape[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = lin.weight.detach().numpy().T.copy()
    return VoiceToneModel(mean.astype(np.float32), std.astype(np.float32), w.astype(np.float32),
                          lin.bias.detach().numpy().astype(np.float32), VOICE_RECOGNISER)


def predict(nets: list[ToneNet], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw ensemble outputs: category probabilities and P(high arousal)."""
    with torch.inference_mode():
        xt = torch.from_numpy(x)
        probs = sum(torch.softmax(n(xt)[0], dim=1) for n in nets) / len(nets)
        high = sum(torch.sigmoid(n(xt)[1]) for n in nets) / len(nets)
    return probs.numpy(), high.numpy()


def save_model(nets: list[ToneNet], voice: VoiceToneModel | None, t: Table, rows: np.ndarray, prior: np.ndarray,
               out: Path, extra: dict | None = None) -> None:
    """Write ``tone.pt``, ``tone.json`` and ``voice_tone.npz`` (everything ``ToneModel`` loads) for an ensemble
    and a voice read trained on ``rows``."""
    out.mkdir(parents=True, exist_ok=True)
    if voice is not None:
        voice.save(out)
    state = {f"{m}.{k}": v for m, net in enumerate(nets) for k, v in net.state_dict().items()}
    torch.save(state, out / "tone.pt")
    x = make_inputs(t, rows, prior, np.random.default_rng(0), TRAIN_K)
    z = np.clip((x - nets[0].mean.numpy()) / nets[0].std.numpy(), -nets[0].clip, nets[0].clip)
    meta = {"features": FEATURE_NAMES, "classes": CLASSES, "members": len(nets), "hidden": nets[0].head.in_features,
            "clip": nets[0].clip, "baseline_prior": prior.tolist(), "train_prior": effective_prior(t, rows).tolist(),
            "novelty": novelty_stats(z), **(extra or {})}
    (out / "tone.json").write_text(json.dumps(meta, indent=1))


READS = ("shipped", "prosody", "voice", "mixed")  # the readings the report compares


def read_rows(model: ToneModel, t: Table, rows: np.ndarray, k: int, seed: int, how: str = "shipped"
              ) -> tuple[np.ndarray, np.ndarray]:
    """Category index and P(high arousal) per row, as ``PlayerTone`` reads a final utterance with a k-utterance
    baseline and the turn's voice read (``shipped``); or uncalibrated, the acted-speech argmax, of the prosody
    ensemble alone, the voice read alone, or both ``mixed``."""
    x = make_inputs(t, rows, model.prior, np.random.default_rng(seed), (k,))
    if how == "shipped":
        est = [verdict(model, xi, float(s), True, v) for xi, s, v in zip(x, t.seconds[rows], t.voice[rows],
                                                                           strict=True)]
        return np.array([CLASSES.index(e.emotion) for e in est]), np.array([(e.arousal + 1) / 2 for e in est])
    probs, high = model.predict(x)
    if how != "prosody" and model.voice is not None:
        vp, vh = model.voice.predict(t.voice[rows])
        if how == "voice":
            probs, high = vp, vh
        else:
            share = model.calibration.voice_share
            mixed = [mix((p, h), (q, g), share) for p, h, q, g in zip(probs, high, vp, vh, strict=True)]
            probs, high = np.stack([m[0] for m in mixed]), np.array([m[1] for m in mixed])
    return probs.argmax(axis=1), high


def scores(t: Table, rows: np.ndarray, pred_cls: np.ndarray, high: np.ndarray) -> dict[str, float | int]:
    """The bench's figures: 4-class (neutral+calm/happy/sad/angry) and high-vs-low arousal accuracy."""
    pred = np.array([CLASSES[i] for i in pred_cls])
    emo = t.emotion[rows]
    four = np.array([e in FOUR for e in emo])
    four_hit = np.array([FOUR.get(p) == FOUR.get(e) for p, e in zip(pred, emo, strict=True)])
    known = t.high[rows] >= 0
    six = t.cls[rows] >= 0
    angry = pred == "angry"
    return {
        "four_class_accuracy": round(float(four_hit[four].mean()), 4), "four_class_n": int(four.sum()),
        "arousal_accuracy": round(float(((high > 0.5) == (t.high[rows] == 1))[known].mean()), 4),
        "arousal_n": int(known.sum()),
        "six_class_accuracy": round(float((pred_cls == t.cls[rows])[six].mean()), 4),
        "angry_recall": round(float(angry[emo == "angry"].mean()), 4) if (emo == "angry").any() else None,
        "angry_false_rate": round(float(angry[emo != "angry"].mean()), 4) if (emo != "angry").any() else None,
    }


def confusion(t: Table, rows: np.ndarray, pred_cls: np.ndarray) -> np.ndarray:
    m = np.zeros((len(ROW_LABELS), len(CLASSES)), dtype=int)
    for e, p in zip(t.emotion[rows], pred_cls, strict=True):
        m[ROW_LABELS.index(e), p] += 1
    return m


def plot_confusion(m: np.ndarray, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.2, 5.2), dpi=110)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            colour = "white" if norm[i, j] > 0.55 else "black"
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color=colour)
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=30)
    ax.set_yticks(range(len(ROW_LABELS)), ROW_LABELS)
    ax.set_xlabel("predicted (calibrated for conversation)")
    ax.set_ylabel("acted (RAVDESS)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def evaluate(t: Table, model: ToneModel, rows: np.ndarray, k: int, seed: int, how: str = "shipped"
             ) -> tuple[dict[str, float | int], np.ndarray, np.ndarray]:
    """Figures on ``rows`` with a k-utterance baseline, and the reading per row."""
    pred, high = read_rows(model, t, rows, k, seed, how)
    return scores(t, rows, pred, high), pred, high


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=MODEL_DIR)
    ap.add_argument("--sessions", type=int, default=5, help="recording conditions per actor (1 = clean only)")
    ap.add_argument("--synthetic", type=int, default=40, help="synthetic plain-speech speakers (eSpeak NG)")
    ap.add_argument("--festival", type=int, default=4, help="... and festival speakers (kal_diphone at speeds)")
    ap.add_argument("--per-speaker", type=int, default=14, help="sentences per synthetic speaker")
    ap.add_argument("--members", type=int, default=3, help="ensemble size")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-natural", action="store_true", help="skip the natural-speech figures")
    ap.add_argument("--table", type=Path, help="keep the feature rows in this .npz and reuse them (same options)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    started = time.time()
    args.out.mkdir(parents=True, exist_ok=True)

    clips = list_clips(args.data)
    if not clips:
        raise SystemExit(f"no RAVDESS clips under {args.data}")
    table_from = "built"
    if args.table is not None and args.table.exists():
        t = load_table(args.table)
        table_from = f"loaded from {args.table} (built by the same command earlier)"
    else:
        synth = synthetic_clips(args.synthetic, args.festival, args.per_speaker, args.seed) if args.synthetic else []
        t = build_table(clips + synth, args.sessions, args.workers, synthetic_sessions=3)
        if args.table is not None:
            save_table(t, args.table)
    print(f"{t.x.shape[0]} clip-session rows: {len(clips)} RAVDESS clips x {args.sessions} sessions and "
          f"{int(t.synthetic.sum())} synthetic utterance-sessions")

    table_s = round(time.time() - started, 1)
    report: dict = {"command": "python -m npc_voice.train.emotion " + " ".join(argv or []),
                    "table": {"from": table_from, "seconds": table_s},
                    "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                    "calibration": {"natural_prior": CALIBRATION.natural_prior,
                                    "unsure_below": CALIBRATION.unsure_below,
                                    "unsure_below_voice": CALIBRATION.unsure_below_voice,
                                    "short_s": CALIBRATION.short_s},
                    "features": len(FEATURE_NAMES), "inputs": n_inputs(), "classes": CLASSES,
                    "voice_recogniser": VOICE_RECOGNISER, "voice_share": CALIBRATION.voice_share, "folds": []}
    clean = t.session == 0
    synth_ids = np.unique(t.actor[t.synthetic])
    pooled: dict[str, list[np.ndarray]] = {}
    for fold, held in enumerate(tqdm(FOLDS, desc="cross-validation folds", unit="fold")):
        held_synth = synth_ids[fold::len(FOLDS)]
        test = np.isin(t.actor, held) | np.isin(t.actor, held_synth)
        train_rows = np.nonzero(~test)[0]
        prior = baseline_prior(t.subset(train_rows))
        nets = [train_net(t, train_rows, prior, args.seed + 100 * fold + m, args.epochs, args.hidden)
                for m in range(args.members)]
        voice = train_voice(t, train_rows, args.seed + 100 * fold)
        with tempfile.TemporaryDirectory() as tmp:
            save_model(nets, voice, t, train_rows, prior, Path(tmp))
            model = ToneModel(Path(tmp))
        rows = np.nonzero(np.isin(t.actor, held) & clean)[0]
        runs = {"cold": evaluate(t, model, rows, 0, fold), "warm": evaluate(t, model, rows, 10, fold),
                **{f"raw_{how}": evaluate(t, model, rows, 0, fold, how) for how in READS[1:]}}
        cold, pred_cold = runs["cold"][0], runs["cold"][1]
        aug_rows = np.nonzero(np.isin(t.actor, held) & ~clean)[0]
        augmented = evaluate(t, model, aug_rows, 0, fold)[0] if aug_rows.size else None
        synth_rows = np.nonzero(np.isin(t.actor, held_synth))[0]
        synthetic = None
        if synth_rows.size:
            _, pred_s, _ = evaluate(t, model, synth_rows, 0, fold)
            synthetic = {"utterances": int(synth_rows.size),
                         "read_neutral": round(float(np.mean(pred_s == 0)), 4),
                         "read_angry": round(float(np.mean(pred_s == CLASSES.index("angry"))), 4)}
        name = "-".join(f"{a:02d}" for a in held)
        png = f"confusion_actors_{name}.png"
        plot_confusion(confusion(t, rows, pred_cold), f"held-out actors {name} (cold start): "
                       f"4-class {cold['four_class_accuracy']:.2f}, arousal {cold['arousal_accuracy']:.2f}",
                       args.out / png)
        report["folds"].append({"held_out_actors": list(held), "held_out_synthetic": [int(a) for a in held_synth],
                                **{mode: r[0] for mode, r in runs.items()}, "augmented_sessions_cold": augmented,
                                "synthetic_cold": synthetic, "confusion_png": png,
                                "confusion_cold": confusion(t, rows, pred_cold).tolist()})
        pooled.setdefault("rows", []).append(rows)
        for mode, (_, pred, high) in runs.items():
            pooled.setdefault(mode, []).append(pred)
            pooled.setdefault(f"{mode}_high", []).append(high)
        tqdm.write(f"fold {name}: " + " | ".join(f"{m} {r[0]}" for m, r in runs.items()) + f" | synthetic {synthetic}")

    rows = np.concatenate(pooled["rows"])
    overall = {mode: {**scores(t, rows, np.concatenate(pooled[mode]), np.concatenate(pooled[f"{mode}_high"])),
                      "baseline_clips": 10 if mode == "warm" else 0}
               for mode in pooled if mode != "rows" and not mode.endswith("_high")}
    oc = overall["cold"]
    plot_confusion(confusion(t, rows, np.concatenate(pooled["cold"])),
                   f"all 12 actors, each held out (cold): 4-class {oc['four_class_accuracy']:.2f}, "
                   f"arousal {oc['arousal_accuracy']:.2f}", args.out / "confusion_all.png")
    report["overall_pooled"] = overall

    prior = baseline_prior(t)
    all_rows = np.arange(t.x.shape[0])
    nets = [train_net(t, all_rows, prior, args.seed + 1000 + m, args.epochs, args.hidden)
            for m in tqdm(range(args.members), desc="final model (all speakers)", unit="net")]
    save_model(nets, train_voice(t, all_rows, args.seed + 1000), t, all_rows, prior, args.out, {
        "trained_on_actors": sorted(int(a) for a in np.unique(t.actor) if a < SYNTH_BASE),
        "synthetic_speakers": int(synth_ids.size)})
    report["train_seconds"] = round(time.time() - started, 1)
    if not args.no_natural:
        from npc_voice.bench.natural_tone import natural_report

        report["natural_speech"] = natural_report(ToneModel(args.out))
    report["total_seconds"] = round(time.time() - started, 1)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    (args.out / "report.md").write_text(markdown_report(report))
    print(json.dumps({"overall_pooled": overall, "natural_speech": report.get("natural_speech")}, indent=1))
    return 0


def table_note(r: dict) -> str:
    t = r.get("table", {"from": "built", "seconds": 0.0})
    return f"built in {t['seconds']} s" if t["from"] == "built" else t["from"]


def markdown_report(r: dict) -> str:
    cal = r["calibration"]
    lines = [
        "# Player tone model: speaker-independent validation on RAVDESS actors 01-12, and natural speech", "",
        f"Command: `{r['command'].strip()}` ({r['train_seconds']} s to train, {r['total_seconds']} s with the",
        f"natural-speech figures; the feature rows {table_note(r)}).",
        f"Two readers, mixed for a stretch's final verdict ({r['voice_share']} voice):",
        f"- *prosody*: an ensemble of MLPs over {r['features']} prosodic and spectral statistics (model input",
        f"  {r['inputs']}: features but absolute level, features minus the speaker's baseline, baseline confidence);",
        f"- *voice*: softmax regression over Whisper {r['voice_recogniser']}'s encoder states, mean and SD over the",
        "  utterance (``Read.voice``: the turn read computes them anyway).",
        "Each fold trains on 9 actors and three quarters of the synthetic speakers, tests on the 3 actors it never",
        "saw (clean recordings). Calibration for conversation (as shipped: every column but *raw*): natural",
        f"priors {list(cal['natural_prior'])}, unsure below {cal['unsure_below']} -> neutral"
        f" ({cal.get('unsure_below_voice', cal['unsure_below'])} for a verdict with the voice read).",
        "*Cold*: a session's first utterance. *Warm*: 10 other clips of the same actor heard before.",
        "*Raw*: cold, without the calibration (the acted-speech argmax) of each reader and of the mix.",
        "*Augmented*: the held-out actors through simulated other channels, cold. *Synthetic*: held-out synthetic",
        "speakers read as neutral.", "",
        "| held-out actors | 4-class cold | arousal cold | 6-class cold | 4-class warm | arousal warm |"
        " 4-class raw prosody | 4-class raw voice | 4-class raw mixed | arousal raw prosody |"
        " 4-class augm. | arousal augm. | synthetic neutral |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in r["folds"]:
        a = f["augmented_sessions_cold"] or {}
        s = f["synthetic_cold"] or {}
        actors = ", ".join(f"{x:02d}" for x in f["held_out_actors"])
        lines.append(f"| {actors} | {f['cold']['four_class_accuracy']:.3f}"
                     f" | {f['cold']['arousal_accuracy']:.3f} | {f['cold']['six_class_accuracy']:.3f}"
                     f" | {f['warm']['four_class_accuracy']:.3f} | {f['warm']['arousal_accuracy']:.3f}"
                     f" | {f['raw_prosody']['four_class_accuracy']:.3f} | {f['raw_voice']['four_class_accuracy']:.3f}"
                     f" | {f['raw_mixed']['four_class_accuracy']:.3f} | {f['raw_prosody']['arousal_accuracy']:.3f}"
                     f" | {a.get('four_class_accuracy', float('nan')):.3f}"
                     f" | {a.get('arousal_accuracy', float('nan')):.3f}"
                     f" | {s.get('read_neutral', float('nan')):.3f} |")
    o = r["overall_pooled"]
    lines += [
        f"| **all 12 (pooled)** | **{o['cold']['four_class_accuracy']:.3f}**"
        f" | **{o['cold']['arousal_accuracy']:.3f}** |"
        f" {o['cold']['six_class_accuracy']:.3f} | {o['warm']['four_class_accuracy']:.3f} |"
        f" {o['warm']['arousal_accuracy']:.3f} | {o['raw_prosody']['four_class_accuracy']:.3f} |"
        f" {o['raw_voice']['four_class_accuracy']:.3f} | {o['raw_mixed']['four_class_accuracy']:.3f} |"
        f" {o['raw_prosody']['arousal_accuracy']:.3f} | | | |", "",
        f"Arousal raw: voice {o['raw_voice']['arousal_accuracy']:.3f}, mixed {o['raw_mixed']['arousal_accuracy']:.3f}."
        f" Acted anger found (cold, pooled): {o['cold']['angry_recall']:.3f} of the angry clips; other clips read as"
        f" angry: {o['cold']['angry_false_rate']:.3f}.", "",
        "4-class: clips acted neutral, calm, happy, sad, angry; a hit when the predicted category (of six)",
        "is the same (neutral and calm are one). Arousal: all clips but disgust; happy, angry, fearful,",
        "surprised are high. Confusion matrices (cold): "
        + ", ".join(f"`{f['confusion_png']}`" for f in r["folds"]) + ", `confusion_all.png`.", "",
    ]
    nat = r.get("natural_speech")
    if nat:
        lines += [
            "## Natural speech (expected neutral or calm): the shipped model through the engine's path", "",
            "Per turn, what the game would have been told (`python -m npc_voice.bench.natural_tone`): *angry* = an",
            "`emotion` event \"angry\" with intensity >= 0.6 from the turn's start to 1 s after its end; *strong* =",
            "any category but neutral at that intensity. None of this audio is used in training.", "",
            "| set | sessions | turns | read angry | strong emotion | last reading per turn |",
            "|---|---|---|---|---|---|",
        ]
        for name, m in nat.items():
            last = ", ".join(f"{k} {v}" for k, v in m["last_reading"].items())
            lines.append(f"| {name} | {m['sessions']} | {m['turns']} | {m['angry_turns']} ({m['angry_rate']:.1%})"
                         f" | {m['strong_turns']} ({m['strong_rate']:.1%}) | {last} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
