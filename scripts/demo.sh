#!/usr/bin/env bash
# Fresh Debian machine -> LeNet-5 trained on Fashion-MNIST: install what is
# missing, build in Release (tuned for this CPU), train, print test accuracy.
# Extra arguments go to `loom train` (e.g. --epochs 10 --lr 0.02).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLOOM_NATIVE=ON >/dev/null
cmake --build build -j"$(nproc)" --target loom >/dev/null
exec build/loom train --model lenet5 --data /usr/share/datasets/fashion-mnist "$@"
