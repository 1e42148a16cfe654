import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentlab.modules import kv, kv_latent, kv_quant, metrics  # noqa: E402
from agentlab.modules.methods import KV_METHODS, get_kv_method, kv_method  # noqa: E402
from agentlab.modules.models import kv_geometry  # noqa: E402

EVICTIONS = [("streaming_llm", {"budget": 12, "sink": 4}), ("h2o", {"budget": 0.25}),
             ("snapkv", {"budget": 0.25, "window": 6}), ("key_norm", {"budget": 0.5})]
#: every registered eviction method (a new file in kv_methods/ or an installed plugin is tested here unasked)
SCORE_METHODS = [n for n in kv.method_names() if get_kv_method(n).kind == "score"]


def test_dense_kv_bytes_formula_matches_the_real_cache(model, ids):
    g = kv_geometry(model)
    state = kv.prefill(model, ids[:, :40])
    expected = g.n_layers * 2 * g.n_kv_heads * g.head_dim * 40 * g.bytes_per_elt
    assert metrics.dense_kv_bytes(model, 40) == expected == metrics.cache_bytes(state) == 3 * 2 * 2 * 16 * 40 * 4


@pytest.mark.parametrize("method,kw", EVICTIONS)
def test_eviction_keeps_budget_and_bytes_are_exact(model, ids, method, kw):
    state, st = kv.compress(model, ids[:, :48], method, **kw)
    g = kv_geometry(model)
    assert st.kept_tokens == (kw["budget"] if isinstance(kw["budget"], int) else round(kw["budget"] * 48))
    for layer in state.cache.layers:
        assert layer.keys.shape == (1, g.n_kv_heads, st.kept_tokens, g.head_dim)
    assert st.kv_bytes == g.n_layers * 2 * g.n_kv_heads * g.head_dim * st.kept_tokens * g.bytes_per_elt
    assert st.compression_ratio == pytest.approx(48 / st.kept_tokens)
    assert state.position == 48


@pytest.mark.parametrize("method,kw", EVICTIONS)
def test_compressed_cache_scores_like_one_masked_pass(model, ids, method, kw):
    ctx, tgt = ids[:, :48], ids[:, 48:]
    state, _ = kv.compress(model, ctx, method, **kw)
    ref = kv.mask_reference_perplexity(model, ctx, tgt, state)
    assert kv.score_continuation(model, state, tgt) == pytest.approx(ref, rel=1e-4)


def test_full_cache_continuation_equals_plain_perplexity_of_the_targets(model, ids):
    state = kv.prefill(model, ids[:, :48])
    ppl = kv.score_continuation(model, state, ids[:, 48:])
    logits = model(ids).logits[0, 47:-1]
    nll = torch.nn.functional.cross_entropy(logits, ids[0, 48:]).item()
    assert ppl == pytest.approx(math.exp(nll), rel=1e-4)


def test_streaming_llm_keeps_sinks_and_recent_tokens(model, ids):
    state, _ = kv.streaming_llm(model, ids[:, :40], budget=10, sink=4)
    for idx in state.kept:
        assert idx[0, 0].tolist() == [0, 1, 2, 3, 34, 35, 36, 37, 38, 39]


def test_snapkv_always_keeps_its_observation_window(model, ids):
    state, _ = kv.snapkv(model, ids[:, :40], budget=12, window=5)
    for idx in state.kept:
        for head in idx[0]:
            assert set(range(35, 40)) <= set(head.tolist())


def test_quantized_bytes_formula_and_roundtrip_error():
    x = torch.randn(2, 3, 10, 64)
    for bits in (8, 4):
        qt = kv_quant.quantize_tensor(x, bits, 32)
        n = x.numel()
        assert qt.nbytes == n * bits // 8 + (n // 32) * 4
        err = (kv_quant.dequantize_tensor(qt) - x).abs().reshape(-1, 32)
        assert (err <= qt.scale.float() / 2 + 1e-3).all()


def test_quantize_kv_reports_packed_bytes_and_stays_close(model, ids):
    ctx, tgt = ids[:, :48], ids[:, 48:]
    g = kv_geometry(model)
    dense = kv.score_continuation(model, kv.prefill(model, ctx), tgt)
    state, st = kv.quantize_kv(model, ctx, bits=8, group_size=16)
    per_token = g.head_dim * 8 // 8 + (g.head_dim // 16) * 4
    assert st.kv_bytes == g.n_layers * 2 * g.n_kv_heads * 48 * per_token
    assert kv.score_continuation(model, state, tgt) == pytest.approx(dense, rel=0.02)


def test_greedy_continue_from_full_cache_matches_generate(model, ids):
    state = kv.prefill(model, ids[:, :20])
    new = kv.greedy_continue(model, state, max_new_tokens=8)
    ref = model.generate(ids[:, :20], max_new_tokens=8, do_sample=False, min_new_tokens=8)[:, 20:]
    assert torch.equal(new, ref)


def test_latent_kv_full_rank_is_exact_and_low_rank_bytes_are_exact(model, ids):
    import copy

    g = kv_geometry(model)
    dense = metrics.perplexity(model, ids)
    full, st = kv_latent.low_rank_kv(copy.deepcopy(model), ids, rank=g.n_kv_heads * g.head_dim)
    assert metrics.perplexity(full, ids) == pytest.approx(dense, rel=1e-4)
    low, st = kv_latent.low_rank_kv(copy.deepcopy(model), ids, rank=8, rank_v=16)
    assert st.kv_bytes_per_token == g.n_layers * (8 + 16) * g.bytes_per_elt
    assert st.compression_ratio == pytest.approx(2 * 32 / 24)
    assert kv_latent.latent_kv_bytes(st, 100) == 100 * st.kv_bytes_per_token
    assert low.model.layers[0].self_attn.k_proj[0].out_features == 8
    assert math.isfinite(metrics.perplexity(low, ids))


def test_builtin_methods_are_registered_from_their_files():
    assert {"streaming_llm", "h2o", "snapkv", "key_norm", "quantize"} <= set(kv.method_names())
    assert get_kv_method("snapkv").attention and not get_kv_method("key_norm").attention
    assert get_kv_method("quantize").kind == "transform"
    assert kv.snapkv is get_kv_method("snapkv") and kv.quantize_kv is get_kv_method("quantize")


@pytest.mark.parametrize("method", SCORE_METHODS)
def test_every_registered_eviction_method_keeps_its_budget_and_matches_the_masked_pass(model, ids, method):
    ctx, tgt = ids[:, :48], ids[:, 48:]
    state, st = kv.compress(model, ctx, method, budget=0.25)
    assert st.method == method and st.kept_tokens == 12 and st.compression_ratio == pytest.approx(4.0)
    assert all(idx.shape[-1] == 12 for idx in state.kept)
    ref = kv.mask_reference_perplexity(model, ctx, tgt, state)
    assert kv.score_continuation(model, state, tgt) == pytest.approx(ref, rel=1e-4)


def test_a_method_is_one_decorated_score_function(model, ids):
    @kv_method("test_oldest_first")
    def oldest_first(ctx: kv.ScoreContext, keep_recent: int = 0):
        s = -torch.arange(ctx.tokens, dtype=torch.float32)
        return ctx.protect(s, last=keep_recent)

    try:
        assert "test_oldest_first" in kv.method_names() and not KV_METHODS.is_plugin("test_oldest_first")
        state, st = kv.compress(model, ids[:, :40], "test_oldest_first", budget=10, keep_recent=2)
        for idx in state.kept:
            assert idx[0, 0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 38, 39]
        with pytest.raises(TypeError, match="test_oldest_first"):
            kv.compress(model, ids[:, :40], "test_oldest_first", window=3)
    finally:
        KV_METHODS.unregister("test_oldest_first")
    assert "test_oldest_first" not in kv.method_names()


def test_unknown_methods_and_a_budget_for_a_transform_are_clear_errors(model, ids):
    with pytest.raises(ValueError, match="unknown KV-cache method 'nope'.*snapkv"):
        kv.compress(model, ids[:, :20], "nope")
    with pytest.raises(TypeError, match="no budget"):
        kv.compress(model, ids[:, :20], "quantize", budget=0.5, group_size=16)
