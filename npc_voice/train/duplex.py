"""Train the duplex model on synthetic dialogues; validate on held-out voices and on a real phone call.

    python -m npc_voice.train.duplex [--dialogues 1200] [--epochs 30] [--jobs 2] [--out models/duplex]

1. Synthesise the utterance banks (cached under $NPC_VOICE_CACHE or /tmp, not in git) and render
   dialogues through the run-time echo canceller, VAD and feature extractor (``train.dialogues``),
   on ``--jobs`` processes. Held-out dialogues use voices never seen in training.
2. Train ``DuplexNet`` on whole dialogues (masked losses per head), Adam, a fixed number of epochs.
3. Report: held-out figures per head, the decision quality the policy relies on (P(shift) after a
   finished turn vs in a mid-turn pause, backchannel vs interruption while the NPC speaks, echo-only
   chunks), and the real phone call: P(shift) at each pause against who actually spoke next.
Writes ``duplex.pt``, ``duplex.json``, ``report.json``, ``report.md`` and ``curve.png`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
import wave
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from npc_voice.audio.echo import EchoStats
from npc_voice.audio.format import CHUNK_SAMPLES, CHUNK_SECONDS
from npc_voice.data import shared_eval_dir
from npc_voice.features.duplex_features import N_FEATURES, DuplexFeatures
from npc_voice.features.vad import VoiceActivity
from npc_voice.model.duplex import MODEL_DIR, DuplexNet
from npc_voice.train.dialogues import Bank, Dialogue, render

PHONE = shared_eval_dir() / "real" / "phone_call"
_BANKS: dict[str, Bank] = {}


def _render_batch(args: tuple[str, int, int]) -> list[Dialogue]:
    """Worker: render ``count`` dialogues of one split from seed ``seed`` (banks come from the cache)."""
    split, seed, count = args
    torch.set_num_threads(1)
    if split not in _BANKS:
        _BANKS[split] = Bank(split, np.random.default_rng(0 if split == "train" else 1))
    rng = np.random.default_rng(seed)
    return [render(rng, _BANKS[split]) for _ in range(count)]


def make_data(split: str, n: int, jobs: int, seed: int) -> list[Dialogue]:
    Bank(split, np.random.default_rng(0 if split == "train" else 1))  # fill the cache once, in this process
    batches = [(split, seed * 100003 + i, 10) for i in range((n + 9) // 10)]
    out: list[Dialogue] = []
    with ProcessPoolExecutor(jobs) as pool, tqdm(total=len(batches) * 10, desc=f"render {split}") as bar:
        for ds in pool.map(_render_batch, batches):
            out.extend(ds)
            bar.update(len(ds))
    return out[:n]


def _pad(ds: list[Dialogue]) -> tuple[torch.Tensor, ...]:
    t = max(len(d.shift) for d in ds)
    x = torch.zeros(len(ds), t, N_FEATURES)
    y = torch.full((len(ds), t, 4), -1, dtype=torch.long)
    for i, d in enumerate(ds):
        k = len(d.shift)
        x[i, :k] = torch.from_numpy(d.features)
        y[i, :k] = torch.from_numpy(np.stack([d.shift, d.soon, d.over, d.player], 1))
    return x, y


def losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Masked losses: shift, soon, over (3-way), player."""
    bce = nn.functional.binary_cross_entropy_with_logits
    total = logits.new_zeros(())
    for head, col, weight in ((0, 0, 2.0), (1, 1, 0.5), (5, 3, 0.5)):
        m = y[..., col] >= 0
        if m.any():
            total = total + weight * bce(logits[..., head][m], y[..., col][m].float())
    m = y[..., 2] >= 0
    if m.any():
        w = torch.tensor([1.0, 3.0, 3.0])  # backchannel and interruption chunks are rare
        total = total + 2.0 * nn.functional.cross_entropy(logits[..., 2:5][m], y[..., 2][m], weight=w)
    return total


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (rank form)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if not pos.size or not neg.size:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]))
    ranks = np.empty(order.size)
    ranks[order] = np.arange(1, order.size + 1)
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def evaluate(net: DuplexNet, ds: list[Dialogue]) -> dict[str, float]:
    """Held-out figures: AUCs, accuracy of the decisions at the policy's thresholds."""
    net.eval()
    with torch.no_grad():
        x, y = _pad(ds)
        logits = net(x)
        loss = float(losses(logits, y))
    p = torch.sigmoid(logits).numpy()
    over = torch.softmax(logits[..., 2:5], -1).numpy()
    y = y.numpy()
    m = y[..., 0] >= 0
    silent = m & (y[..., 3] == 0)  # chunks with nobody speaking while the NPC is quiet
    pause = silent & (y[..., 0] == 0)
    done = silent & (y[..., 0] == 1)
    mo = y[..., 2] >= 0
    conf = np.zeros((3, 3), int)
    for t, q in zip(y[..., 2][mo], over[mo].argmax(-1), strict=True):
        conf[t, q] += 1
    return {
        "loss": loss,
        "shift_auc": auc(p[..., 0][m], y[..., 0][m]),
        "shift_auc_silent_chunks": auc(p[..., 0][silent], y[..., 0][silent]),
        "shift_rate_after_turn_end": float((p[..., 0][done] >= 0.5).mean()),
        "shift_rate_in_pauses_and_silence": float((p[..., 0][pause] >= 0.5).mean()),
        "soon_auc": auc(p[..., 1][y[..., 1] >= 0], y[..., 1][y[..., 1] >= 0]),
        "player_auc": auc(p[..., 5][y[..., 3] >= 0], y[..., 3][y[..., 3] >= 0]),
        "interrupt_recall": float(conf[2, 2] / max(conf[2].sum(), 1)),
        "backchannel_recall": float(conf[1, 1] / max(conf[1].sum(), 1)),
        "echo_only_false_interrupt": float(conf[0, 2] / max(conf[0].sum(), 1)),
        "over_confusion_rows_true_none_bc_int": conf.tolist(),
    }


def phone_call(net: DuplexNet) -> dict:
    """The real call: run the features as if the NPC were silent, read P(shift) 0.2 s into each pause,
    and compare with who speaks next (STM segments; a pause is a gap of 40 ms or more)."""
    from npc_voice.features.asr import AsrModels, StreamingRecognizer

    with wave.open(str(PHONE / "sample.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    segs = []
    for line in (PHONE / "sample.stm").read_text().splitlines():
        f = line.split()
        segs.append((float(f[3]), float(f[4]), f[2]))
    segs.sort()
    models = AsrModels()
    asr = StreamingRecognizer(models, None)
    feats, vad = DuplexFeatures(), VoiceActivity()
    quiet = EchoStats(False, -100.0, -100.0, -100.0, 0.0, 0.0)
    n = len(pcm) // CHUNK_SAMPLES
    probs_shift = np.zeros(n)
    silence = 0.0
    ctx, h = torch.zeros(net.window, net.q.in_features), torch.zeros(net.q.in_features)
    with torch.no_grad():
        for c in range(n):
            chunk = pcm[c * CHUNK_SAMPLES : (c + 1) * CHUNK_SAMPLES]
            p = vad.process(chunk)
            speech = bool((p > 0.5).any())
            silence = 0.0 if speech else silence + CHUNK_SECONDS
            if speech and not asr.in_utterance:
                asr.start()
            partial = asr.feed(chunk) if asr.in_utterance else ""
            if silence > 1.0 and asr.in_utterance:
                asr.finish(accurate=False)
            x = feats.step(chunk, chunk, None, p, quiet, False, 0.0, partial)
            logits, ctx, h = net.step(torch.from_numpy(x), ctx, c, h)
            probs_shift[c] = float(torch.sigmoid(logits[0]))
    models.close()
    pauses = []
    for (_, e0, who), (s1, _, nxt) in zip(segs, segs[1:], strict=False):
        if s1 - e0 < 0.04:
            continue
        c = min(int((e0 + 0.2) / CHUNK_SECONDS), n - 1)
        pauses.append({"at": e0, "gap": round(s1 - e0, 2), "next_is_other": nxt != who,
                       "p_shift": round(float(probs_shift[c]), 3)})
    labels = np.array([p["next_is_other"] for p in pauses], int)
    scores = np.array([p["p_shift"] for p in pauses])
    correct = int(((scores >= 0.5) == labels.astype(bool)).sum())
    return {"pauses": pauses, "accuracy_at_0.5": round(correct / max(len(pauses), 1), 3),
            "auc": round(auc(scores, labels), 3)}


def plot(curve: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ep = [c["epoch"] for c in curve]
    ax[0].plot(ep, [c["train_loss"] for c in curve], label="train")
    ax[0].plot(ep, [c["val"]["loss"] for c in curve], label="held-out voices")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("loss")
    ax[0].legend()
    for key in ("shift_auc", "soon_auc", "player_auc", "interrupt_recall", "backchannel_recall"):
        ax[1].plot(ep, [c["val"][key] for c in curve], label=key)
    ax[1].set_xlabel("epoch")
    ax[1].set_ylim(0, 1.01)
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dialogues", type=int, default=1200)
    ap.add_argument("--heldout", type=int, default=150)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=MODEL_DIR)
    args = ap.parse_args(argv)
    t0 = time.time()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.jobs)
    train = make_data("train", args.dialogues, args.jobs, args.seed)
    val = make_data("heldout", args.heldout, args.jobs, args.seed + 1)
    t_data = time.time() - t0
    net = DuplexNet()
    feats = np.concatenate([d.features for d in train])
    net.mean.copy_(torch.from_numpy(feats.mean(0)))
    net.std.copy_(torch.from_numpy(feats.std(0) + 1e-3))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    rng = np.random.default_rng(args.seed)
    curve = []
    for epoch in tqdm(range(1, args.epochs + 1), desc="train"):
        net.train()
        order = rng.permutation(len(train))
        tot, nb = 0.0, 0
        for i in range(0, len(order), 32):
            x, y = _pad([train[j] for j in order[i : i + 32]])
            x = x + 0.05 * torch.randn_like(x) * net.std  # feature noise: other microphones, other rooms
            loss = losses(net(x), y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            tot, nb = tot + loss.item(), nb + 1
        sched.step()
        val_fig = evaluate(net, val)
        curve.append({"epoch": epoch, "train_loss": tot / nb, "val": val_fig})
        tqdm.write(f"epoch {epoch}: train {tot / nb:.3f} val {val_fig['loss']:.3f} "
                   f"shift_auc {val_fig['shift_auc']:.3f} int {val_fig['interrupt_recall']:.2f} "
                   f"bc {val_fig['backchannel_recall']:.2f}")
    net.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out / "duplex.pt")
    n_params = sum(p.numel() for p in net.parameters())
    (args.out / "duplex.json").write_text(json.dumps({"features": N_FEATURES, "parameters": n_params}, indent=1))
    plot(curve, args.out / "curve.png")
    call = phone_call(net)
    report = {
        "command": "python -m npc_voice.train.duplex " + " ".join(argv or []),
        "train_dialogues": len(train), "heldout_dialogues": len(val),
        "train_chunks": int(sum(len(d.shift) for d in train)),
        "parameters": n_params, "data_seconds": round(t_data, 1), "total_seconds": round(time.time() - t0, 1),
        "heldout": curve[-1]["val"], "phone_call": call, "curve": curve,
    }
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    v = report["heldout"]
    lines = [
        "# Duplex model: validation report", "",
        f"Trained on {len(train)} synthetic dialogues ({report['train_chunks']} chunks), {n_params} parameters; "
        f"data {t_data:.0f} s, total {report['total_seconds']:.0f} s on {args.jobs} cores.", "",
        f"## Held-out voices ({len(val)} dialogues)", "",
        *(f"- {k}: {v[k]:.3f}" if isinstance(v[k], float) else f"- {k}: {v[k]}" for k in v), "",
        "## Real phone call (pyannote sample): P(shift) 0.2 s into each pause vs who spoke next", "",
        f"accuracy at 0.5: {call['accuracy_at_0.5']}, AUC: {call['auc']}", "",
        "| pause at (s) | gap (s) | next speaker | P(shift) |", "|---|---|---|---|",
        *(f"| {p['at']:.2f} | {p['gap']} | {'other' if p['next_is_other'] else 'same'} | {p['p_shift']} |"
          for p in call["pauses"]),
    ]
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
