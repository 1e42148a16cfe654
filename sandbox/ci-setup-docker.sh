#!/usr/bin/env bash
# Idempotent CI setup for the docker sandbox backend (run as root):
#   1. install docker.io if dockerd is missing, 2. start dockerd if it is not answering (overlay2, then vfs),
#   3. build the offline test image agentlab-sandbox:test if it is missing.
# Always exits 0: when docker cannot work here it says why, and the docker tests then skip with that reason.
# Env: AGENTLAB_DOCKERD_LOG (default /tmp/dockerd.log), AGENTLAB_SANDBOX_IMAGE (default agentlab-sandbox:test).
set -u
ROOT_DIR="$(cd "$(dirname "$0")/.." && pwd)"
LOG="${AGENTLAB_DOCKERD_LOG:-/tmp/dockerd.log}"
IMAGE="${AGENTLAB_SANDBOX_IMAGE:-agentlab-sandbox:test}"
say() { echo "[ci-setup-docker] $*"; }
give_up() { say "docker backend NOT available: $*"; say "the docker sandbox tests will be skipped"; exit 0; }

[ "$(id -u)" = 0 ] || give_up "must run as root (sudo bash sandbox/ci-setup-docker.sh)"

if ! command -v dockerd >/dev/null 2>&1; then
  say "installing docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=900 update -qq >/dev/null 2>&1 || true
  apt-get -o DPkg::Lock::Timeout=900 install -y -qq docker.io >/tmp/apt-docker.log 2>&1 \
    || give_up "apt-get install docker.io failed (see /tmp/apt-docker.log: $(tail -1 /tmp/apt-docker.log))"
fi
command -v docker >/dev/null 2>&1 || give_up "docker CLI missing after install"

wait_docker() {  # $1 = seconds
  for _ in $(seq "$1"); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
  return 1
}

if docker info >/dev/null 2>&1; then
  say "dockerd already running"
else
  started=""
  for driver in overlay2 vfs; do
    say "starting dockerd (storage driver $driver), log in $LOG"
    # network_mode=none is all the sandbox needs: no bridge, no iptables (often unavailable in CI VMs)
    nohup dockerd --storage-driver "$driver" --iptables=false --ip-masq=false --bridge=none \
      >"$LOG" 2>&1 </dev/null &
    pid=$!
    if wait_docker 60; then started=$driver; break; fi
    say "dockerd with $driver did not come up: $(grep -iE 'level=(error|fatal)' "$LOG" | tail -2)"
    kill "$pid" 2>/dev/null; sleep 2; kill -9 "$pid" 2>/dev/null; rm -f /var/run/docker.pid
  done
  [ -n "$started" ] || give_up "dockerd does not start in this VM (see $LOG)"
  say "dockerd up with storage driver $started"
fi

stale=""
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  # an image from the old script ran python from the host venv's own path: under /tmp the sandbox hides it
  img_path="$(docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$IMAGE" | sed -n 's/^PATH=//p')"
  case ":$img_path:" in
    *:/tmp/*|*:/job/*) stale="its PATH ($img_path) lies under a path the sandbox hides";;
  esac
fi
if docker image inspect "$IMAGE" >/dev/null 2>&1 && [ -z "$stale" ]; then
  say "image $IMAGE present"
else
  [ -n "$stale" ] && say "rebuilding $IMAGE: $stale"
  say "building $IMAGE offline (a few minutes)"
  if ! bash "$ROOT_DIR/sandbox/build-offline-image.sh" "$IMAGE"; then
    give_up "building $IMAGE failed"
  fi
fi
say "docker backend ready: $(docker version --format 'server {{.Server.Version}}' 2>/dev/null), image $IMAGE"
exit 0
