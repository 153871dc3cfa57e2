#!/usr/bin/env bash
# Installs what tlsweep needs on a fresh Debian machine, skipping what is there:
# npm packages, nats-server and the Fashion-MNIST dataset (apt); with --test also
# Chromium (apt) for the dashboard's browser tests. Idempotent and quick when
# everything is present; `npm run demo` and `npm test` call it first.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "[setup] $*" >&2; }

apt_install() {
  local pkgs=("$@")
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      say "need root to install ${pkgs[*]}: run \`sudo apt-get install -y ${pkgs[*]}\` and retry"; exit 1
    fi
  fi
  say "installing ${pkgs[*]} with apt-get"
  # Update the package lists only when the first attempt cannot find a package.
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${pkgs[@]}"
  fi
}

missing=()
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ] && [ ! -x /usr/bin/nats-server ]; then
  missing+=(nats-server)
fi
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte ]; then
  missing+=(dataset-fashion-mnist)
fi
if [ "${1:-}" = "--test" ] && [ ! -x /usr/bin/chromium ]; then
  missing+=(chromium)
fi
if [ "${1:-}" = "--bench-sweep" ] && ! /usr/bin/python3 -c 'import torch, torchvision, optuna' >/dev/null 2>&1; then
  missing+=(python3-torch python3-torchvision python3-optuna)  # the PyTorch + Optuna baseline of bench:sweep
fi
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi

# npm packages: install when node_modules is missing or older than the lockfile.
if [ ! -d node_modules ] || [ ! -e node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  # @tensorflow/tfjs-node-gpu is optional: its install downloads libtensorflow and is dropped where that fails.
  npm ci --no-audit --no-fund >&2
fi
