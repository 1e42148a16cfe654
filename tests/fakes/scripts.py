"""A full research run's worth of scripted replies: real experiment code, a plan with a real metric,
reviews that accept; every other schema answered by a minimal valid instance (autoreply)."""

from __future__ import annotations

from typing import Any

from tests.fakes.autoreply import install
from tests.fakes.openai_server import ScriptedLLM

PLAN = {
    "title": "Sink plus window KV eviction on a toy model",
    "hypothesis": "Keeping 4 sink tokens and a recent window keeps the error within 5% at 4x compression.",
    "method": "Compare dense attention with sink+window eviction on a synthetic sequence.",
    "metrics": [{"name": "rel_error", "direction": "lower", "description": "relative error vs dense"},
                {"name": "compression", "direction": "higher", "description": "KV entries dense / kept"}],
    "baselines": ["dense attention"],
    "experiment_outline": "Measure relative error at 4x compression.",
    "risks": "Toy data.",
}

# Real, measured numbers: a small attention computation in pure Python (no torch needed).
EXPERIMENT_CODE = '''
import json, math, random
random.seed(0)
T, d, sink, window = 64, 8, 4, 12
keys = [[random.gauss(0, 1) for _ in range(d)] for _ in range(T)]
vals = [[random.gauss(0, 1) for _ in range(d)] for _ in range(T)]
q = [random.gauss(0, 1) for _ in range(d)]
def attend(idx):
    s = [sum(a * b for a, b in zip(q, keys[i])) / math.sqrt(d) for i in idx]
    m = max(s); w = [math.exp(x - m) for x in s]; z = sum(w)
    return [sum(w[j] * vals[i][k] for j, i in enumerate(idx)) / z for k in range(d)]
dense = attend(list(range(T)))
kept = list(range(sink)) + list(range(T - window, T))
approx = attend(kept)
err = math.sqrt(sum((a - b) ** 2 for a, b in zip(dense, approx))) / math.sqrt(sum(a * a for a in dense))
res = {"metrics": {"rel_error": err, "compression": T / len(kept)}, "details": {"T": T, "kept": len(kept)}}
json.dump(res, open("results.json", "w"))
print("rel_error", err, "compression", T / len(kept))
'''

GOOD_REVIEW = {"summary": "A small but honest study.", "strengths": ["clear"], "weaknesses": ["toy data"],
               "soundness": 3, "presentation": 3, "contribution": 2, "overall": 7, "confidence": 3}


def full_run(srv: ScriptedLLM, **overrides: Any) -> ScriptedLLM:
    replies: dict[str, Any] = {
        "Plan": PLAN,
        "ExperimentCode": {"explanation": "sink+window vs dense", "code": EXPERIMENT_CODE},
        "Review": GOOD_REVIEW,
        "Interpretation": {"summary": "The relative error was measured at 4x compression.", "verdict": "inconclusive",
                           "key_findings": ["see results"], "caveats": ["toy data"]},
    }
    replies.update(overrides)
    return install(srv, replies)
