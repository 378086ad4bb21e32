#!/usr/bin/env bash
# Issue 14: validate the stage-2 feature cache against the uncached Runner on seed 0
# (zoo epoch-200 checkpoint, 40 stage-2 epochs at batch 16, classifier only): ce_drw and ot_reweight.
cd /work/main; . /work/venv/bin/activate; export OMP_NUM_THREADS=1
Z=docs/benchmarks/zoo/resnet32_1xb128_cifar10-lt-if100-jpg_ce
common="--data-root /work/data/cifar10-jpg --imbalance-factor 100 --seeds 0 --methods ce ce_drw ot_reweight --stage1-from $Z --stage1-epochs 200 --stage2-epochs 40 --threads 1 --log-interval 200"
python tools/benchmark.py $common --out /work/cache_val/cached --stage2-feature-cache 10 > /work/cache_val/cached.log 2>&1
python tools/benchmark.py $common --out /work/cache_val/uncached > /work/cache_val/uncached.log 2>&1
