#!/usr/bin/env bash
# One prepared command for a machine with one CUDA GPU (`make gpu-check`), inside GPU_CHECK_MINUTES (default 10):
#   1. build the CUDA kernels (upfirdn2d, bias_act) and fail loudly if either does not build;
#   2. run the `cuda`-marked tests (kernel vs reference parity: values, first and second derivatives);
#   3. print the ops / generator tables (reference vs kernels) and the codec coding-speed table on the GPU;
#   4. spend the minutes left on the GPU route of the face prior (configs/prior64-gpu.yaml, from the shipped
#      prior) and export it; with OUT set, copy the export and the logs there.
# It needs the repository and a Python with a CUDA torch; packages that Python lacks come as wheels in .whl/
# (installed into /tmp/site, nothing else is touched) and the training faces from ../shared or from .gpu-data/;
# `tools/gpu_bundle.sh` prepares both folders on a machine with the package registry. Every step's output goes to $LOG_DIR (default
# outputs/gpu-check).
set -u -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
MINUTES=${GPU_CHECK_MINUTES:-10}
LOG_DIR=${LOG_DIR:-outputs/gpu-check}
START=$(date +%s)
mkdir -p "$LOG_DIR"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu-check: installing the wheels in .whl/ failed"; exit 1; }
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

left() { echo $(( MINUTES * 60 - ($(date +%s) - START) )); }
step() { echo; echo "== $1 ($(left) s left)"; }

step "CUDA kernels"
"$PY" - <<'EOF' 2>&1 | tee "$LOG_DIR/kernels.log" || exit 1
import time, torch
from stylegan_lightning.ops.plugin import PLUGINS, get_plugin
assert torch.cuda.is_available(), "no CUDA GPU visible to torch"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name()}")
for name in PLUGINS:
    start = time.perf_counter()
    get_plugin(name, required=True)
    print(f"{name}: built and loaded in {time.perf_counter() - start:.0f} s")
EOF

step "cuda-marked tests"
timeout $(( $(left) / 3 )) "$PY" -m pytest -q -m cuda -p no:cacheprovider tests 2>&1 | tee "$LOG_DIR/tests-cuda.log"

step "benchmarks: ops and generator, reference vs kernels"
timeout $(( $(left) / 3 )) "$PY" benchmarks/bench_backbone.py --sizes 256 1024 --batches 1 8 --repeats 3 2>&1 \
    | tee "$LOG_DIR/bench-backbone.log"
step "benchmarks: codec on the GPU"
timeout 90 "$PY" benchmarks/bench_codec.py --codec data/demo/codec.pt --images data/samples --baselines "" \
    --device cuda --repeats 3 2>&1 | tee "$LOG_DIR/bench-codec.log"

TRAIN=$(( $(left) - 45 ))  # keep time for the export and the copy
if [ "$TRAIN" -gt 60 ]; then
    step "face prior, GPU route, $TRAIN s"
    printf -v MAX_TIME '00:%02d:%02d:%02d' $(( TRAIN / 3600 )) $(( TRAIN % 3600 / 60 )) $(( TRAIN % 60 ))
    DATA=(); [ -f .gpu-data/utkface-64-subset.zip ] && DATA=(--data.init_args.root .gpu-data/utkface-64-subset.zip)
    if [ -f .gpu-data/mobilefacenet-068.ckpt ]; then FID=(--model.init_args.fid_weights .gpu-data/mobilefacenet-068.ckpt)
    elif [ -f ../shared/weights/mobilefacenet/068.ckpt ]; then FID=()
    else FID=(--model.init_args.fid_features null); fi
    "$PY" -m stylegan_lightning fit --config configs/prior64-gpu.yaml --trainer.max_time "$MAX_TIME" \
        "${DATA[@]}" "${FID[@]}" 2>&1 | tee "$LOG_DIR/prior-gpu.log" | tail -20
fi

if [ -n "${OUT:-}" ]; then
    cp "$LOG_DIR"/*.log "$OUT"/ 2>/dev/null
    [ -f outputs/prior64-gpu/face64-gpu.pt ] && cp outputs/prior64-gpu/face64-gpu.pt "$OUT"/
fi
echo "gpu-check: done in $(( $(date +%s) - START )) s"
