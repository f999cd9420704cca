#!/usr/bin/env bash
# The GPU check, for a machine with NVIDIA's driver but no Node.js and no package registry. Run from the
# repository root with the bundle that `node scripts/device-bundle.mjs` made in .device-bundle/:
#   scripts/device-check.sh OUTDIR [--quick]
# It unpacks Node.js and node_modules from the bundle into a scratch copy of the repository, brings the
# Vulkan loader when the machine lacks one, reports which ONNX Runtime providers load and how mlp and cnn
# run on each (scripts/device-probe.ts), then runs benchmark sections (a) batching and (c) worker busy
# fraction on the CPU and on every GPU provider that loaded. Everything it finds goes to OUTDIR:
# check.log, machine.txt, providers.md/.json, bench-<provider>.md, summary.md (at most 8 files). The whole check stops by
# itself within DEVICE_CHECK_BUDGET_S seconds (default 480); --quick runs shorter benchmark steps.
set -uo pipefail

OUTDIR=${1:?usage: scripts/device-check.sh OUTDIR [--quick]}
QUICK=${2:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUNDLE=${SLUICE_DEVICE_BUNDLE:-$ROOT/.device-bundle/sluice-device.tar.xz}
BUDGET=${DEVICE_CHECK_BUDGET_S:-480}
START=$(date +%s)
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
exec > >(tee "$OUTDIR/check.log") 2>&1

say() { echo "device-check: $*"; }
left() { echo $((BUDGET - ($(date +%s) - START))); }
[ -f "$BUNDLE" ] || { say "no bundle at $BUNDLE: run 'node scripts/device-bundle.mjs' where npm works"; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-device.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
APP=$WORK/app
mkdir -p "$APP"
say "unpacking $(du -h "$BUNDLE" | cut -f1) into $WORK"
tar -C "$WORK" -xJf "$BUNDLE" || { say "the bundle does not unpack"; exit 2; }
# A scratch copy of the sources, so that only the bundle's node_modules can be found.
tar -C "$ROOT" --exclude=./node_modules --exclude=./.device-bundle --exclude=./.device-cache --exclude=./.git --exclude=./dist -cf - . | tar -C "$APP" -xf -
mv "$WORK/node_modules" "$APP/node_modules"
export PATH="$WORK/bin:$PATH"
NODE="$WORK/bin/node"

# Vulkan for the WebGPU provider: the machine's loader if it has one, else the bundled one (no writes to /).
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'; then
  for deb in "$WORK"/debs/*.deb; do
    [ -f "$deb" ] || continue
    if command -v dpkg >/dev/null; then dpkg -x "$deb" "$WORK/vulkan"; else (mkdir -p "$WORK/deb" && cd "$WORK/deb" && ar x "$deb" && mkdir -p "$WORK/vulkan" && tar -C "$WORK/vulkan" -xf data.tar.*); fi
  done
  [ -d "$WORK/vulkan" ] && export LD_LIBRARY_PATH="$WORK/vulkan/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" && say "using the bundled Vulkan loader"
fi
# NVIDIA's ICD where the driver is mounted rather than installed.
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; say "Vulkan ICD $icd"; fi
done

# CUDA: onnxruntime-node's CUDA provider library is a separate download that cannot happen here; where the
# machine's Python carries ONNX Runtime 1.30's CUDA provider, borrow its libraries (same ABI version).
ORT_DIR="$APP/node_modules/onnxruntime-node/bin/napi-v6/linux/x64"
if command -v python3 >/dev/null; then
  PYORT=$(python3 -c 'import onnxruntime, os; print(onnxruntime.__version__, os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))' 2>/dev/null || true)
  say "python onnxruntime: ${PYORT:-none}"
  CAPI=${PYORT#* }
  if [ -n "$PYORT" ] && [ "${PYORT%% *}" = "1.30.0" ] && [ -f "$CAPI/libonnxruntime_providers_cuda.so" ]; then
    cp "$CAPI"/libonnxruntime_providers_shared.so "$CAPI"/libonnxruntime_providers_cuda.so "$ORT_DIR"/ && say "borrowed the CUDA provider from python's onnxruntime"
  fi
fi

{
  echo "date: $(date -u +%FT%TZ)"
  echo "node: $("$NODE" --version)"
  echo "cpus: $(nproc)"
  echo "kernel: $(uname -r)"
  if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader 2>&1; else echo "nvidia-smi: not installed"; fi
  echo "libvulkan: $(ldconfig -p 2>/dev/null | grep -c libvulkan.so.1) system, LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  echo "onnxruntime-node files: $(ls "$ORT_DIR" | tr '\n' ' ')"
} | tee "$OUTDIR/machine.txt"

cd "$APP" || exit 2
"$NODE" --import tsx models/generate.ts --if-missing >/dev/null || { say "the sample models could not be generated"; exit 2; }
timeout 120 "$NODE" --import tsx scripts/device-probe.ts --out "$OUTDIR" --usable "$WORK/gpu-providers.txt" ${QUICK:+--quick} || { say "the provider probe failed"; exit 2; }
GPUS=$(cat "$WORK/gpu-providers.txt")
say "GPU providers that load: ${GPUS:-none}"

BENCH=(--only a,c --repeats 1)
[ -n "$QUICK" ] && BENCH+=(--quick) || BENCH+=(--duration 4s --warmup 1s)
STATUS=0
for device in $GPUS cpu; do
  budget=$(( $(left) - 10 ))
  if [ "$budget" -lt 40 ]; then say "no time left for the $device benchmarks"; echo "bench $device: skipped, no time left" >>"$WORK/summary.txt"; continue; fi
  say "benchmarks (a) and (c) with sluice on $device (at most ${budget} s)"
  timeout -k 5 "$budget" "$NODE" --import tsx loadtest/bench/main.ts "${BENCH[@]}" --device "$device" --out "$OUTDIR/bench-$device.md"
  rc=$?
  echo "bench $device: exit $rc" >>"$WORK/summary.txt"
  [ $rc -eq 0 ] || STATUS=1
done

{
  echo "# Device check"
  echo
  echo '```'
  cat "$OUTDIR/machine.txt"
  cat "$WORK/summary.txt" 2>/dev/null
  echo "took $(( $(date +%s) - START )) s"
  echo '```'
  echo
  cat "$OUTDIR/providers.md"
  for f in "$OUTDIR"/bench-*.md; do [ -f "$f" ] && { echo; sed 's/^# /## /' "$f"; }; done
} >"$OUTDIR/summary.md"
say "done in $(( $(date +%s) - START )) s: $OUTDIR/summary.md"
exit $STATUS
