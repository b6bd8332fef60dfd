#!/usr/bin/env bash
# The one GPU measurement of issue 21: workstation.analysis.gpu_pipeline on cuda in float16.
#
# What it measures, for batch sizes 256/512/1024 x DataLoader workers 8/12 (six runs, each
# its own process): slices/s END TO END, from DICOM/picture files to per-slice outputs on the
# host (workers read each file with the app's reader and run `prepare`, pinned batches go to
# the folded triage and reference networks in channels_last float16, calibrated
# probabilities, plane, mask area/peak, novelty and CT scores come back);
# "slices_per_second" includes the workers' start, "steady_slices_per_second" leaves it out;
# and MODEL ONLY: the same forward on a batch resident on the GPU (about 51,200 slices).
# Issue 21's targets on the H200: >= 3,000 slices/s end to end, >= 20,000 model only.
#
# Time: about 30-60 s a run; each run is cut at 75 s, so the whole fits in 8 minutes
# (call it with timeout_s 540). It installs nothing from the internet and packs nothing.
#
# Usage, in the repository root of the GPU machine:
#   tools/device_gpu_benchmark.sh DATA_FOLDER [REPEAT]
#   REPEAT  passes over the files (default 15: dicom/ge_epi_axial and
#           dicom/siemens_epi_mosaic_orientation hold 1,644 slices, so about 24,700)
#   PYTHON  the python that has torch (default python3, the device image's). The workstation
#           package is not installed there: the checkout goes on PYTHONPATH. pydicom and
#           nibabel are missing from that image; wheels in .whl/ are installed from there
#           (pip --no-index) into /tmp/site when pydicom does not import.
#   OUT     gets gpu_benchmark.json (every run's figures, a list) and gpu_benchmark.log
#   DEVICE, BATCHES, WORKERS, MODEL_ONLY_SLICES  override cuda, "256 512 1024", "8 12",
#           51200 (a CPU smoke test of this script: DEVICE=cpu BATCHES=16 WORKERS=2
#           MODEL_ONLY_SLICES=32 PYTHON=.venv/bin/python)
#
# Before the call, on the machine without the GPU (the data is linked, not copied; the
# device tool carries a path through a link):
#   mkdir -p .whl cache && cp /opt/pypi/files/pydicom-3.0.2-py3-none-any.whl \
#       /opt/pypi/files/nibabel-5.4.2-py3-none-any.whl .whl/
#   ln -sfn "$BRAIN_TRIAGE_DATA/dicom" cache/gpu-dicom
#   run(command="tools/device_gpu_benchmark.sh cache/gpu-dicom", timeout_s=540,
#       carry=[".whl", "cache/gpu-dicom/ge_epi_axial",
#              "cache/gpu-dicom/siemens_epi_mosaic_orientation"])
set -u
data=$(realpath "${1:?usage: tools/device_gpu_benchmark.sh DATA_FOLDER [REPEAT]}")
repeat=${2:-15}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-out}
mkdir -p "$OUT" && OUT=$(realpath "$OUT")
cd "$(dirname "$0")/.." || exit 2
log="$OUT/gpu_benchmark.log"
runs=$(mktemp -d)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if ! "$PYTHON" -c 'import pydicom' 2>/dev/null; then
    ls .whl/*.whl >/dev/null 2>&1 || { echo "pydicom is missing and .whl/ holds no wheels"; exit 2; }
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 2
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

{
    date -u
    nvidia-smi -L
    echo "cores: $(nproc)"
    df -h /dev/shm  # the workers' batches travel through shared memory
    "$PYTHON" -c 'import torch; print("torch", torch.__version__, torch.cuda.is_available()
                                      and torch.cuda.get_device_name(0))'
} >"$log" 2>&1
cat "$log"

for batch in ${BATCHES:-256 512 1024}; do
    for workers in ${WORKERS:-8 12}; do
        echo "== batch $batch, workers $workers" | tee -a "$log"
        timeout -k 5 75 "$PYTHON" -m workstation.analysis.gpu_pipeline "$data" --device "$DEVICE" \
            --half --batch "$batch" --workers "$workers" --repeat "$repeat" \
            --model-only-batches $(( (${MODEL_ONLY_SLICES:-51200} + batch - 1) / batch )) \
            --json-out "$runs/b$(printf %04d "$batch")_w$(printf %02d "$workers").json" \
            >>"$log" 2>&1 || echo "   failed (exit $?): see gpu_benchmark.log" | tee -a "$log"
    done
done

"$PYTHON" - "$runs" "$OUT/gpu_benchmark.json" <<'EOF'
import json, pathlib, sys

runs = [json.loads(p.read_text()) for p in sorted(pathlib.Path(sys.argv[1]).glob("*.json"))]
pathlib.Path(sys.argv[2]).write_text(json.dumps(runs, indent=2) + "\n")
for r in runs:
    print(f"batch {r['batch_size']:4}, {r['workers']:2} workers: {r['slices']} slices, end to end "
          f"{r['slices_per_second']} slices/s (steady {r['steady_slices_per_second']}), "
          f"model only {r['model_only_slices_per_second']} slices/s [{r['dtype']}, {r['device_name']}]")
EOF
