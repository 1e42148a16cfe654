"""The prune, attention and speculative harness families, driven directly through the Family protocol."""

import copy
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentlab.modules import data, prune  # noqa: E402
from agentlab.modules.family_methods import (  # noqa: E402
    FAMILIES,
    attention_method,
    draft_method,
    method_names,
    prune_method,
)
from agentlab.modules.harness.family import SpecError, get_family  # noqa: E402
from agentlab.modules.harness.prune_family import apply_prune_method, linear_sparsity  # noqa: E402
from agentlab.modules.models import tiny_llama  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def model():
    return tiny_llama(layers=2, hidden=64, heads=4, kv_heads=2, intermediate=128, vocab=256)


@pytest.fixture(scope="module")
def tokens():
    return torch.tensor(list(data.load_text("eval").encode("utf-8")))  # byte tokens < 256


@pytest.fixture(scope="module")
def calib():
    return torch.tensor(list(data.load_text("calib").encode("utf-8")))


SPEC = SimpleNamespace(items=2, context_tokens=48, target_tokens=32)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}, model.config._attn_implementation


def _unchanged(model, before):
    sd, impl = before
    return model.config._attn_implementation == impl and all(torch.equal(v, sd[k])
                                                             for k, v in model.state_dict().items())


@pytest.fixture
def plugins():
    """One plugin method per decorator, registered in-process like a method.py; removed afterwards."""

    @prune_method("test_keep_small")
    def keep_small(ctx, power: float = 1.0):  # the opposite of magnitude: prunes the largest weights
        return -ctx.weight.abs() ** power

    @attention_method("test_half_full")
    def half_full(ctx):  # the first half of the query heads see everything, the rest a window
        return [[0] * (ctx.n_heads // 2) + [ctx.window] * (ctx.n_heads - ctx.n_heads // 2)
                for _ in range(ctx.n_layers)]

    @draft_method("test_repeat_last")
    def repeat_last(ctx, k: int, times: int = 2):
        return [ctx.seq[-1]] * min(k, times)

    yield
    for family, name in (("prune", "test_keep_small"), ("attention", "test_half_full"),
                         ("speculative", "test_repeat_last")):
        FAMILIES[family][0].unregister(name)


def test_every_family_lists_its_reference_first_then_its_built_ins():
    assert get_family("prune").method_names()[:3] == ["dense", "magnitude", "wanda"]
    assert get_family("attention").method_names()[:3] == ["full", "mswa", "swa"]
    assert get_family("speculative").method_names()[:3] == ["greedy", "early_exit", "prompt_lookup"]
    assert get_family("prune").method_params("wanda") == {"sparsity": 0.5}
    assert get_family("speculative").method_params("prompt_lookup") == {"k": 4, "ngram": 3}
    assert get_family("attention").method_params("full") == {}


def test_pruning_half_the_weights_zeroes_half_the_linears_and_changes_ppl(model, tokens, calib):
    fam = get_family("prune")
    items = fam.prepare(model, tokens, calib, SPEC, 0)
    before = _state(model)
    dense = fam.evaluate(model, items, "dense", {})
    assert dense["sparsity"] == [0.0] and len(dense["ppl"]) == len(dense["accuracy"]) == SPEC.items
    for name in ("magnitude", "wanda"):
        out = fam.evaluate(model, items, name, fam.check(name, {"sparsity": 0.5}, "methods[0].params"))
        assert out["sparsity"][0] == pytest.approx(0.5, abs=0.01)
        assert out["params"][0] < dense["params"][0]
        assert out["ppl"] != dense["ppl"]
    assert _unchanged(model, before)  # evaluate prunes a copy


def test_family_wanda_prunes_exactly_like_prune_wanda(model, calib):
    ids = calib[:128].view(1, -1)
    ours = apply_prune_method(copy.deepcopy(model), "wanda", ids, 0.5)
    ref, _ = prune.wanda_prune(copy.deepcopy(model), ids, 0.5)
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), ref.parameters()))
    assert linear_sparsity(ours) == pytest.approx(0.5, abs=0.01)


def test_a_window_shorter_than_the_sequence_changes_ppl_and_saves_kv_bytes(model, tokens, calib):
    fam = get_family("attention")
    items = fam.prepare(model, tokens, calib, SPEC, 0)
    before = _state(model)
    full = fam.evaluate(model, items, "full", {})
    small = fam.evaluate(model, items, "swa", fam.check("swa", {"window": 8}, "methods[0].params"))
    whole = fam.evaluate(model, items, "swa", {"window": SPEC.context_tokens + SPEC.target_tokens})
    mswa = fam.evaluate(model, items, "mswa", fam.check("mswa", {"window": 8}, "methods[1].params"))
    assert small["ppl"] != pytest.approx(full["ppl"], rel=1e-4)
    assert small["kv_bytes"][0] == full["kv_bytes"][0] * 8 / (SPEC.context_tokens + SPEC.target_tokens)
    assert whole["ppl"] == pytest.approx(full["ppl"], rel=1e-6) and whole["kv_bytes"] == full["kv_bytes"]
    assert mswa["kv_bytes"][0] < full["kv_bytes"][0] and mswa["ppl"] != pytest.approx(full["ppl"], rel=1e-4)
    assert _unchanged(model, before)  # the model's own attention is back


def test_drafters_are_lossless_and_never_slower_than_one_token_per_pass(model, tokens, calib):
    fam = get_family("speculative")
    spec = SimpleNamespace(items=2, context_tokens=24, target_tokens=16)
    items = fam.prepare(model, tokens, calib, spec, 0)
    greedy = fam.evaluate(model, items, "greedy", {})
    assert greedy["tau"] == [1.0, 1.0] and greedy["lossless"] == [1.0, 1.0]
    for name, params in (("prompt_lookup", {"k": 4}), ("early_exit", {"k": 3, "layers": 1})):
        out = fam.evaluate(model, items, name, fam.check(name, params, "methods[0].params"))
        assert out["lossless"] == [1.0, 1.0], name
        assert all(t >= 1.0 for t in out["tau"]) and all(0.0 <= a <= 1.0 for a in out["accept_rate"])
        assert all(s > 0 for s in out["tokens_per_s"])
    full_draft = fam.evaluate(model, items, "early_exit", {"k": 3, "layers": 2})  # the draft is the target
    assert full_draft["accept_rate"] == [1.0, 1.0] and all(t > 2.5 for t in full_draft["tau"])


def test_plugin_methods_run_through_the_same_evaluate(model, tokens, calib, plugins):
    assert "test_keep_small" in method_names("prune")
    p = get_family("prune")
    items = p.prepare(model, tokens, calib, SPEC, 0)
    assert "test_keep_small" in p.method_names() and p.method_params("test_keep_small") == {
        "sparsity": 0.5, "power": 1.0}
    mine = p.evaluate(model, items, "test_keep_small", p.check("test_keep_small", {}, "methods[0].params"))
    mag = p.evaluate(model, items, "magnitude", {"sparsity": 0.5})
    assert mine["sparsity"][0] == pytest.approx(0.5, abs=0.01) and mine["ppl"] != mag["ppl"]

    a = get_family("attention")
    items = a.prepare(model, tokens, calib, SPEC, 0)
    full = a.evaluate(model, items, "full", {})["kv_bytes"][0]
    half = a.evaluate(model, items, "test_half_full", {"window": 8})["kv_bytes"][0]
    assert full * 8 / 80 < half < full  # KV head 0 is full (its query heads see everything), KV head 1 windowed

    s = get_family("speculative")
    items = s.prepare(model, tokens, calib, SimpleNamespace(items=1, context_tokens=16, target_tokens=12), 0)
    out = s.evaluate(model, items, "test_repeat_last", s.check("test_repeat_last", {"k": 2}, "methods[0].params"))
    assert out["lossless"] == [1.0] and out["tau"][0] >= 1.0


def test_a_bad_plugin_result_is_a_clear_error(model, tokens, calib):
    @attention_method("test_wrong_shape")
    def wrong(ctx):
        return [[ctx.window]]

    try:
        a = get_family("attention")
        items = a.prepare(model, tokens, calib, SPEC, 0)
        with pytest.raises(ValueError, match="must return 2 lists of 4 windows"):
            a.evaluate(model, items, "test_wrong_shape", {})
        assert _unchanged(model, _state(model))
    finally:
        FAMILIES["attention"][0].unregister("test_wrong_shape")


@pytest.mark.parametrize("family,method,params,field,words", [
    ("prune", "wanda", {"sparsty": 0.5}, "methods[2].params.sparsty", ["did you mean 'sparsity'", "sparsity=0.5"]),
    ("prune", "magnitude", {"sparsity": 1.5}, "methods[2].params.sparsity", ["[0, 1)", "valid params: sparsity"]),
    ("prune", "dense", {"sparsity": 0.5}, "methods[2].params.sparsity", ["takes no parameters"]),
    ("prune", "wandaa", {}, "methods[2].name", ["did you mean 'wanda'", "dense"]),
    ("attention", "mswa", {"window": 0}, "methods[2].params.window", ["int >= 1", "head_scales="]),
    ("attention", "swa", {"window": "big"}, "methods[2].params.window", ["int >= 1"]),
    ("speculative", "prompt_lookup", {"ngram": "3"}, "methods[2].params.ngram", ["expected a int", "k=4, ngram=3"]),
    ("speculative", "early_exit", {"kk": 2}, "methods[2].params.kk", ["unknown parameter", "k=4, layers=0"]),
])
def test_check_errors_name_the_field_and_list_the_valid_params(family, method, params, field, words):
    with pytest.raises(SpecError) as err:
        get_family(family).check(method, params, "methods[2].params")
    assert err.value.field == field
    for w in words:
        assert w in str(err.value)


def test_items_are_the_same_across_cells_of_a_seed_and_differ_across_seeds(model, tokens, calib):
    for name in ("prune", "attention", "speculative"):
        fam = get_family(name)
        a, b, c = (fam.prepare(model, tokens, calib, SPEC, s) for s in (0, 0, 1))
        assert all(torch.equal(x, y) for x, y in zip(a.items, b.items)), name
        assert not any(torch.equal(x, y) for x, y in zip(a.items, c.items)), name
        assert len(a.items) == SPEC.items
    p = get_family("prune")
    assert torch.equal(p.prepare(model, tokens, calib, SPEC, 3).extra["calib"],
                       p.prepare(model, tokens, calib, SPEC, 3).extra["calib"])


def test_the_api_doc_lists_the_decorators():
    from agentlab.modules.apidoc import render_api_doc

    doc = render_api_doc()
    for deco in ("prune_method", "attention_method", "draft_method"):
        assert f"`family_methods.{deco}(name: str)" in doc
    assert "PruneContext` (dataclass)" in doc and "input_norm" in doc
