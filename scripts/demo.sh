#!/usr/bin/env bash
# Install everything, then run one whole research run headless on the embedded defaults
# (the SmolLM2-135M model served locally when OPENAI_BASE_URL is unset; the bwrap sandbox).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
IDEA=${1:-"Does sink+window KV eviction keep perplexity within 5% at 4x compression on a small Llama?"}
exec agentlab run "$IDEA" --headless --on-checkpoint approve --max-papers 3 --max-attempts 2
