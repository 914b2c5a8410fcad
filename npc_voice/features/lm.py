"""Persona language model for the streaming recogniser: an in-domain trigram blended with general English.

Why our own model: pocketsphinx with its general 72k-word model mishears about half the words of a
game conversation and is slow; a model made only from the persona's examples forces everything the
player says into topic words. So we build, at persona load time, an interpolated Kneser-Ney trigram
from the persona's example utterances plus the conversational glue the engine must hear (backchannels,
interruptions), and mix it linearly with the general model restricted to its most frequent words,
then write the mixture as a proper backoff ARPA file (SRILM-style: listed n-grams carry the mixed
probability, backoff weights are recomputed so every context sums to one).

The general statistics come from pocketsphinx's bundled ``en-us.lm.bin`` through
``NGramModel.prob`` (pocketsphinx 5.1.1 cannot write that file as ARPA: its header counts disagree
with its trie and the writer crashes). The Python API offers no LM interpolation (no ngram-set
weights), hence the mixing here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

BACKCHANNELS: tuple[str, ...] = ("uh-huh", "mm-hm", "yeah", "okay", "right", "i see", "wow", "sure")
INTERRUPTIONS: tuple[str, ...] = (
    "wait",
    "hold on",
    "stop",
    "no that's not what i meant",
    "sorry",
    "actually",
    "excuse me",
)
# Glue that players say while the NPC talks; heard as whole sentences and at the start of longer ones.
GLUE_SENTENCES: tuple[str, ...] = (
    *BACKCHANNELS,
    *INTERRUPTIONS,
    "yeah yeah",
    "okay okay",
    "uh-huh uh-huh",
    "wait wait",
    "no no",
    "no wait",
    "hold on a second",
    "sorry to interrupt",
    "actually i meant something else",
    "that's not what i asked",
    "excuse me what did you say",
    "i see okay",
    "yes",
    "no",
    "thanks",
    "thank you",
    "um",
    "uh",
)

FORMAT_VERSION = 2
KEYWORD_RANK = 1000
# Whisper's prompt names at most this many keywords: each one costs decoding time on every read (the 81 words
# of the 162-example blacksmith made a read 15 % slower than 48 and got 3 of 153 first questions more right).
MAX_KEYWORDS = 48
DEFAULT_GENERAL_WORDS = 3000
DEFAULT_DOMAIN_WEIGHT = 0.5
KN_DISCOUNT = 0.75
MAX_GENERAL_BIGRAMS_PER_CONTEXT = 24
BOS, EOS = "<s>", "</s>"
_WORD_RE = re.compile(r"[a-z][a-z']*")


def default_cache_dir() -> Path:
    """`NPC_VOICE_LM_CACHE` if set, else ~/.cache/npc-voice/lm."""
    env = os.environ.get("NPC_VOICE_LM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "npc-voice" / "lm"


def pocketsphinx_model_dir() -> Path:
    """The bundled en-us model folder (acoustic model, general LM, cmudict)."""
    import pocketsphinx

    return Path(pocketsphinx.get_model_path("en-us"))


def tokenize(text: str) -> list[str]:
    """Lower-case words as the recogniser spells them (apostrophes and hyphens kept, punctuation gone)."""
    text = text.lower().replace("\u2019", "'")
    out = []
    for raw in re.split(r"[^a-z'\-]+", text):
        word = raw.strip("'-")
        if word:
            out.append(word)
    return out


GLUE_WORDS = frozenset(w for t in GLUE_SENTENCES for w in tokenize(t))


class CmuDict:
    """The bundled CMU pronouncing dictionary: word -> its pronunciation lines (all variants)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or pocketsphinx_model_dir() / "cmudict-en-us.dict"
        self.entries: dict[str, list[str]] = defaultdict(list)
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                parts = line.split(maxsplit=1)
                if len(parts) == 2:
                    self.entries[re.sub(r"\(\d+\)$", "", parts[0])].append(parts[1].strip())

    def __contains__(self, word: str) -> bool:
        return word in self.entries

    def spell(self, words: Iterable[str], common: frozenset[str] = frozenset()) -> tuple[list[str], list[str]]:
        """Map words to dictionary tokens; an absent hyphenated or closed compound word is split.

        Returns (tokens, missing words).
        """
        tokens: list[str] = []
        missing: list[str] = []
        for word in words:
            if word in self:
                tokens.append(word)
                continue
            parts = [p for p in word.split("-") if p]
            if len(parts) > 1 and all(p in self for p in parts):
                tokens.extend(parts)
            elif split := self._compound(word, common):
                tokens.extend(split)
            else:
                missing.append(word)
        return tokens, missing

    @staticmethod
    def _compound(word: str, common: frozenset[str]) -> list[str] | None:
        """A closed compound of two common words of 3+ letters ("longsword" -> long sword), else None."""
        for i in range(3, len(word) - 2):
            if word[:i] in common and word[i:] in common:
                return [word[:i], word[i:]]
        return None


def persona_examples(persona: dict[str, Any] | str | Path) -> list[str]:
    """All `topics.<id>.examples` strings of a persona (a parsed YAML dict or a path to one)."""
    if not isinstance(persona, dict):
        with open(persona, encoding="utf-8") as f:
            persona = yaml.safe_load(f)
    examples: list[str] = []
    for topic in (persona.get("topics") or {}).values():
        examples.extend(str(e) for e in (topic or {}).get("examples") or [])
    return examples


@dataclass(frozen=True)
class PersonaLM:
    """A built persona LM on disk: what pocketsphinx needs (`arpa_path`, `dict_path`) and what was lost."""

    arpa_path: Path
    dict_path: Path
    vocabulary: frozenset[str]
    missing_words: tuple[str, ...]  # persona/glue words absent from cmudict (not recognisable by pocketsphinx)
    keywords: tuple[str, ...]  # the persona's less common words (beyond the top 1000 of English), for prompts
    key: str
    from_cache: bool


class _GeneralModel:
    """General English statistics from pocketsphinx's bundled LM, queried through `NGramModel.prob`."""

    def __init__(self) -> None:
        import pocketsphinx

        self._logmath = pocketsphinx.LogMath()  # kept alive: the model points into it
        self._lm = pocketsphinx.NGramModel(
            pocketsphinx.Config(lm=None), self._logmath, str(pocketsphinx_model_dir() / "en-us.lm.bin")
        )
        self._to_log10 = self._logmath.log_to_ln(-100000) / -100000 / math.log(10)
        self._unknown = self._lm.prob(["qqqxqqqz"])

    def log10(self, word: str, *history: str) -> float | None:
        """log10 P(word | history) (history oldest first), None if the word is unknown to the model."""
        score = self._lm.prob([word, *reversed(history)])
        if not history and score <= self._unknown:
            return None
        return score * self._to_log10

    def top_words(self, candidates: Iterable[str], n: int) -> list[str]:
        """The n most probable of the candidate words."""
        scored = [(p, w) for w in candidates if (p := self.log10(w)) is not None]
        scored.sort(reverse=True)
        return [w for _, w in scored[:n]]

    def conditional_matrix(self, contexts: Sequence[str], words: Sequence[str]) -> np.ndarray:
        """log10 P(word | context) for every pair, shape (len(contexts), len(words))."""
        out = np.empty((len(contexts), len(words)), dtype=np.float64)
        prob = self._lm.prob
        for i, v in enumerate(contexts):
            out[i] = [prob([w, v]) for w in words]
        return out * self._to_log10


class _KneserNey:
    """Interpolated Kneser-Ney trigram over a small corpus, floored by a uniform distribution over `vocab`."""

    def __init__(self, sentences: list[list[str]], vocab_size: int, discount: float = KN_DISCOUNT) -> None:
        self.d = discount
        self.vocab_size = vocab_size
        self.tri: Counter[tuple[str, str, str]] = Counter()
        self.bi: Counter[tuple[str, str]] = Counter()
        for s in sentences:
            toks = [BOS, *s, EOS]
            self.bi.update(zip(toks, toks[1:], strict=False))
            self.tri.update(zip(toks, toks[1:], toks[2:], strict=False))
        # Continuation counts: how many distinct left neighbours precede a (bi)gram. Bigrams opening a
        # sentence have no left neighbour, so they keep their raw counts (as SRILM does).
        self.cont_bi: Counter[tuple[str, str]] = Counter((v, w) for (_, v, w) in self.tri)
        for (v, w), c in self.bi.items():
            if v == BOS:
                self.cont_bi[(v, w)] = c
        self.cont_uni: Counter[str] = Counter(w for (_, w) in self.bi)
        self.cont_uni_total = sum(self.cont_uni.values())
        self.tri_ctx = self._context_stats(self.tri)
        self.bi_ctx = self._context_stats(self.cont_bi)

    @staticmethod
    def _context_stats(counts: Counter) -> dict[tuple[str, ...], tuple[float, int]]:
        """context -> (total count, number of distinct followers)."""
        stats: dict[tuple[str, ...], list] = defaultdict(lambda: [0.0, 0])
        for gram, c in counts.items():
            s = stats[gram[:-1]]
            s[0] += c
            s[1] += 1
        return {k: (v[0], v[1]) for k, v in stats.items()}

    def p1(self, w: str) -> float:
        uniform = 1.0 / self.vocab_size
        total = self.cont_uni_total
        if total == 0:
            return uniform
        types = len(self.cont_uni)
        return max(self.cont_uni.get(w, 0) - self.d, 0.0) / total + self.d * types / total * uniform

    def p2(self, w: str, v: str) -> float:
        stats = self.bi_ctx.get((v,))
        if stats is None:
            return self.p1(w)
        total, types = stats
        return max(self.cont_bi.get((v, w), 0) - self.d, 0.0) / total + self.d * types / total * self.p1(w)

    def p3(self, w: str, u: str, v: str) -> float:
        stats = self.tri_ctx.get((u, v))
        if stats is None:
            return self.p2(w, v)
        total, types = stats
        return max(self.tri.get((u, v, w), 0) - self.d, 0.0) / total + self.d * types / total * self.p2(w, v)


def _general_cache(cache_dir: Path, n_words: int, general: _GeneralModel, cmu: CmuDict) -> list[str]:
    """The top-n general words (cached: ranking 135k cmudict words costs ~1 s)."""
    path = cache_dir / f"general-top{n_words}-v{FORMAT_VERSION}.txt"
    if path.exists():
        return path.read_text(encoding="utf-8").split()
    candidates = [w for w in cmu.entries if _WORD_RE.fullmatch(w)]
    words = general.top_words(candidates, n_words)
    _atomic_write(path, "\n".join(words) + "\n")
    return words


def prompt_keywords(examples: Sequence[str], common: frozenset[str], general: _GeneralModel) -> list[str]:
    """The persona's less common words for Whisper's prompt, alphabetical: the ``MAX_KEYWORDS`` said in the
    most examples (a topic's own words: sword, forge, repair), the rarer in general English first on a tie."""
    uses = Counter(w for text in examples for w in set(tokenize(text)) if w not in common and w not in GLUE_WORDS)
    ranked = sorted(uses, key=lambda w: (-uses[w], general.log10(w) or -99.0, w))
    return sorted(ranked[:MAX_KEYWORDS])


def _atomic_write(path: Path, text: str) -> None:
    """Write whole or not at all; a temporary name of its own per writer, since two sessions of one sidecar
    (threads of one process) may build the same cache file at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # a full disk leaves no half-written file behind
        raise


def _fmt(log10p: float) -> str:
    return f"{max(log10p, -99.0):.6f}"


def build_persona_lm(
    persona: dict[str, Any] | str | Path,
    cache_dir: str | Path | None = None,
    general_words: int = DEFAULT_GENERAL_WORDS,
    domain_weight: float = DEFAULT_DOMAIN_WEIGHT,
    extra_sentences: Sequence[str] = (),
) -> PersonaLM:
    """Build (or reuse from the cache) the blended ARPA trigram and its dictionary for one persona.

    `domain_weight` is the linear-interpolation weight of the in-domain Kneser-Ney model against
    general English restricted to its `general_words` most frequent words plus the domain words.
    The cache key is a hash of the sentences and every parameter, so a reload of an unchanged
    persona only reads two small files.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    texts = [*persona_examples(persona), *GLUE_SENTENCES, *extra_sentences]
    key_src = json.dumps(
        {"v": FORMAT_VERSION, "texts": texts, "n": general_words, "lambda": domain_weight, "d": KN_DISCOUNT},
        sort_keys=True,
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    arpa_path, dict_path, meta_path = (cache / f"persona-{key}{ext}" for ext in (".arpa", ".dict", ".json"))
    if arpa_path.exists() and dict_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        return PersonaLM(
            arpa_path,
            dict_path,
            frozenset(meta["vocabulary"]),
            tuple(meta["missing"]),
            tuple(meta["keywords"]),
            key,
            True,
        )

    cmu = CmuDict()
    general = _GeneralModel()
    ranked = _general_cache(cache, general_words, general, cmu)
    common = frozenset(ranked[:KEYWORD_RANK])
    sentences: list[list[str]] = []
    missing: set[str] = set()
    for text in texts:
        tokens, lost = cmu.spell(tokenize(text), frozenset(ranked))
        missing.update(lost)
        if tokens:
            sentences.append(tokens)
    domain_words = sorted({w for s in sentences for w in s})
    keywords = prompt_keywords(persona_examples(persona), common, general)
    # Domain words unknown to the general model still get a general probability through its <unk> floor.
    vocab = sorted(set(ranked) | set(domain_words))
    _write_arpa(arpa_path, sentences, vocab, general, domain_weight)
    _atomic_write(
        dict_path,
        "".join(f"{w if i == 0 else f'{w}({i + 1})'} {pron}\n" for w in vocab for i, pron in enumerate(cmu.entries[w])),
    )
    _atomic_write(meta_path, json.dumps({"vocabulary": vocab, "missing": sorted(missing), "keywords": keywords}))
    return PersonaLM(arpa_path, dict_path, frozenset(vocab), tuple(sorted(missing)), tuple(keywords), key, False)


def _write_arpa(path: Path, sentences: list[list[str]], vocab: list[str], general: _GeneralModel, lam: float) -> None:
    """Mix the domain KN trigram with general English bigrams and write it as a backoff ARPA model."""
    gen = _GeneralTables.restricted_to(general, vocab)
    kn = _KneserNey(sentences, vocab_size=len(gen.targets))
    uni = {w: lam * kn.p1(w) + (1 - lam) * gen.uni[gen.t_index[w]] for w in gen.targets}
    bigrams = _mixed_bigrams(kn, gen, lam)
    trigrams = _mixed_trigrams(kn, gen, lam)
    bow1 = {v: _backoff(row, uni) for v, row in bigrams.items()}
    bow2 = _trigram_backoffs(trigrams, bigrams, uni, bow1)
    _atomic_write(path, _arpa_text(gen.targets, uni, bigrams, trigrams, bow1, bow2))


@dataclass(frozen=True)
class _GeneralTables:
    """The general model restricted to our vocabulary: unigram and per-context bigram probabilities,
    renormalised, and which of its bigrams the source model lists explicitly."""

    targets: list[str]  # what can follow
    contexts: list[str]  # what can precede
    t_index: dict[str, int]
    c_index: dict[str, int]
    uni: np.ndarray  # P(w), shape (targets,)
    cond: np.ndarray  # P(w | v), shape (contexts, targets)
    diff: np.ndarray  # log P(w|v) - log P(w), rounded, shape (contexts, targets)

    @classmethod
    def restricted_to(cls, general: _GeneralModel, vocab: list[str]) -> _GeneralTables:
        targets = [*vocab, EOS]
        contexts = [BOS, *vocab]
        # General model restricted to our vocabulary, renormalised per context.
        floor = general.log10("<unk>") or -7.0
        uni_gen = np.array([general.log10(w) or floor for w in targets])
        uni_gen = 10.0**uni_gen
        uni_gen /= uni_gen.sum()
        cond_log = general.conditional_matrix(contexts, targets)
        cond = 10.0**cond_log
        cond /= cond.sum(axis=1, keepdims=True)
        # A general bigram is explicit in the source model where its score is not unigram + backoff weight,
        # i.e. where log P(w|v) - log P(w) differs from that row's most common value.
        uni_src = np.array([general.log10(w) or floor for w in targets])
        diff = np.round(cond_log - uni_src[None, :], 3)
        return cls(
            targets,
            contexts,
            {w: i for i, w in enumerate(targets)},
            {w: i for i, w in enumerate(contexts)},
            uni_gen,
            cond,
            diff,
        )

    def p(self, w: str, v: str) -> float:
        """P(w | v) in the general model."""
        return self.cond[self.c_index[v], self.t_index[w]]

    def explicit_bigrams(self, i: int) -> np.ndarray:
        """Target indices of the most probable explicit bigrams of context ``i`` (at most
        ``MAX_GENERAL_BIGRAMS_PER_CONTEXT``), most probable first."""
        values, counts = np.unique(self.diff[i], return_counts=True)
        explicit = np.flatnonzero(self.diff[i] != values[np.argmax(counts)])
        return explicit[np.argsort(-self.cond[i, explicit])[:MAX_GENERAL_BIGRAMS_PER_CONTEXT]]


def _mixed_bigrams(kn: _KneserNey, gen: _GeneralTables, lam: float) -> dict[str, dict[str, float]]:
    """The listed bigrams (the general model's strongest explicit ones and every domain bigram), mixed."""
    bigrams: dict[str, dict[str, float]] = defaultdict(dict)
    for i, v in enumerate(gen.contexts):
        for j in gen.explicit_bigrams(i):
            bigrams[v][gen.targets[j]] = 0.0
    for v, w in kn.bi:
        bigrams[v][w] = 0.0
    for v, row in bigrams.items():
        for w in row:
            row[w] = lam * kn.p2(w, v) + (1 - lam) * gen.p(w, v)
    return bigrams


def _mixed_trigrams(kn: _KneserNey, gen: _GeneralTables, lam: float) -> dict[tuple[str, str], dict[str, float]]:
    """The domain trigrams, mixed with the general bigram of their last two words."""
    trigrams: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for u, v, w in kn.tri:
        trigrams[(u, v)][w] = lam * kn.p3(w, u, v) + (1 - lam) * gen.p(w, v)
    return trigrams


def _backoff(listed: dict[str, float], lower: dict[str, float]) -> float:
    """log10 backoff weight of a context: the mass its listed n-grams leave over that of the lower order."""
    num = 1.0 - sum(listed.values())
    den = 1.0 - sum(lower[w] for w in listed)
    return math.log10(max(num, 1e-12) / max(den, 1e-12))


def _trigram_backoffs(
    trigrams: dict[tuple[str, str], dict[str, float]],
    bigrams: dict[str, dict[str, float]],
    uni: dict[str, float],
    bow1: dict[str, float],
) -> dict[tuple[str, str], float]:
    """Backoff weights of the trigram contexts, against what the bigram level gives the same words."""
    bow2: dict[tuple[str, str], float] = {}
    for (u, v), row in trigrams.items():
        lower = {w: bigrams[v][w] if w in bigrams.get(v, {}) else uni[w] * 10 ** bow1.get(v, 0.0) for w in row}
        bow2[(u, v)] = _backoff(row, lower)
    return bow2


def _arpa_text(
    targets: list[str],
    uni: dict[str, float],
    bigrams: dict[str, dict[str, float]],
    trigrams: dict[tuple[str, str], dict[str, float]],
    bow1: dict[str, float],
    bow2: dict[tuple[str, str], float],
) -> str:
    """The model in ARPA format: header counts, then each order's n-grams sorted, with their backoff weights."""
    n_bi = sum(len(r) for r in bigrams.values())
    n_tri = sum(len(r) for r in trigrams.values())
    lines = [
        "\\data\\",
        f"ngram 1={len(targets) + 1}",
        f"ngram 2={n_bi}",
        f"ngram 3={n_tri}",
        "",
        "\\1-grams:",
    ]
    lines.append(f"-99.000000\t{BOS}\t{bow1.get(BOS, 0.0):.6f}")
    for w in targets:
        bow = f"\t{bow1[w]:.6f}" if w in bow1 else ""
        lines.append(f"{_fmt(math.log10(uni[w]))}\t{w}{bow}")
    lines += ["", "\\2-grams:"]
    for v in sorted(bigrams):
        for w in sorted(bigrams[v]):
            bow = f"\t{bow2[(v, w)]:.6f}" if (v, w) in bow2 else ""
            lines.append(f"{_fmt(math.log10(bigrams[v][w]))}\t{v} {w}{bow}")
    lines += ["", "\\3-grams:"]
    for u, v in sorted(trigrams):
        for w in sorted(trigrams[(u, v)]):
            lines.append(f"{_fmt(math.log10(trigrams[(u, v)][w]))}\t{u} {v} {w}")
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)
