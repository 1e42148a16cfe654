"""Tokens/s of the embedded SmolLM2-135M endpoint: the onnxruntime-genai server vs the decoder it replaced.

In one run, with one CPU thread each, the same chat prompt, greedy decoding, ``--max-tokens`` (128):

1. ``new``: AgentLab's embedded server (int4 ONNX, onnxruntime-genai), through its HTTP API with the
   openai client (chat templating, prefill, decode, HTTP);
2. ``legacy``: the transformers + torch float32 decoder it replaced, the server file (and its JSON
   module) read from git at ``LEGACY_COMMIT`` and served the same way over HTTP;
3. ``plain``: a bare onnxruntime-genai generate loop in this process on the same ONNX folder (same
   repetition penalty): the ceiling the new server is measured against.

One warm-up, then the median of ``--repeats``. PASS when new/plain >= 0.8 (timings are not asserted in
tests). Writes benchmarks/results/embedded.json.

    .venv/bin/python benchmarks/embedded.py [--max-tokens 128] [--repeats 3] [--no-legacy]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import openai  # noqa: E402

from agentlab.llm.embedded import EmbeddedServer, free_port, locate_gguf  # noqa: E402
from agentlab.llm.embedded_convert import ensure_onnx  # noqa: E402
from agentlab.llm.embedded_server import REPETITION_PENALTY  # noqa: E402

LEGACY_COMMIT = "6f622167197433c39b28e1367902581f1f4c8658"  # HEAD before issue 16 replaced the decoder
PROMPT = [{"role": "user", "content": "Write a long, detailed essay about the history of computing."}]
RATIO_MIN = 0.8
# runs the legacy server file with its legacy JSON module registered under its old import name
LEGACY_RUNNER = """
import importlib.util, sys
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec); sys.modules[name] = mod; spec.loader.exec_module(mod); return mod
load("agentlab.llm.embedded_json", sys.argv[1])
load("legacy_embedded_server", sys.argv[2]).main(sys.argv[3:])
"""


def http_rates(base_url: str, api_key: str, model: str, max_tokens: int, repeats: int) -> dict:
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=900)

    def once() -> tuple[int, int, float]:
        t0 = time.perf_counter()
        r = client.chat.completions.create(model=model, messages=PROMPT, max_tokens=max_tokens, temperature=0)
        return r.usage.prompt_tokens, r.usage.completion_tokens, time.perf_counter() - t0

    once()  # warm-up
    return _summary([once() for _ in range(repeats)])


def _summary(runs: list[tuple[int, int, float]]) -> dict:
    rates = [c / s for _, c, s in runs]
    return {"prompt_tokens": runs[0][0], "completion_tokens": [c for _, c, _ in runs],
            "seconds": [round(s, 3) for _, _, s in runs], "tokens_per_s": [round(x, 2) for x in rates],
            "median_tokens_per_s": round(statistics.median(rates), 2)}


def measure_new(max_tokens: int, repeats: int) -> dict:
    with EmbeddedServer(threads=1) as srv:
        out = http_rates(srv.base_url, srv.api_key, srv.model, max_tokens, repeats)
    return {**out, "start_seconds": round(srv.start_seconds or 0.0, 2)}


def measure_legacy(max_tokens: int, repeats: int) -> dict:
    """The replaced server, from git, on 1 torch thread, behind the same HTTP client."""
    with tempfile.TemporaryDirectory(prefix="agentlab-legacy-") as tmp:
        files = {}
        for name in ("embedded_server", "embedded_json"):
            src = subprocess.run(["git", "show", f"{LEGACY_COMMIT}:agentlab/llm/{name}.py"], cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout
            files[name] = Path(tmp) / f"legacy_{name}.py"
            files[name].write_text(src)
        (Path(tmp) / "runner.py").write_text(LEGACY_RUNNER)
        port = free_port()
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1",
                   TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(ROOT))
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, str(Path(tmp) / "runner.py"), str(files["embedded_json"]),
                                 str(files["embedded_server"]), "--port", str(port), "--threads", "1"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            base = f"http://127.0.0.1:{port}/v1"
            client = openai.OpenAI(base_url=base, api_key="x", max_retries=0, timeout=5)
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"legacy server exited: {proc.stderr.read()[-2000:]}")
                try:
                    client.models.list()
                    break
                except openai.APIConnectionError:
                    time.sleep(0.5)
            start = time.monotonic() - t0
            out = http_rates(base, "x", EmbeddedServer.model, max_tokens, repeats)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {**out, "start_seconds": round(start, 2), "commit": LEGACY_COMMIT}


def measure_plain(max_tokens: int, repeats: int) -> dict:
    """A bare onnxruntime-genai loop: template, encode, generate token by token, decode."""
    import onnxruntime_genai as og

    folder, _ = ensure_onnx(locate_gguf())
    config = og.Config(str(folder))
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {
        "intra_op_num_threads": 1, "inter_op_num_threads": 1}}}}))
    model = og.Model(config)
    tok = og.Tokenizer(model)

    def once() -> tuple[int, int, float]:
        t0 = time.perf_counter()
        ids = tok.encode(tok.apply_chat_template(json.dumps(PROMPT), add_generation_prompt=True))
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + max_tokens, do_sample=False,
                                  repetition_penalty=REPETITION_PENALTY)
        gen = og.Generator(model, params)
        gen.append_tokens(ids)
        stream, text, n = tok.create_stream(), "", 0
        while not gen.is_done():
            gen.generate_next_token()
            text += stream.decode(int(gen.get_next_tokens()[0]))
            n += 1
        return len(ids), n, time.perf_counter() - t0

    once()
    return _summary([once() for _ in range(repeats)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-legacy", action="store_true", help="skip the replaced decoder (needs git + torch)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "embedded.json")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    results = {"new": measure_new(args.max_tokens, args.repeats),
               "plain": measure_plain(args.max_tokens, args.repeats)}
    if not args.no_legacy:
        results["legacy"] = measure_legacy(args.max_tokens, args.repeats)
    rate = {k: v["median_tokens_per_s"] for k, v in results.items()}
    ratios = {"new_over_plain": round(rate["new"] / rate["plain"], 3)}
    if "legacy" in rate:
        ratios["new_over_legacy"] = round(rate["new"] / rate["legacy"], 3)
    verdict = "PASS" if ratios["new_over_plain"] >= RATIO_MIN else "FAIL"
    print(f"embedded {results['new']['prompt_tokens']}-token prompt, max_tokens={args.max_tokens}, greedy, "
          f"1 thread, median of {args.repeats}")
    print(f"{'decoder':>8} | {'start s':>7} | {'tokens':>6} | {'tokens/s':>8}")
    for name, r in results.items():
        print(f"{name:>8} | {r.get('start_seconds', 0.0):>7.1f} | {r['completion_tokens'][0]:>6} | "
              f"{r['median_tokens_per_s']:>8.2f}")
    if "new_over_legacy" in ratios:
        print(f"new/legacy: {ratios['new_over_legacy']:.2f}x  (legacy = git {LEGACY_COMMIT[:12]})")
    print(f"new/plain: {ratios['new_over_plain']:.2f}x  (needs >= {RATIO_MIN}) {verdict}")
    print(f"1-min load average before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    payload = {"benchmark": "embedded", "model": EmbeddedServer.model, "max_tokens": args.max_tokens,
               "repeats": args.repeats, "threads": 1, "cpu_count": os.cpu_count(),
               "loadavg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
               "machine": platform.machine(), "python": platform.python_version(), "results": results,
               "ratios": ratios, "ratio_min_new_over_plain": RATIO_MIN, "verdict": verdict,
               "legacy_commit": LEGACY_COMMIT,
               "note": "new and legacy are end-to-end per HTTP request (templating + prefill + decode + HTTP); "
                       "plain is the bare onnxruntime-genai loop on the same int4 ONNX folder"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
