# Sourced by scripts/check-cuda.sh and scripts/gpu-smoke.sh: a CUDA toolchain for
# `cargo build --features cuda` without a system CUDA toolkit, from PyPI's NVIDIA wheels.
#
#   cuda_from_wheels VENV LINKS [cudnn]
#
# installs nvcc, the headers and the libraries candle's CUDA backend links (cudart,
# cuBLAS(Lt), cuRAND, NVRTC) into the venv VENV (made when missing, kept), makes LINKS: the unversioned library names the linker looks for (the wheels ship
# only `.so.13`) and a stub `libcuda.so`, then exports what candle's build reads. Sets
# CUDA_LIB to the wheels' library folders (for LD_LIBRARY_PATH at run time). With `cudnn`
# also cuDNN 9 (`nvidia-cudnn-cu13`, for `--features cudnn`).
#
# The stub: the driver library `libcuda.so` is on no package registry (it comes with the
# NVIDIA driver). As the toolkit's own `lib64/stubs/libcuda.so`, the stub exports the
# driver functions cudarc binds (read from its source) so that the binary links; each one
# returns CUDA_ERROR_NO_DEVICE (100). On a GPU machine the driver's libcuda.so.1 is what
# the binary loads; with the stub first on LD_LIBRARY_PATH it runs as on a machine with
# no GPU.
#
# The versions are the ones these scripts were run with (README, "GPUs"). CUDA_WHEELS_FOR
# picks the set: 13.5 (default), or 13.0 for a machine whose driver is CUDA 13.0 (the 580
# series): candle's kernels are PTX that the driver compiles when the binary starts, and a
# driver refuses PTX from an nvcc newer than itself. nvcc's own parts (nvvm, crt) are
# pinned too: pip would otherwise take the newest, whose PTX the pinned ptxas refuses.
case "${CUDA_WHEELS_FOR:-13.5}" in
  13.5) CUDA_WHEELS=(
    nvidia-cuda-nvcc==13.5.37 nvidia-cuda-runtime==13.5.37 nvidia-cuda-nvrtc==13.5.37
    nvidia-cuda-cccl==13.3.5.0.6 nvidia-cublas==13.10.0.20 nvidia-curand==10.4.5.25
    nvidia-nvvm==13.5.37 nvidia-cuda-crt==13.5.37
  ) ;;
  13.0) CUDA_WHEELS=(
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88
    nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
    nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
  ) ;;
  *) echo "error: CUDA_WHEELS_FOR=${CUDA_WHEELS_FOR}: expected 13.5 or 13.0" >&2; return 1 ;;
esac

CUDNN_WHEEL=nvidia-cudnn-cu13==9.17.0.29

cuda_from_wheels() {
  local venv=$1 links=$2 py="$1/bin/python" root wheels=("${CUDA_WHEELS[@]}") libs=(cudart cublas cublasLt nvrtc curand)
  if [ "${3:-}" = cudnn ]; then wheels+=("$CUDNN_WHEEL"); libs+=(cudnn); fi
  [ -x "$py" ] || new_venv "$venv"
  # Pinned: pip skips what is there already.
  echo "CUDA wheels in $venv: ${wheels[*]}"
  "$py" -m pip install --quiet --progress-bar off "${wheels[@]}"
  root=$("$py" -c 'import nvidia.cu13, os; print(list(nvidia.cu13.__path__)[0])')
  [ -x "$root/bin/nvcc" ] || { echo "error: no nvcc in $root/bin after installing ${CUDA_WHEELS[*]}" >&2; return 1; }
  CUDA_LIB="$root/lib"
  if [ "${3:-}" = cudnn ]; then
    CUDA_LIB="$CUDA_LIB:$("$py" -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])')/lib"
  fi
  mkdir -p "$links"
  local lib
  for lib in "${libs[@]}"; do
    local found
    found=$(IFS=:; for d in $CUDA_LIB; do ls "$d/lib$lib.so."* 2>/dev/null || true; done | grep -E "/lib$lib\.so\.[0-9]+$" | head -1)
    [ -n "$found" ] || { echo "error: no lib$lib.so.N in $CUDA_LIB" >&2; return 1; }
    ln -sf "$found" "$links/lib$lib.so"
  done
  # The driver functions cudarc binds, from the cudarc source cargo fetched.
  local cudarc
  cudarc=$(cargo metadata --locked --format-version 1 --features cuda |
    python3 -c 'import json, sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc"))')
  cudarc=$(dirname "$cudarc")
  {
    echo "/* Link-time stand-in for the NVIDIA driver's libcuda.so (scripts/lib/cuda.sh): every"
    echo "   driver function returns CUDA_ERROR_NO_DEVICE. Generated from $cudarc. */"
    grep -ohE '\bfn cu[A-Za-z0-9_]+\(' "$cudarc/src/driver/sys/"*.rs | sed -E 's/fn (cu[A-Za-z0-9_]+)\(/\1/' | sort -u |
      while read -r f; do echo "int $f(void) { return 100; }"; done
  } >"$links/stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$links/libcuda.so" "$links/stub.c"
  ln -sf libcuda.so "$links/libcuda.so.1"
  export CUDA_ROOT="$root" CUDA_PATH="$root" CUDA_HOME="$root"
  export PATH="$root/bin:$PATH"
  export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
  # cudarc 0.19's newest bindings are CUDA 13.4; the driver API it calls is in 13.5 too.
  local v
  v=$("$root/bin/nvcc" --version | sed -nE 's/.*release ([0-9]+)\.([0-9]+).*/\1 \2/p')
  read -r major minor <<<"$v"
  local code=$((major * 1000 + minor * 10))
  if [ "$code" -gt 13040 ]; then code=13040; fi
  export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-$code}"
  export RUSTFLAGS="${RUSTFLAGS:-} -L native=$links"
}
