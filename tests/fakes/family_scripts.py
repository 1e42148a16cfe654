"""Scripted replies for a research run in each of the other harness families (prune, attention, speculative),
the same shape as scripts.py: a plan with baselines and one ablation, the family choice, a baselines spec
naming registered methods, a real `method.py` (fenced code) registering the method `proposed` with the
family's decorator, and an ablation that changes one of its parameters; every other schema is answered by
autoreply.

    family_run(srv, "prune")  # like scripts.full_run(srv), for one family
"""

from __future__ import annotations

from typing import Any

from tests.fakes.autoreply import install
from tests.fakes.openai_server import ScriptedLLM
from tests.fakes.scripts import GOOD_REVIEW, fenced

# ---- prune: |W| * ||x||^alpha, a Wanda with a tunable activation exponent --------------------------------
PRUNE_PLAN = {
    "title": "Activation-weighted magnitude pruning with a tunable exponent",
    "hypothesis": "Scoring weights by |W| * ||x||^0.5 keeps perplexity closer to the dense model than magnitude "
                  "pruning and Wanda at 50% unstructured sparsity.",
    "method": "Score each weight by its magnitude times the L2 norm of its input channel raised to alpha; "
              "zero the lowest-scoring half of every output row.",
    "metrics": [{"name": "ppl", "direction": "lower", "description": "perplexity of the pruned model"},
                {"name": "accuracy", "direction": "higher", "description": "next-token top-1 accuracy"}],
    "baselines": ["magnitude pruning", "Wanda"],
    "ablations": ["no activation weighting"],
    "experiment_outline": "Compare against magnitude and Wanda at 30%, 50% and 70% sparsity.",
    "risks": "Small model, short calibration text.",
}
PRUNE_BASELINES = {"baselines": ["magnitude", "wanda"], "primary": "ppl",
                   "rationale": "the plan's baselines"}
PRUNE_METHOD = '''import torch

from agentlab.modules.family_methods import prune_method


@prune_method("proposed")
def score(ctx, alpha: float = 0.5):
    """|W| * ||x||^alpha: alpha = 0 is magnitude pruning, alpha = 1 is Wanda."""
    w = ctx.weight.abs().float()
    if alpha == 0:
        return w
    return w * ctx.input_norm.float().clamp_min(1e-8)[None, :] ** alpha
'''
PRUNE_ABLATION = {"params": {"alpha": 0.0}, "rationale": "alpha = 0 drops the activation weighting"}

# ---- attention: windows that grow with depth ---------------------------------------------------------------
ATTENTION_PLAN = {
    "title": "Depth-growing sliding windows",
    "hypothesis": "Giving deeper layers wider windows (the first layer the base window, the last `growth` times "
                  "it) lowers perplexity against a uniform sliding window at a similar KV cache.",
    "method": "Window of layer l = base window * growth^(l / (L - 1)), the same for every head of the layer.",
    "metrics": [{"name": "ppl", "direction": "lower", "description": "perplexity of the continuation"},
                {"name": "kv_bytes", "direction": "lower", "description": "bytes the window cache holds"}],
    "baselines": ["sliding-window attention", "multi-scale window attention"],
    "ablations": ["no growth with depth"],
    "experiment_outline": "Compare against SWA and MSWA at base windows of 32 to 256 tokens.",
    "risks": "Short sequences; small model.",
}
ATTENTION_BASELINES = {"baselines": ["swa", "mswa"], "primary": "ppl",
                       "rationale": "the plan's baselines"}
ATTENTION_METHOD = '''from agentlab.modules.family_methods import attention_method


@attention_method("proposed")
def windows(ctx, growth: float = 2.0) -> list[list[int]]:
    """The first layer sees ctx.window tokens, the last ctx.window * growth, geometric in between."""
    last = max(1, ctx.n_layers - 1)
    out = []
    for layer in range(ctx.n_layers):
        w = max(1, int(round(ctx.window * growth ** (layer / last))))
        out.append([w] * ctx.n_heads)
    return out
'''
ATTENTION_ABLATION = {"params": {"growth": 1.0}, "rationale": "growth = 1 is a uniform window"}

# ---- speculative: a most-recent-match n-gram drafter over the sequence so far ------------------------------
SPECULATIVE_PLAN = {
    "title": "Most-recent n-gram drafting for speculative decoding",
    "hypothesis": "Drafting the continuation of the most recent earlier occurrence of the last n tokens (backing "
                  "off to shorter n-grams) is accepted more often than prompt lookup and early exit.",
    "method": "Match the last `ngram` tokens (down to 1) against the sequence so far, latest occurrence first, "
              "and draft the k tokens that followed it; the target verifies them greedily.",
    "metrics": [{"name": "tokens_per_s", "direction": "higher", "description": "decoding speed"},
                {"name": "accept_rate", "direction": "higher", "description": "accepted / drafted tokens"}],
    "baselines": ["prompt lookup decoding", "early-exit self-speculation"],
    "ablations": ["unigram matching only"],
    "experiment_outline": "Compare against prompt lookup and early exit at 2, 4 and 8 draft tokens.",
    "risks": "Random tiny models repeat little; speed on a CPU is noisy.",
}
SPECULATIVE_BASELINES = {"baselines": ["prompt_lookup", "early_exit"],
                         "primary": "tokens_per_s", "rationale": "the plan's baselines"}
SPECULATIVE_METHOD = '''from agentlab.modules.family_methods import draft_method


@draft_method("proposed")
def propose(ctx, k: int = 4, ngram: int = 3) -> list[int]:
    """The k tokens after the latest earlier occurrence of the last n tokens, n = ngram down to 1."""
    seq = ctx.seq
    for n in range(min(ngram, len(seq) - 1), 0, -1):
        tail = seq[-n:]
        for i in range(len(seq) - n - 1, -1, -1):
            if seq[i:i + n] == tail:
                return list(seq[i + n:i + n + k])
    return []
'''
SPECULATIVE_ABLATION = {"params": {"ngram": 1}, "rationale": "ngram = 1 matches only the last token"}

#: family -> what a run of it is scripted with; "param" is the parameter the ablation changes and its values
FAMILIES: dict[str, dict[str, Any]] = {
    "prune": {"plan": PRUNE_PLAN, "baselines": PRUNE_BASELINES, "method": PRUNE_METHOD,
              "ablation": PRUNE_ABLATION, "param": ("alpha", 0.5, 0.0),
              "idea": "Does weighting magnitudes by input-activation norms to a power beat Wanda at 50% sparsity?"},
    "attention": {"plan": ATTENTION_PLAN, "baselines": ATTENTION_BASELINES, "method": ATTENTION_METHOD,
                  "ablation": ATTENTION_ABLATION, "param": ("growth", 2.0, 1.0),
                  "idea": "Do sliding windows that grow with depth beat a uniform window at the same KV cache?"},
    "speculative": {"plan": SPECULATIVE_PLAN, "baselines": SPECULATIVE_BASELINES, "method": SPECULATIVE_METHOD,
                    "ablation": SPECULATIVE_ABLATION, "param": ("ngram", 3, 1),
                    "idea": "Does drafting from the latest n-gram match speed up greedy decoding more than "
                            "prompt lookup?"},
}


def method_reply(family: str) -> str:
    """The implement stage's reply for `family`: prose and method.py in a named fenced block."""
    return fenced({"method.py": FAMILIES[family]["method"]})


def family_run(srv: ScriptedLLM, family: str, **overrides: Any) -> ScriptedLLM:
    """Script `srv` for a full run studying a method of `family` (prune | attention | speculative)."""
    f = FAMILIES[family]
    replies: dict[str, Any] = {
        "Plan": f["plan"],
        "FamilyChoice": {"family": family, "rationale": f"the plan studies a {family} method"},
        "BaselineSpec": f["baselines"],
        "text": method_reply(family),
        "AblationChoice": f["ablation"],
        "Review": GOOD_REVIEW,
        "Interpretation": {"summary": f"The method was measured against {', '.join(f['baselines']['baselines'])}.",
                           "verdict": "inconclusive", "key_findings": ["see results"], "caveats": ["small model"]},
    }
    replies.update(overrides)
    return install(srv, replies)
