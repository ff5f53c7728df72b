"""CUDA checks, run where a GPU is lent: the portable code paths agree with the CPU ones.

`python benchmarks/gpu_check.py` prints one JSON line per check.
"""

import json

import torch

from neurojoule.layers import S4D, S4DKernelConfig
from neurojoule.neuron import LIFParameters, lif
from neurojoule.neuron.sdn import SurrogateDynamicNetwork, sdn_spikes


def lif_cuda_matches_cpu() -> dict:
    x = torch.randn(512, 64, 32) * 1.5
    weight = torch.randn_like(x)
    result = {}
    for form, params in (
        ("multiplicative", LIFParameters(decay=0.125)),
        ("input", LIFParameters(tau=2.0)),
    ):
        grads, spikes = [], []
        for device in ("cpu", "cuda"):
            xd = x.detach().to(device).requires_grad_()
            s, _ = lif(xd, params, time_dim=0)
            (s * weight.to(device)).sum().backward()
            spikes.append(s.detach().cpu())
            grads.append(xd.grad.cpu())
        result[form] = {
            "spikes_equal": bool(torch.equal(*spikes)),
            "max_grad_diff": (grads[0] - grads[1]).abs().max().item(),
        }
    return {"check": "lif cuda (torch loop) vs cpu (numba)", **result}


def s4d_cuda_matches_cpu() -> dict:
    layer = S4D(64, S4DKernelConfig(d_state=64, bidirectional=True, dt_min=1e-4))
    u = torch.randn(4, 64, 2048)
    y_cpu = layer(u)
    y_cuda = layer.cuda()(u.cuda())
    y_cuda.square().mean().backward()
    finite = all(
        torch.isfinite(p.grad).all().item() for p in layer.parameters() if p.grad is not None
    )
    return {
        "check": "S4D cuda vs cpu",
        "max_rel_diff": ((y_cpu - y_cuda.cpu()).abs().max() / y_cpu.abs().max()).item(),
        "grads_finite": finite,
    }


def sdn_runs_on_cuda() -> dict:
    sdn = SurrogateDynamicNetwork(0.125).eval()
    y = torch.randn(256, 1024)
    cpu = sdn_spikes(y, sdn)
    gpu = sdn_spikes(y.cuda(), sdn.cuda()).cpu()
    return {"check": "SDN spikes cuda vs cpu", "disagreement": (cpu != gpu).float().mean().item()}


if __name__ == "__main__":
    torch.manual_seed(0)
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__}))
    for check in (lif_cuda_matches_cpu, s4d_cuda_matches_cpu, sdn_runs_on_cuda):
        print(json.dumps(check()), flush=True)
