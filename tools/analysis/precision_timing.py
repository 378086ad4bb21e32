# Copyright (c) mmot contributors. All rights reserved.
"""Is bfloat16 training faster than float32 on this CPU?

Times ResNet-32 (mmot's ``CifarResNet`` + a linear classifier) training
steps on random 32x32 images, in float32 and under bfloat16 autocast (what
``BF16AmpOptimWrapper`` does), and says whether this CPU has native
bfloat16 (``cpu_has_native_bf16``, what ``BF16AmpOptimWrapper`` warns
about). Prints the median seconds per step of each. Used for the precision
notes of docs/benchmarks/README.md::

    python tools/analysis/precision_timing.py --batch-size 128 --iters 5 \\
        --threads 2
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn

import mmot  # noqa: F401
from mmot.engine.optim_wrappers import cpu_has_native_bf16
from mmot.models.backbones.cifar_resnet import CifarResNet


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--iters', type=int, default=5,
                   help='timed steps per precision (after one warm-up step)')
    p.add_argument('--depth', type=int, default=32)
    p.add_argument('--threads', type=int, help='torch threads')
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.iters < 1:
        p.error('--batch-size and --iters must be >= 1')
    return args


def time_steps(precision, batch_size, iters, depth):
    """Median seconds of a forward + backward + SGD step."""
    torch.manual_seed(0)
    backbone = CifarResNet(depth=depth)
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, 10))
    model = nn.ModuleList([backbone, head])
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(batch_size, 3, 32, 32)
    y = torch.randint(0, 10, (batch_size, ))
    times = []
    for i in range(iters + 1):
        t = time.perf_counter()
        with torch.autocast('cpu', dtype=torch.bfloat16,
                            enabled=precision == 'bf16'):
            logits = head(backbone(x)[-1])
            loss = nn.functional.cross_entropy(logits.float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None):
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    native = cpu_has_native_bf16()
    print(f'CPU ISA level {torch.backends.cpu.get_cpu_capability()}, native '
          f'bfloat16: {native}; torch threads {torch.get_num_threads()}')
    res = {p: time_steps(p, args.batch_size, args.iters, args.depth)
           for p in ('fp32', 'bf16')}
    for p, t in res.items():
        print(f'{p}: {t:.3f} s per ResNet-{args.depth} training step at '
              f'batch {args.batch_size} (median of {args.iters})')
    print(f'bf16 / fp32 = {res["bf16"] / res["fp32"]:.2f}')
    return res


if __name__ == '__main__':
    main()
