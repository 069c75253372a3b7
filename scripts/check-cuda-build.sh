#!/usr/bin/env bash
# Compile check of the CUDA build (no GPU needed): configures and builds llama.cpp with
# GGML_CUDA=ON for one architecture, and the addon against it, into build-cuda/ (git-ignored),
# then loads that binary and generates a few tokens (on the CPU when there is no GPU).
# Measured on the 2-vCPU development VM, from scratch: 2129 s (143 CUDA objects, arch 90); the
# gyp mode 2917 s while a CI run shared the CPU.
#   scripts/check-cuda-build.sh [ARCH] [gyp]   (default 90; LAYERSKIP_BUILD_JOBS sets parallelism)
# With `gyp` it builds through binding.gyp instead (the path of an installed copy, prebuildify and
# @electron/rebuild): llama.cpp into build-llama-portable-cuda/, the addon into build-cuda-gyp/.
# ggml-cuda needs cuBLAS. A toolkit without it (only nvcc and cudart) can take it from a folder
# with include/ and lib/ given as LAYERSKIP_CUBLAS_DIR, e.g. the contents of NVIDIA's
# nvidia-cublas wheel (nvidia/cu13/); the script finds such a wheel under /opt if none is given.
set -euo pipefail
cd "$(dirname "$0")/.."
arch="${1:-90}"
via="${2:-cmake}"
command -v nvcc >/dev/null || { echo "check-cuda-build: nvcc not found (install the CUDA toolkit)" >&2; exit 1; }
nvcc --version | tail -1
cuda_root="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"
if [ ! -f "$cuda_root/include/cublas_v2.h" ] && [ -z "${LAYERSKIP_CUBLAS_DIR:-}" ]; then
  wheel="$(find /opt -name 'nvidia_cublas-*.whl' 2>/dev/null | head -1 || true)"
  [ -n "$wheel" ] || { echo "check-cuda-build: no cuBLAS in $cuda_root and no LAYERSKIP_CUBLAS_DIR" >&2; exit 1; }
  # extract once: fresh timestamps on the headers would make every CUDA object rebuild
  if [ -z "$(find build-cuda-deps -name cublas_v2.h 2>/dev/null | head -1)" ]; then
    mkdir -p build-cuda-deps
    python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$wheel" build-cuda-deps
  fi
  LAYERSKIP_CUBLAS_DIR="$(readlink -f "$(dirname "$(find build-cuda-deps -name cublas_v2.h | head -1)")/..")"
  echo "check-cuda-build: cuBLAS from $wheel"
fi
if [ -n "${LAYERSKIP_CUBLAS_DIR:-}" ]; then
  export CPATH="$LAYERSKIP_CUBLAS_DIR/include${CPATH:+:$CPATH}"
  export LAYERSKIP_CMAKE_ARGS="-DCUDA_cublas_LIBRARY=$(ls "$LAYERSKIP_CUBLAS_DIR"/lib/libcublas.so* | head -1) -DCUDA_cublasLt_LIBRARY=$(ls "$LAYERSKIP_CUBLAS_DIR"/lib/libcublasLt.so* | head -1) ${LAYERSKIP_CMAKE_ARGS:-}"
fi
# without a driver library (no libcuda.so, not even the toolkit's stub), build without CUDA VMM,
# the one feature that links libcuda directly
if ! ldconfig -p | grep -q "libcuda.so" && [ ! -e "$cuda_root/lib64/stubs/libcuda.so" ]; then
  export LAYERSKIP_CMAKE_ARGS="-DGGML_CUDA_NO_VMM=ON ${LAYERSKIP_CMAKE_ARGS:-}"
  echo "check-cuda-build: no libcuda.so here: GGML_CUDA_NO_VMM=ON"
fi
start=$(date +%s)
if [ "$via" = gyp ]; then
  LAYERSKIP_CUDA=1 LAYERSKIP_CUDA_ARCHITECTURES="$arch" LAYERSKIP_SKIP_BASELINE=1 LAYERSKIP_PREBUILD_OUT=build-cuda-gyp \
    node scripts/prebuild.mjs
  binary="$(find build-cuda-gyp -name '*.node' | head -1)"
  grep -q "GGML_CUDA:BOOL=ON" build-llama-portable-cuda/CMakeCache.txt
else
  node scripts/build-native.mjs --cuda --cuda-arch "$arch" --out build-cuda
  binary=build-cuda/Release/layerskip.node
  grep -q "GGML_CUDA:BOOL=ON" build-cuda/CMakeCache.txt
fi
end=$(date +%s)
test -f "$binary"
echo "check-cuda-build: CUDA build via $via (arch $arch) configured and compiled in $((end - start)) s: $binary"
# smoke test: the CUDA binary loads (without a GPU, ggml's CUDA backend finds no device and
# llama.cpp runs on the CPU) and generates text
model=models/stories260K.gguf
if [ -f dist/cli/index.js ] && [ -f "$model" ]; then
  LAYERSKIP_BINARY="$PWD/$binary" node -e \
    "import('./dist/index.js').then((m) => console.log('check-cuda-build: ' + m.systemInfo().llamaSystemInfo.split(' | CPU')[0]))"
  LAYERSKIP_BINARY="$PWD/$binary" node dist/cli/index.js generate -m "$model" -p "Once upon a time" -n 24
fi
