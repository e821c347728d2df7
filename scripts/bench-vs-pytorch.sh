#!/usr/bin/env bash
# Benchmark: bottleneck against PyTorch (CPU) on this machine, side by side, in one run.
# The dense, conv and VAE Fashion-MNIST defaults (experiments/fashion-{dense,conv,vae}.toml)
# are trained in both with the same data (all 60,000 training images in [0, 1], reshuffled
# each epoch), batch 256, AdamW (lr 1e-3, weight decay 0.01), MSE loss (the VAE: −ELBO with
# Bernoulli logits) and thread count, taking turns: pytorch dense, bottleneck dense,
# pytorch conv, bottleneck conv, pytorch vae, bottleneck vae, ROUNDS times. The test MSE
# of the VAE is that of its decoded posterior mean, on both sides.
# Prints samples/s per round and a markdown summary: median samples/s of each side, their
# ratio, s/epoch, peak RSS, test MSE, and the arithmetic rate each side reaches: the
# model's FLOPs per training step (bottleneck's counter, `step_profile KIND 0`: 6 × the
# multiply-accumulates of the products) × samples/s, and its fraction of the limit, the
# GFLOP/s gemm reaches on the dense model's products on all threads, the forward ones from
# a copy of Wᵀ as the linear layer runs them (`gemm_shapes`, run here first). PyTorch half: scripts/bench_pytorch.py.
#
# Usage: scripts/bench-vs-pytorch.sh [EPOCHS]              (default 1 epoch a run)
# Environment:
#   ROUNDS=2                 rounds of the four runs
#   THREADS=$(nproc)         threads for both (torch.set_num_threads, train.threads)
#   BENCH_VENV=DIR           venv with torch + numpy; made there if torch is missing and
#                            kept, so later runs reuse it (default: a throw-away one)
#   BENCH_NO_BUILD=1         skip `cargo build --release` and use the existing binary
#   TORCH_FLUSH_DENORMAL=1   torch.set_flush_denormal(True) (default: PyTorch's default, off)
#   BENCH_DATA_DIR=DIR       Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)
#   BENCH_MODELS="dense conv vae"  which models to run
#   BENCH_MAX_BATCHES=N      both sides stop each epoch after N batches: smoke tests only
# PyTorch comes from its CPU wheel index, or from PyPI (the CUDA build, same CPU kernels,
# ~5 GB installed) where that index is not reachable.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/venv.sh
repo=$(pwd)
epochs="${1:-1}"
rounds="${ROUNDS:-2}"
threads="${THREADS:-$(nproc)}"
max_batches="${BENCH_MAX_BATCHES:-0}"
models="${BENCH_MODELS:-dense conv vae}"
data_dir="${BENCH_DATA_DIR:-/usr/share/datasets/fashion-mnist}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
venv="${BENCH_VENV:-$work/venv}"
py="$venv/bin/python"

# PyTorch (CPU) and numpy in a venv of their own.
if [ -x "$py" ] && "$py" -c 'import torch, numpy' 2>/dev/null; then
  echo "reusing $venv (torch $("$py" -c 'import torch; print(torch.__version__)'))"
else
  echo "installing PyTorch (CPU) and numpy into $venv"
  new_venv "$venv"
  pip=("$py" -m pip install --quiet --progress-bar off)
  if ! "${pip[@]}" --retries 1 torch --index-url https://download.pytorch.org/whl/cpu; then
    echo "the PyTorch CPU index failed; installing torch from PyPI (the CUDA build: a larger download, the same CPU kernels)"
    "${pip[@]}" torch
  fi
  "${pip[@]}" numpy
fi

# bottleneck: the release binary (a no-op when it is up to date).
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  cargo build --release --locked --workspace --bins --examples
fi
release="$(realpath "${CARGO_TARGET_DIR:-target}")/release"
bin="$release/bottleneck"
for b in "$bin" "$release/examples/step_profile" "$release/examples/gemm_shapes" "$release/examples/pingpong"; do
  [ -x "$b" ] || { echo "no release build of $b (unset BENCH_NO_BUILD to build it)" >&2; exit 1; }
done

torch_args=(--epochs "$epochs" --threads "$threads" --data-dir "$data_dir" --max-batches "$max_batches")
bn_args=("train.epochs=$epochs" "train.threads=$threads")
if [ "${TORCH_FLUSH_DENORMAL:-0}" = 1 ]; then torch_args+=(--flush-denormal); fi
if [ "$max_batches" != 0 ]; then
  bn_args+=("train.max_batches=$max_batches")
  echo "BENCH_MAX_BATCHES=$max_batches: a smoke test, not a benchmark"
fi

# One PyTorch run -> $work/results/<round>-<model>-pytorch.json (its last stdout line).
run_pytorch() {
  local model=$1 round=$2 log="$work/logs/$2-$1-pytorch.log"
  if ! "$py" scripts/bench_pytorch.py --model "$model" "${torch_args[@]}" >"$log" 2>&1; then
    cat "$log" >&2; echo "bench_pytorch.py --model $model failed" >&2; exit 1
  fi
  grep "^{" "$log" | tail -1 >"$work/results/$round-$model-pytorch.json"
}

# How far apart the two cores are (ns of a cache line's round trip between two threads),
# appended to $work/results/<round>-<model>-<side>.ping before and after each run. On these
# VMs it moves with where the host places the two vCPUs: about 30 ns on the two threads of
# one physical core (sharing its FMA units), 55-90 ns on one die, about 330 ns far apart;
# a two-thread step is fastest in the middle case.
ping() {
  "$release/examples/pingpong" | sed -n 's/^core-to-core round trip: \([0-9]*\) ns$/\1/p' >>"$work/results/$2-$1-$3.ping"
}

# One bottleneck run, from a folder of its own (it writes runs/<name>/<timestamp>/ there)
# under GNU time for the peak RSS -> the same JSON fields from timings.csv + manifest.json.
run_bottleneck() {
  local model=$1 round=$2 dir="$work/bottleneck/$2-$1" rss
  mkdir -p "$dir"
  if [ -x /usr/bin/time ]; then
    rss=(/usr/bin/time -f %M -o "$dir/maxrss-kib")
  else  # no GNU time: python's getrusage of its child does the same
    rss=("$py" -c 'import resource, subprocess, sys; rc = subprocess.call(sys.argv[2:]); open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(rc)' "$dir/maxrss-kib")
  fi
  if ! (cd "$dir" && "${rss[@]}" "$bin" run "$repo/experiments/fashion-$model.toml" "${bn_args[@]}" --quiet >"$dir/log" 2>&1); then
    cat "$dir/log" >&2; echo "bottleneck run fashion-$model failed" >&2; exit 1
  fi
  "$py" - "$model" "$(ls -d "$dir/runs/fashion-$model"/*/ | tail -1)" "$dir/maxrss-kib" \
    >"$work/results/$round-$model-bottleneck.json" <<'EOF'
import csv, json, os, sys
model, run, rss = sys.argv[1:]
rows = list(csv.DictReader(open(os.path.join(run, "timings.csv"))))
manifest = json.load(open(os.path.join(run, "manifest.json")))
print(json.dumps({
    "side": "bottleneck", "model": model,
    "samples_per_second": [float(r["samples_per_second"]) for r in rows],
    "epoch_seconds": [float(r["epoch_seconds"]) for r in rows],
    "test_mse": manifest["metrics"]["test_mse"],
    "max_rss_mib": int(open(rss).read().split()[-1]) / 1024,
    "threads": manifest["threads"],
    "versions": manifest["versions"],
}))
EOF
}

mkdir -p "$work/logs" "$work/results" "$work/bottleneck"
# The FLOP count of each model and the gemm limit, into $work/flops.json.
for model in $models; do
  "$release/examples/step_profile" "$model" 0
done >"$work/flops.txt"
limit=$("$release/examples/gemm_shapes" | sed -n 's|^parallel=true.* \([0-9.]*\) GFLOP/s.*|\1|p')
echo "gemm limit on the thread pool (the dense model's products, batch 256): $limit GFLOP/s"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "machine: $(nproc) cores, $cpu; $threads threads each; $epochs epoch(s) a run, $rounds round(s)"
# Both sides need the cores to themselves; PyTorch's OpenMP threads slow down most when
# shared (measured here: 2 threads 5x slower than 1 while a compile ran on both cores).
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN {exit !(l > 0.5)}'; then
  echo "warning: load average $load before the first run: something else is using the CPU, the numbers will not be meaningful"
fi
for round in $(seq 1 "$rounds"); do
  for model in $models; do
    ping "$model" "$round" pytorch
    run_pytorch "$model" "$round"
    ping "$model" "$round" pytorch
    ping "$model" "$round" bottleneck
    run_bottleneck "$model" "$round"
    ping "$model" "$round" bottleneck
    "$py" - "$work/results/$round-$model" "$round" "$model" <<'EOF'
import json, statistics, sys
base, round_, model = sys.argv[1:]
pt, bn = (json.load(open(f"{base}-{side}.json")) for side in ("pytorch", "bottleneck"))
pp, bp = ("→".join(open(f"{base}-{side}.ping").read().split()) or "?" for side in ("pytorch", "bottleneck"))
p, b = (statistics.median(r["samples_per_second"]) for r in (pt, bn))
ps, bs = (statistics.median(r["epoch_seconds"]) for r in (pt, bn))
print(f"round {round_} {model:<5}  pytorch {p:7.0f} samples/s ({ps:6.2f} s/epoch, cores {pp:>7} ns apart)   "
      f"bottleneck {b:7.0f} samples/s ({bs:6.2f} s/epoch, cores {bp:>7} ns apart)   ratio {b / p:.2f}", flush=True)
EOF
  done
done

# Summary: medians over every epoch of every round; peak RSS is the largest seen.
"$py" - "$work/results" "$(nproc)" "$cpu" "$load" "$work/flops.txt" "$limit" <<'EOF'
import glob, json, os, statistics, sys
results, nproc, cpu, load, flops_txt, limit = sys.argv[1:]
flops = {l.split(":")[0]: float(l.split()[1]) * 1e6 for l in open(flops_txt) if "MFLOP" in l}
limit = float(limit)
runs = [dict(json.load(open(p)), round=os.path.basename(p).split("-")[0])
        for p in sorted(glob.glob(os.path.join(results, "*.json")))]
def pick(model, side):
    return [r for r in runs if r["model"] == model and r["side"] == side]
def med(rs, key):
    return statistics.median(v for r in rs for v in r[key])
print()
print("| model | side | samples/s (median) | s/epoch (median) | GFLOP/s | of the limit | peak RSS (MiB) | test MSE |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
ratios = []
for model in sorted({r["model"] for r in runs}, key=("dense", "conv", "vae").index):
    for side in ("pytorch", "bottleneck"):
        rs = pick(model, side)
        rate = flops[model] * med(rs, "samples_per_second") / 1e9
        print(f"| {model} | {side} | {med(rs, 'samples_per_second'):.0f} | {med(rs, 'epoch_seconds'):.2f} "
              f"| {rate:.0f} | {rate / limit:.0%} "
              f"| {max(r['max_rss_mib'] for r in rs):.0f} "
              f"| {statistics.median(r['test_mse'] for r in rs):.5f} |")
    ratio = med(pick(model, "bottleneck"), "samples_per_second") / med(pick(model, "pytorch"), "samples_per_second")
    ratios.append(f"{model} {ratio:.2f}")
print()
print("bottleneck/pytorch, ratio of median samples/s: " + ", ".join(ratios))
# The same by where the cores were: rounds in which every ping of both sides (before and
# after each run) found the cores on one die (40-150 ns) or far apart (over 150 ns).
def pings(r):
    try:
        return [float(v) for v in open(os.path.join(results, f"{r['round']}-{r['model']}-{r['side']}.ping")).read().split()]
    except (OSError, ValueError):
        return []
placements = (("near", lambda v: 40 <= v < 150), ("far", lambda v: v >= 150))
split = []
for model in sorted({r["model"] for r in runs}, key=("dense", "conv", "vae").index):
    for name, where in placements:
        rounds = sorted({r["round"] for r in runs if r["model"] == model}, key=int)
        chosen = [n for n in rounds if all(
            pings(x) and all(where(v) for v in pings(x)) for x in runs if x["model"] == model and x["round"] == n)]
        if chosen:
            b = statistics.median(v for r in pick(model, "bottleneck") if r["round"] in chosen for v in r["samples_per_second"])
            p = statistics.median(v for r in pick(model, "pytorch") if r["round"] in chosen for v in r["samples_per_second"])
            split.append(f"{model} {name} {b / p:.2f} (rounds {', '.join(chosen)})")
if split:
    print("the same in rounds with the cores on one die (every ping 40-150 ns) or far apart (every ping over 150 ns): "
          + ", ".join(split))
print("FLOPs per sample per training step (bottleneck's count, 6 × multiply-accumulates, elementwise work not counted): "
      + ", ".join(f"{m} {f / 1e6:.2f} M" for m, f in flops.items())
      + f"; limit: gemm on the dense model's products, {limit:.0f} GFLOP/s")
pt = next(r for r in runs if r["side"] == "pytorch")
bn = next(r for r in runs if r["side"] == "bottleneck")
versions = ", ".join(f"{k} {v}" for k, v in sorted(bn["versions"].items()))
print(f"machine: {nproc} cores, {cpu}; {pt['threads']} threads each (pytorch inter-op {pt['interop_threads']}); "
      f"torch {pt['torch']} (MKL {'yes' if pt['mkl'] else 'no'}, oneDNN {'yes' if pt['mkldnn'] else 'no'}, "
      f"{pt['cpu_capability']}), flush-denormal {'on (TORCH_FLUSH_DENORMAL=1)' if pt['flush_denormal'] else 'off (PyTorch default)'}; "
      f"{versions}; load average {load} at the start")
print(f"pytorch peak RSS includes {pt['import_rss_mib']:.0f} MiB reached by `import torch` alone"
      + (" (the CUDA build from PyPI maps its CUDA libraries: a CPU build needs less)" if "+cu" in pt["torch"] else ""))
if pt["max_batches"]:
    print(f"smoke test: {pt['max_batches']} batches an epoch (BENCH_MAX_BATCHES), not a benchmark")
EOF
