import copy
import importlib.util

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentlab.modules import metrics, prune, prune_search  # noqa: E402


def _runs(m, ids):
    out = m.generate(ids[:, :8], max_new_tokens=4, do_sample=False, min_new_tokens=4)
    assert out.shape == (1, 12)


def test_magnitude_and_wanda_reach_the_asked_sparsity(model, ids):
    for fn in (lambda m: prune.magnitude_prune(m, 0.5), lambda m: prune.wanda_prune(m, ids, 0.5)):
        m, st = fn(copy.deepcopy(model))
        lin = m.model.layers[0].mlp.up_proj.weight
        assert (lin == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
        assert st.params_after == st.params_before and st.nonzero_after < st.params_before
        assert all(s == pytest.approx(0.5, abs=0.02) for s in st.per_layer_sparsity)
        _runs(m, ids)


def test_mlp_channel_pruning_really_shrinks_the_matrices(model, ids):
    m, st = prune.prune_mlp_channels(copy.deepcopy(model), ids, 0.25)
    mlp = m.model.layers[0].mlp
    assert mlp.gate_proj.out_features == mlp.up_proj.out_features == mlp.down_proj.in_features == 96
    assert st.params_before - st.params_after == 3 * 32 * 64 * 3
    _runs(m, ids)


def test_head_pruning_keeps_gqa_consistent(model, ids):
    m, st = prune.prune_attention_heads(copy.deepcopy(model), ids, 0.5, unit="query")
    a = m.model.layers[0].self_attn
    assert a.q_proj.out_features == 2 * 16 and a.k_proj.out_features == 2 * 16 and a.num_key_value_groups == 1
    _runs(m, ids)
    m, st = prune.prune_attention_heads(copy.deepcopy(model), ids, 0.5, unit="kv_group")
    a = m.model.layers[0].self_attn
    assert a.q_proj.out_features == 2 * 16 and a.k_proj.out_features == 16
    assert st.notes["query_heads_kept"] == [2, 2, 2]
    _runs(m, ids)


def test_layer_removal_by_block_influence(model, ids):
    bi = prune.block_influence(model, ids)
    m, st = prune.remove_layers(copy.deepcopy(model), ids, 1)
    assert st.removed_layers == [min(range(3), key=lambda i: bi[i])]
    assert m.config.num_hidden_layers == 2 and [l.self_attn.layer_idx for l in m.model.layers] == [0, 1]
    assert st.per_layer_sparsity[st.removed_layers[0]] == 1.0
    _runs(m, ids)


def test_global_search_meets_the_target_and_never_loses_to_uniform(model, ids):
    m, st = prune_search.global_sparsity_search(copy.deepcopy(model), ids, 0.5, offsets=(-0.2, 0.0, 0.2))
    n = st.notes
    assert sum(n["allocation"]) / len(n["allocation"]) == pytest.approx(0.5)
    assert n["loss_searched"] <= n["loss_uniform"] + 1e-9
    for layer, s in zip(m.model.layers, n["allocation"]):
        assert (layer.mlp.up_proj.weight == 0).float().mean().item() == pytest.approx(s, abs=1 / 64)
    _runs(m, ids)


@pytest.mark.skipif(importlib.util.find_spec("torch_pruning") is None, reason="torch-pruning not installed")
def test_torch_pruning_reference_removes_the_same_number_of_parameters(model, ids):
    ours, a = prune.prune_mlp_channels(copy.deepcopy(model), ids, 0.25)
    ref, b = prune.prune_mlp_channels_tp(copy.deepcopy(model), ids, 0.25)
    assert a.params_after == b.params_after
    assert torch.isfinite(torch.tensor(metrics.perplexity(ref, ids)))


@pytest.mark.skipif(importlib.util.find_spec("torch_pruning") is None, reason="torch-pruning not installed")
def test_torch_pruning_surgery_equals_ours_for_the_same_channels(model, ids):
    import warnings

    import torch_pruning as tp

    from agentlab.modules.prune import _new_linear

    drop = [0, 5, 7, 9]
    ours = copy.deepcopy(model)
    keep = torch.tensor([i for i in range(128) if i not in drop])
    for layer in ours.model.layers:
        mlp = layer.mlp
        mlp.gate_proj = _new_linear(mlp.gate_proj, rows=keep)
        mlp.up_proj = _new_linear(mlp.up_proj, rows=keep)
        mlp.down_proj = _new_linear(mlp.down_proj, cols=keep)
    ref = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = tp.DependencyGraph().build_dependency(ref, example_inputs={"input_ids": ids[:, :8]},
                                                      output_transform=lambda o: o.logits)
    for layer in ref.model.layers:
        graph.get_pruning_group(layer.mlp.gate_proj, tp.prune_linear_out_channels, idxs=drop).prune()
    with torch.no_grad():
        assert torch.allclose(ours(ids).logits, ref(ids).logits, atol=1e-6)
