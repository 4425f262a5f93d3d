#!/usr/bin/env bash
# One short check of a lent GPU machine (under 8 minutes on one H100-class GPU; about a minute or
# less on a small CPU, where it falls back to fp32 with tiny settings). Run once from anywhere:
#
#     benchmarks/gpu_check.sh                       # every section, defaults for the device
#     benchmarks/gpu_check.sh --steps 100 --batch-size 128   # any benchmarks/gpu_check.py flag
#
# Needs the project installed (`make setup` creates .venv; or `pip install -e .` in the python
# you name with PYTHON=...); installs nothing. Uses $PYTHON, else .venv/bin/python, else python.
#
# Prints ONE JSON object on stdout (progress on stderr) and writes it atomically (temp file +
# mv) to reports/benchmarks/gpu_check.json, or to $GPU_CHECK_OUT. Exit status: that of
# gpu_check.py (1 when a section failed: see "errors" in the JSON), 124 when it ran past the hard
# `timeout 480` (then no JSON is written), 2 for bad arguments.
#
# What the numbers mean (details at the top of benchmarks/gpu_check.py):
#   peak.tflops_per_s          measured bf16 (CPU: fp32) matmul rate in this process = the MFU
#                              denominator (what this device achieves, not its datasheet)
#   methods.<m>.samples_per_s  pre-training throughput of each method (bf16 autocast, channels-
#                              last 2-D nets, --batch-size per step, 256 on CUDA)
#   methods.<m>.flops_per_step matmul + convolution FLOPs of one step (forward + backward)
#   methods.<m>.mfu            flops_per_step / step_s / peak: the share of the step spent at the
#                              matmul rate; small networks are launch/memory bound, a few per cent
#                              is normal; above 1 means a counting or peak problem
#   ddp.scaling_efficiency     samples/s on N GPUs / (N x samples/s on 1) under Lightning DDP
#                              (1.0 = linear; skipped with one GPU)
#   predict.km2_per_s          s2ssl predict of a 2048 x 2048 px 10 m raster (1 px = 1e-4 km²)
#   fallback                   true: no CUDA, the CPU path ran (numbers are a smoke test only)
#   ok / complete              no section failed / and none was skipped for lack of time
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${PYTHON:-}" ]]; then
    PY="$PYTHON"
elif [[ -x "$ROOT/.venv/bin/python" ]]; then
    PY="$ROOT/.venv/bin/python"
else
    PY=python
fi
OUT="${GPU_CHECK_OUT:-$ROOT/reports/benchmarks/gpu_check.json}"
mkdir -p "$(dirname "$OUT")"
TMP="$(mktemp "$(dirname "$OUT")/.gpu_check.json.tmp-XXXXXX")"
trap 'rm -f "$TMP"' EXIT

cd "$ROOT"
status=0
chmod 644 "$TMP"
timeout 480 "$PY" "$ROOT/benchmarks/gpu_check.py" "$@" >"$TMP" || status=$?
if [[ -s "$TMP" ]] && "$PY" -c 'import json, sys; json.load(open(sys.argv[1]))' "$TMP"; then
    cat "$TMP"
    mv -f "$TMP" "$OUT"
    echo "gpu_check: wrote $OUT (exit status $status)" >&2
else
    echo "gpu_check: no JSON (exit status $status); $OUT left as it was" >&2
    [[ $status -ne 0 ]] || status=1
fi
exit "$status"
