"""Fit the clarity model (``model/clarity.py``) for one recogniser: P(its read of a player's turn is right).

Data: every player segment (turns, their parts, backchannels, interruptions; not bystanders) of the shared dev
cases and of one case set rendered here with ``npc-voice bench cases`` at a tuning seed that no held-out set
uses (``TUNING_SEED``), each read as the engine reads a turn (the persona's prompt, the beam's best readings, the
token probabilities of the best). Label: the best reading has a word error rate of at most ``CLEAR_WER``. A
logistic regression on standardised figures, with a little L2; the report gives the rate of right reads the
model calls clear and of wrong reads it calls clear, at the engine's threshold (``UnderstandingConfig.clear_p``).

Run: ``python -m npc_voice.train.clarity --recogniser tiny.en`` (a few minutes here; writes
``models/clarity/<recogniser>.json``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click
import numpy as np

from npc_voice.audio.devices import read_wav
from npc_voice.audio.format import SAMPLE_RATE
from npc_voice.bench.asr_wer import edit_distance, normalise
from npc_voice.config import UnderstandingConfig
from npc_voice.data import builtin_persona_dir, shared_eval_dir
from npc_voice.features.asr import RECOGNISERS, AsrModels, persona_prompt
from npc_voice.features.lm import build_persona_lm
from npc_voice.model.clarity import FEATURES, Clarity, features
from npc_voice.persona.loader import load_persona

DEV = shared_eval_dir() / "dev"
PERSONA = builtin_persona_dir() / "blacksmith.yaml"
TUNING_SEED = 7001
CLEAR_WER = 0.2
PLAYER_ROLES = ("turn", "turn_part", "backchannel", "interruption")


def segments(folders: list[Path]) -> list[tuple[str, np.ndarray]]:
    """(what was said, its audio with 150 ms either side) for every player segment of the cases in ``folders``."""
    out = []
    for folder in folders:
        for case_json in sorted(folder.glob("*/case.json")):
            case = json.loads(case_json.read_text())
            audio = read_wav(case_json.parent / "user.wav")
            for s in case["user_segments"]:
                if s["role"] in PLAYER_ROLES:
                    a, b = max(0, int((s["start"] - 0.15) * SAMPLE_RATE)), int((s["end"] + 0.15) * SAMPLE_RATE)
                    out.append((s["text"], audio[a:b]))
    return out


def fit(x: np.ndarray, y: np.ndarray, l2: float = 0.01, steps: int = 4000) -> tuple[np.ndarray, float]:
    """Logistic regression by gradient descent on standardised ``x``; weights and bias on the raw scale."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = (x - mu) / sd
    w, b = np.zeros(z.shape[1]), 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        w -= 0.5 * (z.T @ (p - y) / len(y) + l2 * w)
        b -= 0.5 * float(np.mean(p - y))
    return w / sd, b - float(np.sum(w * mu / sd))


@click.command()
@click.option("--recogniser", type=click.Choice(RECOGNISERS), default="tiny.en", show_default=True)
def main(recogniser: str) -> None:
    from npc_voice.bench.cases import render_cases

    with tempfile.TemporaryDirectory() as tmp:
        render_cases(Path(tmp), seed=TUNING_SEED, tuning=True)
        data = segments([DEV, Path(tmp)])
    asr = AsrModels(recogniser=recogniser)
    persona = load_persona(PERSONA)
    prompt = persona_prompt(build_persona_lm(PERSONA), persona.name)
    rows, labels = [], []
    for text, audio in data:
        read = asr.read(audio, prompt)
        f = features(read)
        if f is None:
            continue
        ref = normalise(text)
        rows.append([f[k] for k in FEATURES])
        labels.append(edit_distance(ref, normalise(read.text)) / max(1, len(ref)) <= CLEAR_WER)
    if not rows:
        raise click.ClickException(f"{recogniser} gives no token probabilities: there is nothing to fit")
    x, y = np.array(rows), np.array(labels, float)
    w, b = fit(x, y)
    model = Clarity(recogniser, dict(zip(FEATURES, map(float, w), strict=True)), b)
    p = np.array([1 / (1 + np.exp(-(b + r @ w))) for r in x])
    thr = UnderstandingConfig().clear_p
    report = (f"{len(y)} reads ({int(y.sum())} right), dev + tuning seed {TUNING_SEED}; at P >= {thr}: "
              f"{np.mean(p[y == 1] >= thr):.2f} of right reads called clear, {np.mean(p[y == 0] >= thr):.2f} "
              f"of wrong ones")
    model = Clarity(recogniser, model.weights, model.bias, report)
    click.echo(f"{report}\nwrote {model.save()}")


if __name__ == "__main__":
    main()
