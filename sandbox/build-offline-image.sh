#!/usr/bin/env bash
# Build the offline docker test image (default tag agentlab-sandbox:test) without pulling anything:
# a FROM-scratch rootfs holding this host's python interpreter, the project venv (torch, transformers, ...)
# and exactly the shared libraries they link against, imported with `docker import`.
# The venv is copied to the fixed path /opt/agentlab-venv inside the image, wherever it lives on the host: a
# venv under /tmp (a checkout in /tmp) would otherwise be hidden by the sandbox's private /tmp tmpfs.
# The project package itself is NOT baked in: the docker backend mounts it read-only at /opt/agentlab.
# Usage: sandbox/build-offline-image.sh [TAG]   (env PYTHON=path/to/venv/python overrides the interpreter)
set -euo pipefail
TAG="${1:-agentlab-sandbox:test}"
ROOT_DIR="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$ROOT_DIR/.venv/bin/python}"
[ -x "$PY" ] || { echo "no python at $PY (set PYTHON=...)" >&2; exit 1; }
command -v docker >/dev/null || { echo "docker CLI not found" >&2; exit 1; }
read -r VENV BASE < <("$PY" -c 'import sys; print(sys.prefix, sys.base_prefix)')
IMG_VENV=/opt/agentlab-venv  # where the venv lives inside the image (never under a path the sandbox hides)
case "$BASE/" in
  /tmp/*|/job/*|/dev/*|/proc/*|/sys/*|/run/*|/opt/agentlab/*|/opt/agentlab-venv/*)
    echo "the python installation $BASE lies under a path the sandbox hides or mounts over (/tmp, /job, ...):" \
         "create the venv from a python installed elsewhere (e.g. /usr/bin/python3 -m venv ...) and set PYTHON=" >&2
    exit 1;;
esac
START=$(date +%s)
WORK="$(mktemp -d /tmp/agentlab-rootfs.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
RF="$WORK/rootfs"
mkdir -p "$RF"/{tmp,job,opt/agentlab,etc,dev,proc,sys,usr/bin,usr/lib64,usr/lib/x86_64-linux-gnu}
chmod 1777 "$RF/tmp"
ln -s usr/bin "$RF/bin"; ln -s usr/lib "$RF/lib"; ln -s usr/lib64 "$RF/lib64"

echo "[1/4] copying python prefix $BASE (without its own site-packages and test suite)"
mkdir -p "$RF$BASE"
tar -C "$BASE" --exclude=./lib/python3.11/site-packages --exclude=./lib/python3.11/test \
    --exclude='*/__pycache__/*.opt-*.pyc' -cf - . | tar -C "$RF$BASE" -xf -
mkdir -p "$RF$BASE/lib/python3.11/site-packages"
echo "[2/4] copying venv $VENV to $IMG_VENV"
mkdir -p "$RF$IMG_VENV"
tar -C "$VENV" -cf - . | tar -C "$RF$IMG_VENV" -xf -
# every directory on the way must be traversable by the non-root job user
d="$BASE"; while [ "$d" != "/" ]; do chmod 755 "$RF$d"; d="$(dirname "$d")"; done
d="$IMG_VENV"; while [ "$d" != "/" ]; do chmod 755 "$RF$d"; d="$(dirname "$d")"; done

echo "[3/4] collecting shared libraries (ldd closure)"
LIBS="$WORK/libs.txt"
{ find "$BASE/bin" "$BASE/lib" "$VENV" -type f \( -name '*.so' -o -name '*.so.*' -o -perm -u+x \) -print0 \
    | { xargs -0 -n 64 ldd 2>/dev/null || true; } | awk '/=> \//{print $3} /^\t\/.*\(0x/{print $1}'
  ldd /bin/sh | awk '/=> \//{print $3} /^\t\/.*\(0x/{print $1}'
  echo /bin/sh; echo /usr/bin/env
} | { grep -v -e "^$BASE" -e "^$VENV" || true; } | sort -u > "$LIBS"
while read -r f; do
  [ -e "$f" ] || continue
  real="$(readlink -f "$f")"
  # keep the path the loader asks for (often /lib/x86_64-linux-gnu/... which is /usr/lib/... here)
  dest="$RF$(readlink -f "$(dirname "$f")")/$(basename "$f")"
  mkdir -p "$(dirname "$dest")"
  cp -L "$real" "$dest"
done < "$LIBS"
[ -e "$RF/usr/bin/sh" ] || cp -L /bin/sh "$RF/usr/bin/sh"
cp -L /etc/ld.so.cache "$RF/etc/" 2>/dev/null || true
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' > "$RF/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$RF/etc/group"
printf '127.0.0.1 localhost\n' > "$RF/etc/hosts"
echo "localhost" > "$RF/etc/hostname"
echo "$(wc -l < "$LIBS") system files copied; rootfs $(du -sh "$RF" | cut -f1)"

echo "[4/4] docker import -> $TAG"
tar -C "$RF" -cf - . | docker import \
  --change "ENV PATH=$IMG_VENV/bin:/usr/bin:/bin" \
  --change "ENV PYTHONPATH=/opt/agentlab" \
  --change "ENV PYTHONUNBUFFERED=1" \
  --change "USER 65534:65534" \
  --change "WORKDIR /job" \
  --change "LABEL org.agentlab.sandbox=test" \
  - "$TAG" >/dev/null
# checked as the sandbox starts it: a private /tmp, read-only root, no network
CHECK='import sys; print("image ok: python", sys.version.split()[0], "in", sys.prefix)'
if "$PY" -c 'import torch, transformers' 2>/dev/null; then
  CHECK='import sys, torch, transformers; print("image ok: torch", torch.__version__, "in", sys.prefix)'
fi
docker run --rm --network none --read-only --tmpfs /tmp:rw,size=64m --tmpfs /job:rw,size=16m "$TAG" python -c "$CHECK"
echo "built $TAG in $(( $(date +%s) - START ))s"
