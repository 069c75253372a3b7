#!/usr/bin/env bash
# Compile check of the CUDA build (no GPU needed): configures and builds llama.cpp with
# GGML_CUDA=ON for one architecture, and the addon against it, into build-cuda/ (git-ignored).
#   scripts/check-cuda-build.sh [ARCH]      (default 90; LAYERSKIP_BUILD_JOBS sets parallelism)
set -euo pipefail
cd "$(dirname "$0")/.."
arch="${1:-90}"
command -v nvcc >/dev/null || { echo "check-cuda-build: nvcc not found (install the CUDA toolkit)" >&2; exit 1; }
nvcc --version | tail -1
start=$(date +%s)
node scripts/build-native.mjs --cuda --cuda-arch "$arch" --out build-cuda
end=$(date +%s)
test -f build-cuda/Release/layerskip.node
grep -q "GGML_CUDA:BOOL=ON" build-cuda/CMakeCache.txt
echo "check-cuda-build: CUDA build (arch $arch) configured and compiled in $((end - start)) s: build-cuda/Release/layerskip.node"
