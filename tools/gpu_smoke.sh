#!/usr/bin/env bash
# GPU smoke test of stage 2 (OT re-weighting) on CUDA, a few minutes:
#   1. the cuda-marked tests: the digits demo's stage 2 in each variant
#      (paper text, authors' recipe, whole-training-set mode, weight net,
#      random Q) through the Runner on the GPU, no tensor left off it;
#   2. the demo and the authors' digits recipe through tools/train.py;
#   3. the README drop-in fragment on an unmodified mmpretrain config
#      (ResNet-18 CIFAR, a tiny image folder) on the GPU;
#   4. a 2-process DDP run of the demo (NCCL) where two GPUs exist.
# Run from the repository root after the README's set-up:
#   bash tools/gpu_smoke.sh [WORK_DIR]
# Without CUDA it says so and exits 0 after the skip path of step 1.
set -u
WORK=${1:-work_dirs/gpu_smoke}
mkdir -p "$WORK"
fail=0
step() { echo; echo "=== $*"; }
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.device_count(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
step "1. cuda-marked tests"
python -m pytest -q -m cuda -rs tests/test_models/test_device.py || fail=1
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device: steps 2-4 skipped"; exit $fail
fi
step "2. demo and authors' recipe (tools/train.py) on CUDA"
for cfg in configs/ot_reweight/resnet8_1xb32_digits-lt-if20_ot.py \
           configs/ot_reweight/resnet8_1xb32_digits-lt-if20_ot-official.py; do
    name=$(basename "$cfg" .py)
    python tools/train.py "$cfg" --work-dir "$WORK/$name" > "$WORK/$name.log" 2>&1 \
        || { tail -20 "$WORK/$name.log"; echo "FAIL: $cfg"; fail=1; continue; }
    grep -oE "accuracy/top1: [0-9.]+" "$WORK/$name.log" | tail -2 | tr '\n' ' '; echo "($name)"
done
step "3. drop-in fragment on mmpretrain's resnet18_8xb16_cifar10 (CUDA)"
python -m pytest -q -m dropin -k "resnet18" tests/test_models/test_dropin.py || fail=1
step "4. DDP, 2 processes (NCCL)"
if [ "$(python -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
    bash tools/dist_train.sh configs/ot_reweight/resnet8_1xb32_digits-lt-if20_ot.py 2 \
        --work-dir "$WORK/ddp" > "$WORK/ddp.log" 2>&1 || { tail -20 "$WORK/ddp.log"; echo "FAIL: DDP"; fail=1; }
    grep -oE "accuracy/top1: [0-9.]+" "$WORK/ddp.log" | tail -1
else
    echo "one GPU: DDP step skipped"
fi
[ $fail = 0 ] && echo "gpu_smoke: PASS" || { echo "gpu_smoke: FAIL"; exit 1; }
