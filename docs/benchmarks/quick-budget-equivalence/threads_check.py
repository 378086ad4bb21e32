"""Do 1 and 2 torch threads give the same ResNet-32 training step under
bfloat16 autocast on this CPU? (Bitwise: the quick-budget equivalence.)"""
import torch
import mmot  # noqa: F401
from mmpretrain.registry import MODELS
torch.manual_seed(0)
net = MODELS.build(dict(type='CifarResNet', depth=32))
x = torch.randn(128, 3, 32, 32)
out = {}
for t in (1, 2):
    torch.set_num_threads(t)
    net.zero_grad()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = net(x)[-1].float().mean((2, 3))
    y.square().mean().backward()
    out[t] = (y.detach().clone(), [p.grad.clone() for p in net.parameters()])
same_fwd = torch.equal(out[1][0], out[2][0])
diff = max((a - b).abs().max().item() for a, b in zip(out[1][1], out[2][1]))
print(f'forward bitwise equal: {same_fwd}; max |grad(1 thread) - grad(2 threads)|: {diff:.3g}')
