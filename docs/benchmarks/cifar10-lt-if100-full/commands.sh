#!/usr/bin/env bash
# The full-budget CIFAR-10-LT IF100 benchmark (issue "A credible comparison"), every stage 2 from the
# stage-1 zoo. Each part is resumable (a run whose result.json exists is skipped); run them from the
# repository root, one process per core (1 thread each):
#   bash docs/benchmarks/cifar10-lt-if100-full/commands.sh timing          # uncached s/iter reference
#   bash docs/benchmarks/cifar10-lt-if100-full/commands.sh grid 0 1 2      # cached decoupled rows
#   bash docs/benchmarks/cifar10-lt-if100-full/commands.sh official 0      # one seed of the authors' recipe
#   bash docs/benchmarks/cifar10-lt-if100-full/commands.sh ablations      # label / feature cost, seed 0
#   bash docs/benchmarks/cifar10-lt-if100-full/commands.sh controls NAME [EPOCHS]  # a control of the
#        authors' recipe, 90 epochs or EPOCHS (compare with official seed 0's test at that epoch: constant lr)
#   bash docs/benchmarks/cifar10-lt-if100-full/commands.sh report         # results.json/md of what finished
# DATA: the extracted ../shared/data/cifar10-jpg.tar.gz (train/, test/).
set -eu
DATA=${DATA:-/work/data/cifar10-jpg}
OUT=docs/benchmarks/cifar10-lt-if100-full
ZOO=docs/benchmarks/zoo/resnet32_1xb128_cifar10-lt-if100-jpg_ce
COMMON="--data-root $DATA --imbalance-factor 100 --stage1-from $ZOO --stage1-epochs 200
        --stage1-schedule step --official-from-epoch 160 --official-stage2-epochs 90 --threads 1
        --log-interval 200"
# the rows of the main table; ot_reweight_official runs uncached (BatchNorm in train mode)
MAIN="ce ce_drw crt balanced_softmax_decoupled logit_adjust_posthoc ot_posthoc otlm ot_reweight
      ot_reweight_global ot_reweight_official"
CACHED="--stage2-epochs 40 --stage2-feature-cache 10 --stage2-timing-from $OUT/uncached_timing"
export OMP_NUM_THREADS=1
part=${1:?part: timing, grid SEEDS, official SEED, ablations, controls NAME, report}
shift
case $part in
timing)  # the Runner as configured (no cache), seed 0: 4 epochs = 3096 iterations per method
  python tools/benchmark.py $COMMON --stage2-epochs 4 --seeds 0 --methods ce_drw ot_reweight \
    --out $OUT/uncached_timing ;;
grid)  # every cached decoupled method of the main table for the given seeds
  python tools/benchmark.py $COMMON $CACHED --seeds "$@" \
    --methods ce ce_drw crt balanced_softmax_decoupled logit_adjust_posthoc ot_posthoc otlm \
    ot_reweight ot_reweight_global --out $OUT ;;
official)  # 90 epochs from epoch 160, tested every epoch (the authors' selection, reported apart)
  python tools/benchmark.py $COMMON $CACHED --seeds "$@" --methods ot_reweight_official --out $OUT ;;
ablations)  # cost ablations, one seed (the main run's cache file of seed 0 is read, not refilled)
  mkdir -p $OUT/ablations_seed0/feature_cache
  [ -e $OUT/ablations_seed0/feature_cache/seed0_views10.pth ] || \
    ln $OUT/feature_cache/seed0_views10.pth $OUT/ablations_seed0/feature_cache/ 2>/dev/null || true
  python tools/benchmark.py $COMMON $CACHED --seeds 0 --methods ot_reweight_label ot_reweight_feature \
    --out $OUT/ablations_seed0 ;;
controls)  # what carries the authors' recipe, seed 0, 90 (or EPOCHS) epochs, tested after the last one
  case ${1:?control: ot_step_off, no_meta_ce, cb_weights_alone, meta_ce_alone} in
  ot_step_off) opts="learner.lr=0.0" ;;
  no_meta_ce) opts="meta_loss_weight=0.0 meta_loss_source=features" ;;
  cb_weights_alone) opts="learner.lr=0.0 meta_loss_weight=0.0 meta_loss_source=features" ;;
  meta_ce_alone) opts="learner.lr=0.0 learner.init=uniform" ;;
  *) echo "unknown control $1"; exit 2 ;;
  esac
  ep=${2:-90}
  dir=$OUT/controls_seed0; [ "$ep" = 90 ] || dir=${dir}_e$ep
  python tools/benchmark.py $COMMON --official-stage2-epochs $ep --stage2-epochs 40 --seeds 0 \
    --methods ot_reweight_official --official-test-every-epoch off --official-options $opts \
    --out $dir/$1 ;;
report)  # results.json/md over the three seeds, all rows (a row not finished on every seed is
         # reported over the seeds it has and labelled so; nothing is run)
  python tools/benchmark.py $COMMON $CACHED --seeds 0 1 2 --methods $MAIN --out $OUT --report-only ;;
*) echo "unknown part $part"; exit 2 ;;
esac
