#!/usr/bin/env bash
# A GPU session's checks in one script, for the lent device machine (its own python and torch,
# no network): copy Fashion-MNIST's IDX files to .data/ and the wheels of safetensors and tqdm
# to .wheels/ (both git-ignored), carry both, and run from the repository root:
#     OUT=DIR bash benchmarks/device.sh [record|cuda]
# record (the default): gpu_record.py, issue 26's GPU record -> DIR/record.log (about 8 minutes);
# cuda: cuda.py, fp32 against AMP -> DIR/cuda.log (the '## cuda' section) and DIR/rows.jsonl.
# DIR also receives machine.txt.
set -uo pipefail
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT" .deps
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 --version
    python3 -c "import torch, torchvision; print(torch.__version__, torchvision.__version__)"
} > "$OUT/machine.txt" 2>&1
for wheel in .wheels/*.whl; do python3 -m zipfile -e "$wheel" .deps/; done
export PYTHONPATH="$PWD/src:$PWD/.deps"
cd benchmarks
if [ "${1:-record}" = record ]; then
    timeout "${BUDGET:-540}" python3 gpu_record.py --data-dir ../.data > "$OUT/record.log" 2>&1
    echo "gpu_record.py exit $?" >> "$OUT/record.log"
    tail -40 "$OUT/record.log"
    exit 0
fi
timeout "${BUDGET:-480}" python3 cuda.py --data-dir ../.data --seconds 8 --repeats 3 \
    --modes fp32 amp amp+cl --json-out "$OUT/rows.jsonl" --no-record > "$OUT/cuda.log" 2>&1
echo "cuda.py exit $?" >> "$OUT/cuda.log"
tail -40 "$OUT/cuda.log"
