"""Tokens/s of the embedded SmolLM2-135M endpoint on 1 and 2 CPU threads.

Same prompt, same max_tokens, greedy decoding, through the real openai client against the real
server (so the numbers include chat templating, prefill and HTTP). One warm-up request, then the
median of ``--repeats`` requests. Prints a table and writes benchmarks/results/embedded.json.

    .venv/bin/python benchmarks/embedded.py [--max-tokens 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402

from agentlab.llm.embedded import EmbeddedServer  # noqa: E402

PROMPT = [{"role": "user", "content": "Write a long, detailed essay about the history of computing."}]


def measure(threads: int, max_tokens: int, repeats: int) -> dict:
    """Start a server with `threads` torch threads and time `repeats` greedy completions."""
    with EmbeddedServer(threads=threads) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key=srv.api_key, max_retries=0, timeout=600)

        def once() -> tuple[int, int, float]:
            t0 = time.perf_counter()
            r = client.chat.completions.create(model=srv.model, messages=PROMPT, max_tokens=max_tokens,
                                               temperature=0)
            return r.usage.prompt_tokens, r.usage.completion_tokens, time.perf_counter() - t0

        once()  # warm-up
        runs = [once() for _ in range(repeats)]
    rates = [c / s for _, c, s in runs]
    return {"threads": threads, "start_seconds": round(srv.start_seconds or 0.0, 2),
            "prompt_tokens": runs[0][0], "completion_tokens": [c for _, c, _ in runs],
            "seconds": [round(s, 3) for _, _, s in runs], "tokens_per_s": [round(x, 2) for x in rates],
            "median_tokens_per_s": round(statistics.median(rates), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "embedded.json")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    results = [measure(t, args.max_tokens, args.repeats) for t in (1, 2)]
    ratio = results[1]["median_tokens_per_s"] / results[0]["median_tokens_per_s"]
    print(f"embedded {results[0]['prompt_tokens']}-token prompt, max_tokens={args.max_tokens}, greedy, "
          f"median of {args.repeats}")
    print(f"{'threads':>7} | {'start s':>7} | {'tokens':>6} | {'tokens/s':>8}")
    for r in results:
        print(f"{r['threads']:>7} | {r['start_seconds']:>7.1f} | {r['completion_tokens'][0]:>6} | "
              f"{r['median_tokens_per_s']:>8.2f}")
    print(f"ratio 2-thread/1-thread: {ratio:.2f}x  (1-min load average before/after: "
          f"{load_before:.1f}/{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    payload = {"benchmark": "embedded", "model": EmbeddedServer.model, "max_tokens": args.max_tokens,
               "repeats": args.repeats, "cpu_count": os.cpu_count(),
               "loadavg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)], "machine": platform.machine(),
               "python": platform.python_version(), "results": results, "ratio_2_over_1": round(ratio, 3),
               "note": "end-to-end per request (templating + prefill + decode + HTTP); load time is "
                       "start_seconds (cached dequantized weights if present)"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
