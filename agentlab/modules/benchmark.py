"""The modules benchmark: dense vs. every method on one model, side by side with in-run references.

Used by ``benchmarks/modules.py`` (CPU, 1 thread) and ``sandbox/gpu_smoke.py`` (CUDA/ROCm). Not part of
the experiment API (``apidoc`` does not list it).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import platform
import time
from pathlib import Path

import torch

from agentlab.modules import attention, data, draft_heads, kv, kv_latent, metrics, prune, prune_search, speculative
from agentlab.modules.models import load_smollm2, select_device

__api__ = False  # not part of the experiment API doc

COLUMNS = ("group", "method", "impl", "ppl", "ref_ppl", "acc_ret", "kv_bytes", "kv_ratio", "params", "sparsity",
           "tokens_per_s", "tau", "accept_rate", "lossless", "note")


def _kvpress_status() -> str:
    return "installed (not used by this benchmark)" if importlib.util.find_spec("kvpress") else "not installed"


def _row(**kw) -> dict:
    return {c: kw.get(c) for c in COLUMNS}


#: extra settings a method is benchmarked at (default: once, with its defaults and, if it evicts, budget 0.25)
KV_VARIANTS: dict[str, list[dict]] = {"quantize": [{"bits": 8}, {"bits": 4}]}


def kv_cases() -> list[tuple[str, dict]]:
    """(method, kwargs) for every registered KV method, plugins included."""
    from agentlab.modules.methods import get_kv_method

    out = []
    for name in kv.method_names():
        budget = {} if get_kv_method(name).kind == "transform" else {"budget": 0.25}
        out += [(name, {**budget, **v}) for v in KV_VARIANTS.get(name, [{}])]
    return out


def run(quick: bool = False, device: str = "cpu", threads: int | None = 1, dtype=torch.float32, log=print) -> dict:
    """Run every method once; returns {"meta": ..., "rows": [...]} (see COLUMNS)."""
    import transformers

    transformers.logging.set_verbosity_error()  # HF's deprecation notes about generate kwargs are noise here
    transformers.utils.logging.disable_progress_bar()
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    load_start = _loadavg()
    dev = select_device(device)
    model, tok = load_smollm2(device=str(dev), dtype=dtype)
    ctx_len, tgt_len = (256, 64) if quick else (384, 128)
    n_eval = ctx_len + tgt_len
    gen_tokens = 24 if quick else 32
    eval_ids = data.token_ids(tok, data.load_text("eval"), n_eval)
    calib_ids = data.token_ids(tok, data.load_text("calib"), 256 if quick else 512)
    ctx, tgt = eval_ids[:, :ctx_len], eval_ids[:, ctx_len:]
    full_ids = tok(data.load_text("eval"), return_tensors="pt").input_ids
    prompts = [full_ids[:, 600:664], full_ids[:, 900:964]][: 1 if quick else 2]
    rows: list[dict] = []
    dense_params = metrics.param_count(model)
    dense_kv = metrics.dense_kv_bytes(model, n_eval)

    def speed(m) -> float:  # best of two short greedy runs: less sensitive to a busy machine
        return max(speculative.greedy_generate(m, prompts[0].to(dev), 16)[1].tokens_per_s for _ in range(2))

    log(f"[{time.perf_counter() - t0:.0f}s] dense")
    dense_ppl = metrics.perplexity(model, eval_ids)
    dense_acc = metrics.next_token_accuracy(model, eval_ids)

    def retention(m) -> float:
        return metrics.accuracy_retention(metrics.next_token_accuracy(m, eval_ids), dense_acc)

    rows.append(_row(group="dense", method="dense", impl="ours", ppl=dense_ppl, acc_ret=1.0, kv_bytes=dense_kv,
                     kv_ratio=1.0,
                     params=dense_params, sparsity=0.0, tokens_per_s=speed(model),
                     note=f"ppl on {n_eval} eval tokens; KV bytes at {n_eval} tokens"))

    # --- KV cache compression: prefill ctx, compress, score the continuation
    log(f"[{time.perf_counter() - t0:.0f}s] kv")
    state = kv.prefill(model, ctx)
    dense_cont = kv.score_continuation(model, state, tgt)
    rows.append(_row(group="kv", method="full cache", impl="ours", ppl=dense_cont,
                     kv_bytes=metrics.dense_kv_bytes(model, ctx_len), kv_ratio=1.0,
                     note=f"ppl of {tgt_len} tokens after a {ctx_len}-token context"))
    for name, kw in kv_cases():
        st_state, st = kv.compress(model, ctx, name, **kw)
        ref = kv.mask_reference_perplexity(model, ctx, tgt, st_state) if st_state.kept is not None else None
        ppl = kv.score_continuation(model, st_state, tgt)
        rows.append(_row(group="kv", method=st.method, impl="ours", ppl=ppl, ref_ppl=ref, kv_bytes=st.kv_bytes,
                         kv_ratio=st.compression_ratio,
                         note=(f"kept {st.kept_tokens}/{st.tokens}; ref = one pass, evicted keys masked" if ref
                               else f"{st.bits}-bit codes + fp16 scale/zero per 32 channels")))
    lat, lst = kv_latent.low_rank_kv(copy.deepcopy(model), calib_ids, rank=96)
    lstate = kv.prefill(lat, ctx)
    rows.append(_row(group="kv", method="latent_kv r=96", impl="ours", ppl=kv.score_continuation(lat, lstate, tgt),
                     kv_bytes=kv_latent.latent_kv_bytes(lst, ctx_len), kv_ratio=lst.compression_ratio,
                     params=metrics.param_count(lat), note="activation-aware PCA of K/V projections (calib text)"))
    del lat

    # --- pruning: perplexity on the eval text
    log(f"[{time.perf_counter() - t0:.0f}s] prune")
    for label, fn in [
        ("magnitude 50%", lambda m: prune.magnitude_prune(m, 0.5)),
        ("wanda 50%", lambda m: prune.wanda_prune(m, calib_ids, 0.5)),
        ("global search 50% (Tyr-style)", lambda m: prune_search.global_sparsity_search(
            m, calib_ids, 0.5, offsets=(-0.1, 0.0, 0.1), refine_steps=2 if quick else 4,
            loss_tokens=128 if quick else 256)),
        ("mlp channels 25%", lambda m: prune.prune_mlp_channels(m, calib_ids, 0.25)),
        ("mlp channels 25%", lambda m: prune.prune_mlp_channels_tp(m, calib_ids, 0.25)),
        ("attention heads 1/3", lambda m: prune.prune_attention_heads(m, calib_ids, 1 / 3)),
        ("remove 6 layers (BI)", lambda m: prune.remove_layers(m, calib_ids, 6)),
    ]:
        try:
            pm, st = fn(copy.deepcopy(model))
        except ImportError as exc:
            rows.append(_row(group="prune", method=label, impl="torch-pruning", note=str(exc)))
            continue
        impl = "torch-pruning" if st.method.endswith("torch_pruning") else "ours"
        note = _prune_note(st, impl)
        rows.append(_row(group="prune", method=label, impl=impl, ppl=metrics.perplexity(pm, eval_ids),
                         acc_ret=retention(pm),
                         kv_bytes=metrics.dense_kv_bytes(pm, n_eval), params=st.params_after,
                         sparsity=st.sparsity, tokens_per_s=speed(pm), note=note))
        del pm

    # --- window attention: full-sequence perplexity with windows of 128
    log(f"[{time.perf_counter() - t0:.0f}s] attention")
    ref = attention.hf_sliding_window_reference(model, 128)
    ref_ppl = metrics.perplexity(ref, eval_ids)
    del ref
    for label, fn in [("swa w=128", lambda m: attention.sliding_window_attention(m, 128, seq_len=n_eval)),
                      ("mswa mean w=128", lambda m: attention.multi_scale_window_attention(m, 128, seq_len=n_eval))]:
        wm, st = fn(copy.deepcopy(model))
        rows.append(_row(group="attention", method=label, impl="ours", ppl=metrics.perplexity(wm, eval_ids),
                         ref_ppl=ref_ppl if st.method == "swa" else None, acc_ret=retention(wm), kv_bytes=st.kv_bytes,
                         kv_ratio=st.compression_ratio, tokens_per_s=speed(wm),
                         note="ref = HF Mistral sliding_window on the same weights" if st.method == "swa"
                         else "windows x(0.25,0.5,1,2) per head group, x(0.5,1,2) per layer third, mean 128"))
        del wm

    # --- speculative decoding
    log(f"[{time.perf_counter() - t0:.0f}s] speculative")
    draft, _ = prune.remove_layers(copy.deepcopy(model), calib_ids, 6)
    heads_m = draft_heads.make_draft_heads(model, n_parallel=3)
    heads_m, hst = draft_heads.train_draft_heads(model, heads_m, calib_ids, steps=30 if quick else 60)
    heads_h = draft_heads.make_draft_heads(model, n_parallel=2, n_serial=2)
    heads_h, hst2 = draft_heads.train_draft_heads(model, heads_h, calib_ids, steps=30 if quick else 60)
    exit_layer = 12
    methods = [
        ("greedy", "ours", lambda p: speculative.greedy_generate(model, p, gen_tokens)),
        ("greedy", "HF generate", lambda p: speculative.hf_generate(model, p, gen_tokens)),
        ("draft model (24-layer BI-pruned copy), k=4", "ours",
         lambda p: speculative.speculative_generate(model, draft, p, gen_tokens, k=4)),
        ("draft model (24-layer BI-pruned copy), k=4", "HF assistant_model",
         lambda p: speculative.hf_generate(model, p, gen_tokens, assistant_model=draft, num_assistant_tokens=4,
                                           num_assistant_tokens_schedule="constant")),
        ("draft model sampling T=1, k=4", "ours",
         lambda p: speculative.speculative_generate(model, draft, p, gen_tokens, k=4, do_sample=True)),
        ("prompt lookup (ngram 3, k=10)", "ours", lambda p: speculative.prompt_lookup_generate(model, p, gen_tokens)),
        ("prompt lookup (ngram 3, k=10)", "HF prompt_lookup_num_tokens",
         lambda p: speculative.hf_generate(model, p, gen_tokens, prompt_lookup_num_tokens=10,
                                           max_matching_ngram_size=3)),
        (f"self-spec early exit {exit_layer} layers, k=4", "ours",
         lambda p: speculative.self_speculative_generate(model, p, gen_tokens, keep_layers=exit_layer, k=4)),
        (f"self-spec early exit {exit_layer} layers, k=4", "HF assistant_early_exit",
         lambda p: speculative.hf_generate(model, p, gen_tokens, assistant_early_exit=exit_layer,
                                           num_assistant_tokens=4, num_assistant_tokens_schedule="constant")),
        (f"medusa heads x3 ({hst.steps} steps)", "ours",
         lambda p: draft_heads.heads_generate(model, heads_m, p, gen_tokens)),
        (f"hybrid heads 2 serial + 2 parallel ({hst2.steps} steps)", "ours",
         lambda p: draft_heads.heads_generate(model, heads_h, p, gen_tokens)),
    ]
    plain = [speculative.greedy_generate(model, p.to(dev), gen_tokens)[0] for p in prompts]
    for label, impl, fn in methods:
        agg, same = _spec_totals(fn, prompts, plain, dev)
        sampling = "sampling" in label
        tau = (agg["new"] - len(prompts)) / agg["passes"] if agg["passes"] else None
        rows.append(_row(group="speculative", method=label, impl=impl, tokens_per_s=agg["new"] / agg["seconds"],
                         tau=tau, accept_rate=agg["accepted"] / agg["drafted"] if agg["drafted"] else None,
                         lossless=None if sampling else same,
                         note=_spec_note(label, impl, hst, hst2)))
    meta = {
        "model": "SmolLM2-135M-Instruct (Q4_1 GGUF dequantized)", "device": str(dev),
        "device_name": torch.cuda.get_device_name(0) if dev.type == "cuda" else platform.processor() or platform.machine(),
        "hip": getattr(torch.version, "hip", None), "dtype": str(dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "torch_pruning": _version("torch_pruning"), "kvpress": _kvpress_status(),
        "kvpress_note": "kvpress 0.5.5 (latest) requires transformers<5.3; installing it would downgrade "
                        "transformers 5.23 -> 5.2, so it is not used. KV references here: the masked one-pass "
                        "reference (eviction), HF Mistral sliding window (SWA).",
        "quick": quick, "eval_tokens": n_eval, "context_tokens": ctx_len, "continuation_tokens": tgt_len,
        "calib_tokens": int(calib_ids.shape[1]), "gen_tokens": gen_tokens, "prompts": len(prompts),
        "seconds": round(time.perf_counter() - t0, 1), "dense_params": dense_params, "dense_acc": dense_acc,
        "cpu_count": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": _loadavg(),
    }
    log(f"[{meta['seconds']:.0f}s] done")
    return {"meta": meta, "rows": rows}


def _prune_note(st, impl: str) -> str:
    """The note column for one pruning row."""
    note = ""
    if st.method == "global_search":
        n = st.notes
        note = (f"calib loss uniform {n['loss_uniform']:.3f} -> searched {n['loss_searched']:.3f}; "
                f"layer sparsity {min(n['allocation']):.2f}..{max(n['allocation']):.2f}")
    elif st.removed_layers:
        note = f"removed layers {st.removed_layers}"
    elif impl == "torch-pruning":
        note = ("DependencyGraph + GroupMagnitudeImportance: weight-norm ranking (its surgery equals ours "
                "for the same channels, tested); ours ranks by activations")
    return note


def _spec_totals(fn, prompts: list, plain: list, dev) -> tuple[dict, bool]:
    """Run one decoding method on every prompt: (summed stats, whether every output equals plain greedy)."""
    agg = {"new": 0, "passes": 0, "drafted": 0, "accepted": 0, "seconds": 0.0}
    same = True
    for p, ref_out in zip(prompts, plain):
        out, st = fn(p.to(dev))
        same = same and torch.equal(out.to(ref_out.device), ref_out)
        agg["new"] += st.new_tokens
        agg["passes"] += st.verify_passes
        agg["drafted"] += st.drafted
        agg["accepted"] += st.accepted
        agg["seconds"] += st.seconds
    return agg, same


def _spec_note(label: str, impl: str, hst, hst2) -> str:
    if "sampling" in label:
        return "distribution-preserving (tested), not token-identical"
    if impl.startswith("HF"):
        return "tau from counting the target's full passes (hook on its last layer)"
    if "heads" in label and impl == "ours":
        acc = hst.head_accuracy if "medusa" in label else hst2.head_accuracy
        return "head top-1 acc on its calib text " + ", ".join(f"{a:.2f}" for a in acc)
    return ""


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _version(mod: str):
    try:
        return __import__(mod).__version__
    except Exception:  # noqa: BLE001 - any import problem means "not available"
        return None


def _fmt(v, col):
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if col in ("ppl", "ref_ppl"):
        return f"{v:.2f}"
    if col == "kv_bytes":
        return f"{v / 1024:.0f} KiB"
    if col == "params":
        return f"{v / 1e6:.2f}M"
    if col in ("kv_ratio", "tau", "acc_ret"):
        return f"{v:.2f}"
    if col in ("sparsity", "accept_rate"):
        return f"{100 * v:.0f}%"
    if col == "tokens_per_s":
        return f"{v:.1f}"
    return str(v)


def to_markdown(result: dict) -> str:
    """The result as a Markdown table with a header that states the setup."""
    m = result["meta"]
    head = [
        "# agentlab.modules benchmark",
        "",
        f"Model {m['model']} on {m['device']} ({m['device_name']}), {m['dtype']}, {m['threads']} thread(s); "
        f"torch {m['torch']}, transformers {m['transformers']}, torch-pruning {m['torch_pruning']}, "
        f"kvpress: {m['kvpress']}. Eval text: {m['eval_tokens']} tokens of the shipped eval.txt "
        f"(KV rows: {m['context_tokens']}-token context compressed, ppl of the next {m['continuation_tokens']}); "
        f"calibration: {m['calib_tokens']} tokens of calib.txt; decoding: {m['prompts']} prompt(s) x "
        f"{m['gen_tokens']} new tokens, greedy unless stated. Run time {m['seconds']} s. "
        f"Machine load average (1/5/15 min) at start {m['loadavg_start']}, at end {m['loadavg_end']} on "
        f"{m['cpu_count']} CPUs: tokens/s are only comparable within one run. acc_ret = next-token top-1 "
        f"accuracy on the eval text / dense ({m.get('dense_acc', 0):.3f}).",
        "",
        f"kvpress: {m['kvpress_note']}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    body = ["| " + " | ".join(_fmt(r[c], c) for c in COLUMNS) + " |" for r in result["rows"]]
    return "\n".join(head + body) + "\n"


def write(result: dict, out_dir: Path, stem: str = "modules") -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    j, md = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    j.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    md.write_text(to_markdown(result), encoding="utf-8")
    return j, md
