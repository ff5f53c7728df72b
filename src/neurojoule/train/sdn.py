"""Training and evaluation of the surrogate dynamic network (REFERENCE.md section 1)."""

from __future__ import annotations

import copy
import time

import torch
from tqdm import tqdm

from neurojoule.neuron.sdn import SurrogateDynamicNetwork, exact_targets, spike_agreement

EVAL_STDS = (0.3, 0.5, 1.0, 2.0, 5.0, 10.0)
EVAL_MEANS = (-0.5, 0.0, 0.5)
# Training seeds stay below this and evaluation seeds start at it, so that no evaluation
# input is ever a training or validation sequence.
EVAL_SEED_BASE = 2**40


def make_dataset(
    decay: float, sequences: int, length: int, seed: int, std: float = 1.0, mean: float = 0.0
):
    """Currents y ~ N(mean, std^2) i.i.d. [sequences, length] and the exact LIF's mem targets."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.randn(sequences, length, generator=generator) * std + mean
    mem, _ = exact_targets(y, decay)
    return y, mem


def train_sdn(
    decay: float,
    sequences: int = 50_000,
    length: int = 1024,
    epochs: int = 100,
    batch_size: int = 64,
    lr: float = 0.01,
    weight_decay: float = 0.01,
    seed: int = 0,
    progress: bool = True,
    device: str = "cpu",
    max_seconds: float | None = None,
    kernel_size: int = 8,
    channels: int = 8,
    depth: int = 1,
) -> tuple[SurrogateDynamicNetwork, dict]:
    """SmoothL1 on mem, AdamW, cosine schedule, 90/10 split, best epoch by validation loss.

    With `max_seconds`, training stops after the last epoch that fits in that time (the
    metrics say how many epochs ran)."""
    if sequences < 10 or length < 2 or epochs < 1 or batch_size < 1:
        raise ValueError(
            "SDN training needs sequences >= 10, length >= 2, epochs >= 1 and batch_size >= 1"
        )
    if not 0 <= seed < EVAL_SEED_BASE:
        raise ValueError(
            f"SDN training seeds lie in [0, 2**40) (kept apart from evaluation), got {seed}"
        )
    torch.manual_seed(seed)
    y, mem = (t.to(device) for t in make_dataset(decay, sequences, length, seed))
    n_val = sequences // 10
    y_train, mem_train, y_val, mem_val = y[n_val:], mem[n_val:], y[:n_val], mem[:n_val]
    net = SurrogateDynamicNetwork(decay, channels, kernel_size, depth).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = -(-len(y_train) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    loss_fn = torch.nn.SmoothL1Loss()
    best = (float("inf"), None, 0)
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc=f"SDN decay={decay:g}", unit="epoch", disable=not progress)
    for epoch in bar:
        net.train()
        order = torch.randperm(len(y_train), device=device)
        for i in range(steps_per_epoch):
            idx = order[i * batch_size : (i + 1) * batch_size]
            loss = loss_fn(net(y_train[idx]), mem_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        val_loss = _validation_loss(net, y_val, mem_val, loss_fn)
        if val_loss < best[0]:
            best = (val_loss, copy.deepcopy(net.state_dict()), epoch + 1)
        bar.set_postfix(val_loss=f"{val_loss:.2e}", best_epoch=best[2])
        elapsed = time.perf_counter() - start
        if max_seconds is not None and elapsed * (epoch + 2) / (epoch + 1) > max_seconds:
            break
    net.load_state_dict(best[1])
    net = net.cpu().eval()
    metrics = {
        "val_loss": best[0],
        "best_epoch": best[2],
        "epochs": epochs,
        "epochs_run": epoch + 1,
        "sequences": sequences,
        "length": length,
        "seed": seed,
        "train_seconds": time.perf_counter() - start,
        "device": str(device),
        "kernel_size": kernel_size,
        "channels": channels,
        "depth": depth,
    }
    return net, metrics


@torch.no_grad()
def _validation_loss(net, y_val, mem_val, loss_fn, batch: int = 512) -> float:
    net.eval()
    total = 0.0
    for i in range(0, len(y_val), batch):
        total += loss_fn(net(y_val[i : i + batch]), mem_val[i : i + batch]).item() * len(
            y_val[i : i + batch]
        )
    return total / len(y_val)


def evaluate_sdn(
    net: SurrogateDynamicNetwork, sequences: int = 1000, length: int = 1024, seed: int = 0
) -> dict:
    """Spike agreement with the exact LIF on fresh N(0,1) inputs and across input statistics
    (a quarter as many sequences for each of them), drawn apart from any training data."""
    if sequences < 4:
        raise ValueError(f"SDN evaluation needs at least 4 sequences, got {sequences}")
    if seed < 0:
        raise ValueError(f"the evaluation seed must be >= 0, got {seed}")
    generator = torch.Generator().manual_seed(EVAL_SEED_BASE + seed)
    y = torch.randn(sequences, length, generator=generator)
    agreement, mae = spike_agreement(net, y)
    by_distribution = []
    for std in EVAL_STDS:
        for mean in EVAL_MEANS:
            y = torch.randn(sequences // 4, length, generator=generator) * std + mean
            agree, _ = spike_agreement(net, y)
            by_distribution.append({"std": std, "mean": mean, "spike_agreement": agree})
    return {
        "decay": net.decay,
        "depth": net.depth,
        "spike_agreement": agreement,
        "mae": mae,
        "min_agreement_over_distributions": min(r["spike_agreement"] for r in by_distribution),
        "by_distribution": by_distribution,
    }


@torch.no_grad()
def evaluate_sdn_on_model(
    checkpoint, split: str = "test", limit_samples: int = 200, sdn_path=None
) -> dict:
    """Spike agreement of the shipped SDN (or the one at `sdn_path`) with the exact LIF on the
    currents that each spiking layer of a trained model receives on real data (the model runs
    with the exact LIF). Padding positions count too: the neurons process them as well."""
    from neurojoule.layers import set_lif_mode, ssm_neurons
    from neurojoule.neuron.sdn import load_sdn
    from neurojoule.train.checkpoints import load_checkpoint
    from neurojoule.train.splits import evaluation_loader, make_splits

    config, _, model = load_checkpoint(checkpoint)
    neurons = ssm_neurons(model)
    if not neurons:
        raise ValueError(f"{checkpoint} holds a {config.model} without spiking SSM layers")
    config.limit_eval_samples = limit_samples
    data = dict(zip(("train", "val", "test"), make_splits(config)[:3], strict=True))[split]
    set_lif_mode(model, "bptt")
    currents: dict[str, list[torch.Tensor]] = {}
    hooks = [
        neuron.register_forward_pre_hook(
            lambda module, args, name=name: currents.setdefault(name, []).append(
                module.unit_threshold_input(args[0]).reshape(-1, args[0].shape[-1])
            )
        )
        for name, neuron in neurons.items()
    ]
    for x, _ in evaluation_loader(data, config.optim.batch_size):
        model(x)
    for hook in hooks:
        hook.remove()
    layers = []
    for name, chunks in currents.items():
        y = torch.cat(chunks)
        sdn = load_sdn(neurons[name].decay, path=sdn_path)
        agreement, mae = spike_agreement(sdn, y)
        layers.append(
            {
                "layer": name,
                "spike_agreement": agreement,
                "mae": mae,
                "input_std": y.std().item(),
                "input_mean": y.mean().item(),
            }
        )
    return {"checkpoint": str(checkpoint), "split": split, "samples": len(data), "layers": layers}


def format_sdn_training(metrics: dict, path) -> str:
    """The line `neurojoule sdn train` prints: the trained SDN's agreement (metrics["eval"],
    from evaluate_sdn) and where it was written."""
    result = metrics["eval"]
    return (
        f"SDN decay={result['decay']:g}: spike agreement {result['spike_agreement'] * 100:.3f} % "
        f"on N(0,1), MAE {result['mae']:.2e}; written to {path}"
    )


def format_sdn_evaluation(result: dict) -> str:
    """The report `neurojoule sdn eval` prints for evaluate_sdn's result: the agreement on
    N(0,1) inputs, then one row per input distribution."""
    lines = [
        f"SDN decay={result['decay']:g} (depth {result['depth']}): spike agreement "
        f"{result['spike_agreement'] * 100:.3f} % on N(0,1) inputs, MAE {result['mae']:.2e}",
        f"{'std':>6} {'mean':>6} {'agreement':>10}",
    ]
    lines += [
        f"{row['std']:>6g} {row['mean']:>6g} {row['spike_agreement'] * 100:>9.3f}%"
        for row in result["by_distribution"]
    ]
    return "\n".join(lines)


def format_sdn_model_evaluation(result: dict) -> str:
    """The report `neurojoule sdn eval --checkpoint` prints for evaluate_sdn_on_model's
    result: the agreement in each spiking layer of the model."""
    lines = [
        f"SDN vs exact LIF on the real inputs of {result['checkpoint']} "
        f"({result['samples']} samples):"
    ]
    lines += [
        f"  {row['layer']}: {row['spike_agreement'] * 100:.3f} % "
        f"(input mean {row['input_mean']:.2f}, std {row['input_std']:.2f})"
        for row in result["layers"]
    ]
    return "\n".join(lines)
