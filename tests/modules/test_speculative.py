import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentlab.modules import draft_heads, prune, speculative  # noqa: E402


@pytest.fixture
def prompt(ids):
    return torch.cat([ids[:, :10], ids[:, :10]], dim=1)  # a repeat, so prompt lookup has something to find


def _plain(model, prompt, n):
    return model.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False)


def test_every_greedy_drafter_reproduces_plain_greedy(model, ids, prompt):
    ref = _plain(model, prompt, 16)
    draft, _ = prune.remove_layers(copy.deepcopy(model), layers=[1])
    runs = [
        speculative.greedy_generate(model, prompt, 16),
        speculative.speculative_generate(model, draft, prompt, 16, k=3),
        speculative.speculative_generate(model, model, prompt, 16, k=3),
        speculative.prompt_lookup_generate(model, prompt, 16),
        speculative.self_speculative_generate(model, prompt, 16, keep_layers=2, k=3),
        speculative.self_speculative_generate(model, prompt, 16, keep_layers=[0, 2], k=2),
    ]
    for out, st in runs:
        assert torch.equal(out, ref), st.method
        assert st.new_tokens == 16
    same = runs[2][1]
    assert same.acceptance_rate == 1.0 and same.tau == pytest.approx(15 / same.verify_passes) and same.tau > 3


def test_hf_references_agree_with_plain_greedy(model, prompt):
    ref = _plain(model, prompt, 12)
    draft, _ = prune.remove_layers(copy.deepcopy(model), layers=[1])
    for kw in ({}, {"assistant_model": draft}, {"prompt_lookup_num_tokens": 5}, {"assistant_early_exit": 2}):
        out, st = speculative.hf_generate(model, prompt, 12, **kw)
        assert torch.equal(out, ref) and st.tau >= 1.0


def test_rejection_rule_preserves_the_target_distribution_exactly():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(7, generator=g), 0)
    q = torch.softmax(torch.randn(7, generator=g), 0)
    out = torch.zeros(7)
    for d in range(7):
        acc = min(1.0, (p[d] / q[d]).item())
        out[d] += q[d] * acc
        out += q[d] * (1 - acc) * speculative.residual_distribution(p, q)
    assert torch.allclose(out, p, atol=1e-6)


def test_sampling_speculative_matches_target_samples_statistically():
    from agentlab.modules.models import tiny_llama

    target, draft = tiny_llama(layers=2, vocab=8, seed=0), tiny_llama(layers=1, vocab=8, seed=1)
    with torch.no_grad():  # sharpen both so that p and q really differ
        target.lm_head.weight.mul_(60)
        draft.lm_head.weight.mul_(60)
    prompt = torch.tensor([[3, 5, 7, 4]])
    with torch.no_grad():
        p = torch.softmax(target(prompt).logits[0, -1], -1)
        p2 = torch.softmax(target(torch.cat([prompt, torch.tensor([[int(p.argmax())]])], 1)).logits[0, -1], -1)
        q = torch.softmax(draft(prompt).logits[0, -1], -1)
    assert 0.5 * (p - q).abs().sum() > 0.2  # the draft alone would be detected
    n = 400
    first, second = torch.zeros(8), torch.zeros(8)
    for seed in range(n):
        out, _ = speculative.speculative_generate(target, draft, prompt, 2, k=2, do_sample=True, seed=seed)
        first[out[0, 4]] += 1
        if out[0, 4] == p.argmax():
            second[out[0, 5]] += 1
    assert 0.5 * (first / n - p).abs().sum().item() < 0.1
    assert 0.5 * (second / second.sum() - p2).abs().sum().item() < 0.15


@pytest.mark.parametrize("n_serial", [0, 2])
def test_draft_heads_train_and_decode_losslessly(model, ids, prompt, n_serial):
    heads = draft_heads.make_draft_heads(model, n_parallel=2, n_serial=n_serial)
    heads, st = draft_heads.train_draft_heads(model, heads, ids, steps=15, batch=16)
    assert len(st.head_accuracy) == 2 + n_serial and st.last_loss < st.first_loss + 1.0
    out, sst = draft_heads.heads_generate(model, heads, prompt, 12)
    assert torch.equal(out, _plain(model, prompt, 12))
    assert sst.drafted > 0 and sst.tau >= 1.0
