#!/usr/bin/env bash
# Install everything, then run one whole research run headless on the embedded defaults:
# the SmolLM2-135M model served locally when OPENAI_BASE_URL is unset, the bwrap sandbox, and arXiv
# (or, when arXiv cannot be reached, the reading list in workflows/reading/ in offline mode).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
IDEA=${1:-"Does sink+window KV eviction keep perplexity within 5% at 4x compression on a small Llama?"}
shift || true
EXTRA=()
if ! python - <<'PY'
import urllib.request, sys
try:
    urllib.request.urlopen("https://export.arxiv.org/api/query?search_query=all:kv&max_results=1", timeout=8)
except Exception:
    sys.exit(1)
PY
then
  echo "== arXiv is not reachable: using the local reading list workflows/reading/ (offline mode)"
  EXTRA=(--papers workflows/reading --offline)
fi
exec agentlab run "$IDEA" --headless --on-checkpoint approve --max-papers 3 --max-attempts 1 "${EXTRA[@]}" "$@"
