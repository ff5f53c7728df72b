"""Streaming generation speed and energy: does a token cost the same at position 10 000 as at
position 100? The causal SpikingSSM runs as its recurrence (CausalLM.step), so it should;
re-running the parallel (FFT) forward over the whole prefix for every token, which is what a
model without a recurrent form has to do, grows with the prefix and is timed beside it.

    python benchmarks/generate.py [--checkpoint runs/kjv-cpu] [--threads 1] \\
        [--results benchmarks/results_generate_cpu.json]

Generates --tokens tokens (10 000, and 90 more) after a prompt, one step each, keeping the
state at the start of 5 windows of 100 consecutive tokens around each position P (centred at
P - 40, P - 20, P, P + 20 and P + 40). Then it times those windows again from their states --
steps and sampling, the positions taking turns, --repeats rounds -- so that both positions are
measured under the same load: the rate at P is the median over its windows. The first pass's
rates are kept as extras. The energy per token is that of the streamed steps, replayed under
the EnergyCounter (train/generate.py). Writes RESULTS: {"tokens_per_s_at": {"100": ...,
"10000": ...}, "energy_per_token_uj": ...} and extras (the parallel re-run's rates, the
machine, the command). Progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from neurojoule.bench import machine_description
from neurojoule.train.generate import (
    check_sampling,
    load_language_model,
    primed_state,
    sample,
    stream_energy,
)

POSITIONS = (100, 10000)
WINDOW = 100
SHIFTS = (-40, -20, 0, 20, 40)
PROMPT = "In the beginning God created the heaven and the earth."


def window_starts(position: int) -> list[int]:
    """The first token (counted from 1) of each window around `position`."""
    return [position + shift - WINDOW // 2 for shift in SHIFTS]


def rate_at(stamps: list[float], position: int) -> float:
    """Median tokens per second of the first pass over the windows around `position`;
    stamps[i] is the time at which token i (counted from 1; stamps[0] the start) was ready."""
    rates = [WINDOW / (stamps[s - 1 + WINDOW] - stamps[s - 1]) for s in window_starts(position)]
    return statistics.median(rates)


@torch.no_grad()
def time_window(model, state, fed: list[int], sampling: dict, generator) -> float:
    """Tokens per second of stepping through `fed` from `state`, sampling after each step."""
    start = time.perf_counter()
    for index in fed:
        scores, state = model.step(torch.tensor([index]), state)
        sample(scores, sampling["temperature"], sampling["top_k"], generator)
    return len(fed) / (time.perf_counter() - start)


@torch.no_grad()
def parallel_rerun_rate(model, ids: list[int], position: int, repeats: int = 3) -> float:
    """Tokens per second when each token re-runs the parallel forward over its whole prefix
    of `position` tokens (scores of the last position only)."""
    prefix = torch.tensor([ids[:position]])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        hidden = model.features(prefix)[:, -1:]
        model.decoder.log_prob(hidden) if model.adaptive else model.decoder(hidden)
        times.append(time.perf_counter() - start)
    return 1.0 / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/kjv-cpu", help="a run folder or .ckpt")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--tokens", type=int, default=max(POSITIONS))
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--energy-table", default="45nm")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of timed windows")
    parser.add_argument("--results", default="benchmarks/results_generate_cpu.json")
    args = parser.parse_args()
    if args.tokens < max(POSITIONS):
        parser.error(f"--tokens must be at least {max(POSITIONS)}")
    torch.set_num_threads(args.threads)

    config, model, codec = load_language_model(args.checkpoint)
    prompt_ids = codec.start_ids + codec.encode(args.prompt)
    sampling = {"temperature": args.temperature, "top_k": args.top_k}
    check_sampling(**sampling)
    count = args.tokens + max(SHIFTS) + WINDOW // 2
    starts = {start for p in POSITIONS for start in window_starts(p)}
    generator = torch.Generator().manual_seed(args.seed)
    state = first_state = primed_state(model, prompt_ids)
    fed = [prompt_ids[-1]]  # fed[i]: the token read by the step that makes token i + 1
    snapshots = {}  # window start -> the state before the step that makes that token
    stamps = [time.perf_counter()]
    with torch.no_grad():
        for position in tqdm(range(1, count + 1), desc="generate", unit="tok", file=sys.stderr):
            if position in starts:
                snapshots[position] = state
            scores, state = model.step(torch.tensor([fed[-1]]), state)
            fed.append(int(sample(scores, args.temperature, args.top_k, generator)[0]))
            stamps.append(time.perf_counter())
    ids = fed[1:]
    total_seconds = stamps[-1] - stamps[0]
    steps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    first_pass = {str(p): rate_at(stamps, p) for p in POSITIONS}

    print(f"timing the windows again, {args.repeats} rounds ...", file=sys.stderr)
    measured: dict[str, list[float]] = {str(p): [] for p in POSITIONS}
    for _ in range(args.repeats):
        for shift_index in range(len(SHIFTS)):
            for p in POSITIONS:  # the positions take turns: the same load for both
                start = window_starts(p)[shift_index]
                window = fed[start - 1 : start - 1 + WINDOW]
                rate = time_window(model, snapshots[start], window, sampling, generator)
                measured[str(p)].append(rate)
    rates = {key: statistics.median(values) for key, values in measured.items()}

    print("energy: replaying the steps under the EnergyCounter ...", file=sys.stderr)
    energy = stream_energy(model, prompt_ids, ids, args.energy_table)
    print("the parallel forward re-run over each prefix ...", file=sys.stderr)
    stream = prompt_ids + ids
    rerun = {str(p): parallel_rerun_rate(model, stream, p) for p in POSITIONS}

    results = {
        "tokens_per_s_at": rates,
        "first_pass_tokens_per_s_at": first_pass,
        "windows_per_position": len(measured[str(POSITIONS[0])]),
        "energy_per_token_uj": energy.per_sample.snn_energy_j * 1e6,
        "ann_energy_per_token_uj": energy.per_sample.ann_energy_j * 1e6,
        "mean_spike_rate": energy.mean_firing_rate,
        "parallel_rerun_tokens_per_s_at": rerun,
        "tokens": len(ids),
        "tokens_per_s_overall": len(ids) / total_seconds,
        "median_step_ms": statistics.median(steps) * 1e3,
        "window": f"median over {args.repeats} rounds of {len(SHIFTS)} windows of {WINDOW} "
        f"tokens centred at the position {', '.join(f'{s:+d}' for s in SHIFTS)}, timed again "
        "from the states kept in the first pass, the positions taking turns",
        "state_reals_per_stream": sum(
            t.numel() * (2 if t.is_complex() else 1) for layer in first_state for t in layer
        ),
        "model": config.model,
        "task": config.task,
        "checkpoint": str(args.checkpoint),
        "prompt": args.prompt,
        "seed": args.seed,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "energy_table": energy.table.name,
        "threads": args.threads,
        "machine": machine_description(),
        "command": " ".join(["python", *sys.argv]),
        "sample": codec.decode(ids[:60]),
    }
    Path(args.results).write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'position':>10} {'stream tok/s':>14} {'re-run tok/s':>14} {'ratio':>8}")
    for p in POSITIONS:
        key = str(p)
        print(f"{p:>10} {rates[key]:>14.1f} {rerun[key]:>14.1f} {rates[key] / rerun[key]:>8.1f}")
    print(
        f"energy {results['energy_per_token_uj']:.3f} µJ per token (ANN of the same shape "
        f"{results['ann_energy_per_token_uj']:.3f} µJ), mean spike rate "
        f"{results['mean_spike_rate'] * 100:.1f} %; written to {args.results}"
    )


if __name__ == "__main__":
    main()
