#!/usr/bin/env bash
# Install what loom needs from Debian's archive, only if something is missing.
# Usage: scripts/deps.sh [extra-package ...]
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenblas-dev libpng-dev libjpeg62-turbo-dev
      zlib1g-dev libjansson-dev libcairo2-dev libfontconfig-dev libdnnl-dev dataset-fashion-mnist
      libonnx-dev protobuf-c-compiler libprotobuf-c-dev libonnx-testdata python3-onnx
      libopenmpi-dev openmpi-bin "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
