import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentlab.modules import attention, metrics  # noqa: E402


def test_window_mask_is_causal_and_banded():
    m = attention.window_mask(3, 6, [2, 0])
    assert m.shape == (2, 3, 6)
    assert m[0].int().tolist() == [[0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 1]]
    assert m[1].int().tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]]


def test_agentlab_attention_without_windows_equals_sdpa(model, ids):
    ref = model(ids).logits
    with attention.use_impl(model):
        assert torch.allclose(model(ids).logits, ref, atol=1e-5)


def test_sliding_window_matches_hf_own_sliding_window(model, ids):
    ref = attention.hf_sliding_window_reference(model, 8)(ids).logits
    m, st = attention.sliding_window_attention(copy.deepcopy(model), 8, seq_len=72)
    assert torch.allclose(m(ids).logits, ref, atol=1e-5)
    assert st.kv_bytes == 3 * 2 * 2 * 16 * 8 * 4 and st.compression_ratio == pytest.approx(9.0)
    full = attention.full_attention(m)
    assert torch.allclose(full(ids).logits, model(ids).logits, atol=1e-5)


def test_mswa_windows_vary_across_heads_and_layers_with_the_asked_mean(model, ids):
    w = attention.mswa_windows(6, 4, 16)
    assert sum(map(sum, w)) / 24 == pytest.approx(16, abs=0.5)
    assert w[0][0] < w[0][3] and w[0][0] < w[5][0]
    m, st = attention.multi_scale_window_attention(copy.deepcopy(model), 8, seq_len=72)
    assert [len(r) for r in st.windows] == [4, 4, 4]
    assert st.kv_bytes < st.dense_kv_bytes
    assert torch.isfinite(m(ids).logits).all()
    # KV bytes use the widest window among the query heads of each KV head
    g0 = max(st.windows[0][:2]); g1 = max(st.windows[0][2:])
    assert st.windows[0] and g0 <= g1


def test_chunked_perplexity_equals_one_pass(model, ids):
    assert metrics.perplexity(model, ids, chunk=16) == pytest.approx(metrics.perplexity(model, ids), rel=1e-5)


def test_accuracy_retention_and_measure(model, ids):
    assert metrics.accuracy_retention(0.45, 0.5) == pytest.approx(0.9)
    acc = metrics.next_token_accuracy(model, ids)
    assert 0.0 <= acc <= 1.0
    out, t = metrics.measure(lambda: model.generate(ids[:, :5], max_new_tokens=4, min_new_tokens=4),
                             tokens_of=lambda o: o.shape[1] - 5)
    assert t.tokens == 4 and t.tokens_per_s > 0
