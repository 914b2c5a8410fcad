"""Train the player-tone model on RAVDESS actors 01-12, validated speaker-independently.

    python -m npc_voice.train.emotion [--data ../shared/eval/real/emotion] [--out models/emotion]

1. Every clip goes through the run-time path: 200 ms int16 chunks, an energy voice-activity flag
   per chunk (with a hang-over, like the engine's VAD), ``ProsodyTracker`` fed chunk by chunk.
   Each actor is also recorded as a few simulated "sessions" with another microphone: a gain,
   a spectral tilt, a noise floor, sometimes a band limit, and a small speed change (which moves
   pitch and formants, a cheap stand-in for other voices). All clips of an actor in one session
   share that condition, as a player's utterances share their microphone.
2. Speaker-independent cross-validation: 4 folds of 3 actors (both sexes in each); the held-out
   actors' clips never touch training. Each training sample sees a speaker baseline built from
   0..12 of that actor's other clips in the same session (0 = a first utterance), so the model
   works both cold and once it has heard the player. Held-out figures are given cold (no
   baseline: what a one-utterance session gets) and warm (baseline from 10 other clips).
3. The shipped model is an ensemble trained on all 12 actors; CV figures describe the recipe.
Writes ``tone.pt``, ``tone.json``, ``report.json``, ``report.md`` and confusion PNGs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import wave
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
import torch
from scipy.signal import butter, lfilter, sosfilt
from torch import nn
from tqdm import tqdm

from npc_voice.audio.format import CHUNK_SAMPLES, SAMPLE_RATE, to_float, to_int16
from npc_voice.data import shared_eval_dir
from npc_voice.features.prosody import BASELINE_INDEX, FEATURE_NAMES, ProsodyTracker, chunks
from npc_voice.model.emotion import CLASSES, MODEL_DIR, ToneNet, model_input, n_inputs

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


@dataclass(frozen=True)
class Clip:
    path: Path
    actor: int
    emotion: str
    strong: bool


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


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        if w.getframerate() != SAMPLE_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16 kHz mono int16")
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def session_condition(actor: int, session: int) -> dict[str, float]:
    """Session 0 is the clean recording; the others simulate another microphone and voice."""
    if session == 0:
        return {"gain_db": 0.0, "tilt": 0.0, "noise_db": -120.0, "lowpass": 0.0, "speed": 1.0}
    rng = np.random.default_rng(1000 * actor + session)
    return {"gain_db": float(rng.uniform(-8, 6)), "tilt": float(rng.uniform(-0.6, 0.6)),
            "noise_db": float(rng.uniform(-80, -58)) if rng.random() < 0.8 else -120.0,
            "lowpass": float(rng.uniform(3400, 7000)) if rng.random() < 0.3 else 0.0,
            "speed": float(rng.uniform(0.94, 1.06))}


def apply_condition(pcm: np.ndarray, cond: dict[str, float], seed: int) -> np.ndarray:
    """Render a clip as heard through the session's simulated microphone."""
    x = to_float(pcm).astype(np.float64)
    if cond["speed"] != 1.0:
        x = soxr.resample(x, SAMPLE_RATE * cond["speed"], SAMPLE_RATE)
    if cond["tilt"]:
        x = lfilter([1.0, cond["tilt"]], [1.0], x) / (1.0 + abs(cond["tilt"]))
    if cond["lowpass"]:
        x = sosfilt(butter(6, cond["lowpass"], fs=SAMPLE_RATE, output="sos"), x)
    x = x * 10 ** (cond["gain_db"] / 20)
    if cond["noise_db"] > -100:
        rng = np.random.default_rng(seed)
        noise = lfilter([1.0], [1.0, -0.7], rng.standard_normal(x.size))  # pinkish: rooms hum low
        x = x + noise / noise.std() * 10 ** (cond["noise_db"] / 20)
    return to_int16(x)


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


def clip_features(clip: Clip, session: int) -> np.ndarray | None:
    """The utterance vector of one clip in one session, computed chunk by chunk."""
    cond = session_condition(clip.actor, session)
    seed = zlib.crc32(f"{clip.path.name}/{session}".encode())
    pcm = apply_condition(read_wav(clip.path), cond, seed)
    lead = np.zeros(CHUNK_SAMPLES * 2, dtype=np.int16)
    if cond["noise_db"] > -100:
        lead = apply_condition(lead, {**cond, "speed": 1.0}, seed + 1)
    parts = chunks(np.concatenate([lead, pcm]))
    tracker = ProsodyTracker()
    for part, flag in zip(parts, vad_flags(parts, np.random.default_rng(seed)), strict=True):
        tracker.push(part, flag)
    return tracker.end_utterance()


def _extract(job: tuple[list[Clip], int]) -> list[np.ndarray | None]:
    torch.set_num_threads(1)
    clips, session = job
    return [clip_features(c, session) for c in clips]


@dataclass
class Table:
    """All clip-session feature rows with their labels."""

    x: np.ndarray  # (n, n_features)
    actor: np.ndarray
    session: np.ndarray
    emotion: np.ndarray  # RAVDESS label
    cls: np.ndarray  # index into CLASSES, -1 for disgust
    high: np.ndarray  # 1 high arousal, 0 low, -1 unknown


def build_table(clips: list[Clip], sessions: int, workers: int) -> Table:
    jobs = [([c for c in clips if c.actor == a], s) for a in sorted({c.actor for c in clips})
            for s in range(sessions)]
    rows, meta = [], []
    with ProcessPoolExecutor(workers) as pool:
        for (job_clips, s), feats in tqdm(zip(jobs, pool.map(_extract, jobs), strict=True), total=len(jobs),
                                          desc="features (actor x session)", unit="job"):
            for c, f in zip(job_clips, feats, strict=True):
                if f is None or not np.all(np.isfinite(f)):
                    continue
                rows.append(f)
                meta.append((c.actor, s, c.emotion))
    actor, session, emotion = (np.array(v) for v in zip(*meta, strict=True))
    cls = np.array([CLASSES.index(TRAIN_CLASS[e]) if e in TRAIN_CLASS else -1 for e in emotion])
    high = np.array([1 if e in HIGH_AROUSAL else 0 if e in LOW_AROUSAL else -1 for e in emotion])
    return Table(np.stack(rows).astype(np.float32), actor, session, emotion, cls, high)


def baseline_prior(t: Table) -> np.ndarray:
    """Population mean of the baseline features (per-actor means averaged: every actor counts once)."""
    per_actor = [t.x[t.actor == a][:, BASELINE_INDEX].mean(axis=0) for a in np.unique(t.actor)]
    return np.mean(per_actor, axis=0).astype(np.float32)


def make_inputs(t: Table, rows: np.ndarray, prior: np.ndarray, rng: np.random.Generator,
                k_choices: tuple[int, ...]) -> np.ndarray:
    """Model inputs for ``rows``, each with a baseline from k other clips of its actor's session."""
    out = np.zeros((rows.size, n_inputs()), dtype=np.float32)
    base = t.x[:, BASELINE_INDEX]
    for j, r in enumerate(rows):
        k = int(rng.choice(k_choices))
        total, n = np.zeros(len(BASELINE_INDEX)), 0
        if k:
            same = np.nonzero((t.actor == t.actor[r]) & (t.session == t.session[r]))[0]
            same = same[same != r]
            pick = rng.choice(same, size=min(k, same.size), replace=False)
            total, n = base[pick].sum(axis=0), pick.size
        out[j] = model_input(t.x[r], total, n, prior)
    return out


TRAIN_K = (0, 0, 0, 1, 2, 3, 5, 8, 12)


def train_net(t: Table, rows: np.ndarray, prior: np.ndarray, seed: int, epochs: int, hidden: int) -> ToneNet:
    """One ensemble member: fresh baselines drawn every epoch, label smoothing, input jitter."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = ToneNet(n_inputs(), hidden=hidden)
    x0 = make_inputs(t, rows, prior, rng, TRAIN_K)
    net.mean.copy_(torch.from_numpy(x0.mean(axis=0)))
    net.std.copy_(torch.from_numpy(x0.std(axis=0) + 1e-3))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    ce = nn.CrossEntropyLoss(label_smoothing=0.1, ignore_index=-1)
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


def predict(nets: list[ToneNet], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        xt = torch.from_numpy(x)
        probs = sum(torch.softmax(n(xt)[0], dim=1) for n in nets) / len(nets)
        high = sum(torch.sigmoid(n(xt)[1]) for n in nets) / len(nets)
    return probs.numpy(), high.numpy()


def scores(t: Table, rows: np.ndarray, probs: np.ndarray, high: np.ndarray) -> dict[str, float | int]:
    """The bench's figures: 4-class (neutral+calm/happy/sad/angry) and high-vs-low arousal accuracy."""
    pred = np.array([CLASSES[i] for i in probs.argmax(axis=1)])
    emo = t.emotion[rows]
    four = np.array([e in FOUR for e in emo])
    four_hit = np.array([FOUR.get(p) == FOUR.get(e) for p, e in zip(pred, emo, strict=True)])
    known = t.high[rows] >= 0
    six = t.cls[rows] >= 0
    return {
        "four_class_accuracy": round(float(four_hit[four].mean()), 4), "four_class_n": int(four.sum()),
        "arousal_accuracy": round(float(((high > 0.5) == (t.high[rows] == 1))[known].mean()), 4),
        "arousal_n": int(known.sum()),
        "six_class_accuracy": round(float((probs.argmax(axis=1) == t.cls[rows])[six].mean()), 4),
    }


def confusion(t: Table, rows: np.ndarray, probs: np.ndarray) -> np.ndarray:
    m = np.zeros((len(ROW_LABELS), len(CLASSES)), dtype=int)
    for e, p in zip(t.emotion[rows], probs.argmax(axis=1), strict=True):
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
    ax.set_xlabel("predicted")
    ax.set_ylabel("acted (RAVDESS)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def evaluate(t: Table, nets: list[ToneNet], rows: np.ndarray, prior: np.ndarray, k: int, seed: int
             ) -> tuple[dict[str, float | int], np.ndarray, np.ndarray]:
    x = make_inputs(t, rows, prior, np.random.default_rng(seed), (k,))
    probs, high = predict(nets, x)
    return scores(t, rows, probs, high), probs, high


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=MODEL_DIR)
    ap.add_argument("--sessions", type=int, default=4, help="recording conditions per actor (1 = clean only)")
    ap.add_argument("--members", type=int, default=3, help="ensemble size")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    started = time.time()
    args.out.mkdir(parents=True, exist_ok=True)

    clips = list_clips(args.data)
    if not clips:
        raise SystemExit(f"no RAVDESS clips under {args.data}")
    t = build_table(clips, args.sessions, args.workers)
    print(f"{t.x.shape[0]} clip-session rows from {len(clips)} clips x {args.sessions} sessions")

    report: dict = {"command": "python -m npc_voice.train.emotion " + " ".join(argv or []),
                    "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                    "features": len(FEATURE_NAMES), "inputs": n_inputs(), "classes": CLASSES, "folds": []}
    clean = t.session == 0
    pooled: dict[str, list[np.ndarray]] = {k: [] for k in ("rows", "cold", "warm", "cold_high", "warm_high")}
    for fold, held in enumerate(tqdm(FOLDS, desc="cross-validation folds", unit="fold")):
        test = np.isin(t.actor, held)
        train_rows = np.nonzero(~test)[0]
        prior = baseline_prior(Table(t.x[train_rows], t.actor[train_rows], t.session[train_rows],
                                     t.emotion[train_rows], t.cls[train_rows], t.high[train_rows]))
        nets = [train_net(t, train_rows, prior, args.seed + 100 * fold + m, args.epochs, args.hidden)
                for m in range(args.members)]
        rows = np.nonzero(test & clean)[0]
        cold, probs_cold, high_cold = evaluate(t, nets, rows, prior, 0, fold)
        warm, probs_warm, high_warm = evaluate(t, nets, rows, prior, 10, fold)
        aug_rows = np.nonzero(test & ~clean)[0]
        augmented = evaluate(t, nets, aug_rows, prior, 0, fold)[0] if aug_rows.size else None
        name = "-".join(f"{a:02d}" for a in held)
        png = f"confusion_actors_{name}.png"
        plot_confusion(confusion(t, rows, probs_cold), f"held-out actors {name} (cold start): "
                       f"4-class {cold['four_class_accuracy']:.2f}, arousal {cold['arousal_accuracy']:.2f}",
                       args.out / png)
        report["folds"].append({"held_out_actors": list(held), "cold": cold, "warm": warm,
                                "augmented_sessions_cold": augmented, "confusion_png": png,
                                "confusion_cold": confusion(t, rows, probs_cold).tolist()})
        pooled["rows"].append(rows)
        pooled["cold"].append(probs_cold)
        pooled["warm"].append(probs_warm)
        pooled["cold_high"].append(high_cold)
        pooled["warm_high"].append(high_warm)
        tqdm.write(f"fold {name}: cold {cold} | warm {warm}")

    rows = np.concatenate(pooled["rows"])
    overall = {}
    for mode in ("cold", "warm"):
        probs = np.concatenate(pooled[mode])
        overall[mode] = {**scores(t, rows, probs, np.concatenate(pooled[f"{mode}_high"])),
                         "baseline_clips": 0 if mode == "cold" else 10}
    oc = overall["cold"]
    plot_confusion(confusion(t, rows, np.concatenate(pooled["cold"])),
                   f"all 12 actors, each held out (cold): 4-class {oc['four_class_accuracy']:.2f}, "
                   f"arousal {oc['arousal_accuracy']:.2f}", args.out / "confusion_all.png")
    report["overall_pooled"] = overall

    prior = baseline_prior(t)
    all_rows = np.arange(t.x.shape[0])
    nets = [train_net(t, all_rows, prior, args.seed + 1000 + m, args.epochs, args.hidden)
            for m in tqdm(range(args.members), desc="final model (all 12 actors)", unit="net")]
    state = {f"{m}.{k}": v for m, net in enumerate(nets) for k, v in net.state_dict().items()}
    torch.save(state, args.out / "tone.pt")
    meta = {"features": FEATURE_NAMES, "classes": CLASSES, "members": args.members, "hidden": args.hidden,
            "baseline_prior": prior.tolist(), "trained_on_actors": sorted(int(a) for a in np.unique(t.actor))}
    (args.out / "tone.json").write_text(json.dumps(meta, indent=1))
    report["train_seconds"] = round(time.time() - started, 1)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    (args.out / "report.md").write_text(markdown_report(report))
    print(json.dumps(overall, indent=1))
    return 0


def markdown_report(r: dict) -> str:
    lines = [
        "# Player tone model: speaker-independent validation on RAVDESS actors 01-12", "",
        f"Command: `{r['command'].strip()}` ({r['train_seconds']} s). Features: {r['features']} prosodic and",
        f"spectral statistics, model input {r['inputs']} (features, features minus the speaker baseline,",
        "baseline confidence). Each fold trains on 9 actors, tests on the 3 it never saw (clean recordings).",
        "*Cold*: no speaker baseline (a session's first utterance). *Warm*: baseline from 10 other clips",
        "of the same actor. *Augmented*: the held-out actors through simulated other microphones, cold.", "",
        "| held-out actors | 4-class cold | arousal cold | 6-class cold | 4-class warm | arousal warm |"
        " 4-class augm. | arousal augm. |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in r["folds"]:
        a = f["augmented_sessions_cold"] or {}
        actors = ", ".join(f"{x:02d}" for x in f["held_out_actors"])
        lines.append(f"| {actors} | {f['cold']['four_class_accuracy']:.3f}"
                     f" | {f['cold']['arousal_accuracy']:.3f} | {f['cold']['six_class_accuracy']:.3f}"
                     f" | {f['warm']['four_class_accuracy']:.3f} | {f['warm']['arousal_accuracy']:.3f}"
                     f" | {a.get('four_class_accuracy', float('nan')):.3f}"
                     f" | {a.get('arousal_accuracy', float('nan')):.3f} |")
    o = r["overall_pooled"]
    lines += [
        f"| **all 12 (pooled)** | **{o['cold']['four_class_accuracy']:.3f}**"
        f" | **{o['cold']['arousal_accuracy']:.3f}** |"
        f" {o['cold']['six_class_accuracy']:.3f} | {o['warm']['four_class_accuracy']:.3f} |"
        f" {o['warm']['arousal_accuracy']:.3f} | | |", "",
        "4-class: clips acted neutral, calm, happy, sad, angry; a hit when the predicted category (of six)",
        "is the same (neutral and calm are one). Arousal: all clips but disgust; happy, angry, fearful,",
        "surprised are high. Confusion matrices (cold): "
        + ", ".join(f"`{f['confusion_png']}`" for f in r["folds"]) + ", `confusion_all.png`.", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
