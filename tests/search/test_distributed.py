"""Distributed evaluation: a search run by two torch.distributed processes (torchrun, gloo)
shares the measurements between the ranks and ends with the front of one process."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from search_fixtures import FormulaEvaluator, tiny_space

from neurojoule.search.runner import SearchSettings, run_search

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SCRIPT = """
import json, sys
sys.path.insert(0, {here!r})
import torch
import torch.distributed as dist
from search_fixtures import FormulaEvaluator, tiny_space
from neurojoule.search.evaluator import init_distributed
from neurojoule.search.runner import SearchSettings, run_search

init_distributed()
rank = dist.get_rank()
results = {{}}
for algorithm in ("evolution", "nsga2"):
    evaluator = FormulaEvaluator(tiny_space())
    settings = SearchSettings(algorithm=algorithm, population=6, generations=3, seed=5)
    result = run_search(tiny_space(), evaluator, settings, progress=False)
    results[algorithm] = {{
        "front": result["front"], "measured_here": evaluator.measured_here,
        "measured": evaluator.measured, "world": evaluator.world_size,
    }}
with open({out!r} + f"/rank{{rank}}.json", "w") as stream:
    json.dump(results, stream)
dist.destroy_process_group()
"""


def test_two_processes_give_the_front_of_one(tmp_path):
    script = tmp_path / "search.py"
    script.write_text(SCRIPT.format(here=str(HERE), out=str(tmp_path)))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    command += ["--master-addr", "127.0.0.1", "--master-port", str(_free_port()), str(script)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for algorithm in ("evolution", "nsga2"):
        settings = SearchSettings(algorithm=algorithm, population=6, generations=3, seed=5)
        alone = FormulaEvaluator(tiny_space())
        expected = run_search(tiny_space(), alone, settings, progress=False)["front"]
        expected = json.loads(json.dumps(expected))
        shares = [ranks[r][algorithm]["measured_here"] for r in (0, 1)]
        for r in (0, 1):
            assert ranks[r][algorithm]["world"] == 2
            assert ranks[r][algorithm]["front"] == expected
            assert ranks[r][algorithm]["measured"] == alone.measured == sum(shares)
        assert abs(shares[0] - shares[1]) <= 4  # each rank measured about half
        assert min(shares) > 0
