"""The search runner: a search killed with SIGKILL and resumed ends with the front of one never
stopped; the folder's rules; the outputs (table, JSON, PNG) of a search of real tiny models;
the hand-designed reference and the default budgets of the shipped spaces."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from search_fixtures import FormulaEvaluator, tiny_evaluator, tiny_space

from neurojoule.search.front import format_result
from neurojoule.search.objectives import pareto_front
from neurojoule.search.runner import (
    PLOT_FILE,
    RESULT_FILE,
    STATE_FILE,
    SearchSettings,
    default_budget,
    reference_subnet,
    run_search,
)
from neurojoule.search.space import load_space, parse_space

HERE = Path(__file__).parent

KILLED = """
import sys
sys.path.insert(0, {here!r})
from search_fixtures import FormulaEvaluator, tiny_space
from neurojoule.search.runner import SearchSettings, run_search
settings = SearchSettings(algorithm={algorithm!r}, population=6, generations=8, seed=2)
run_search(tiny_space(), FormulaEvaluator(tiny_space(), delay=0.05), settings, {out!r})
"""


def _same(result: dict) -> dict:
    """A result without its timings (which differ from run to run)."""
    kept = {k: v for k, v in result.items() if k not in ("seconds", "history")}
    return json.loads(json.dumps(kept))


@pytest.mark.parametrize("algorithm", ["evolution", "nsga2"])
def test_a_search_killed_and_resumed_ends_with_the_same_front(tmp_path, algorithm):
    out = tmp_path / "killed"
    script = KILLED.format(here=str(HERE), algorithm=algorithm, out=str(out))
    process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    state = out / STATE_FILE
    deadline = time.monotonic() + 60
    generation = 0
    while generation < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
        if state.is_file():
            generation = json.loads(state.read_text())["generation"]
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    saved = json.loads(state.read_text())["generation"]
    assert 3 <= saved < 8  # killed mid-search
    assert not (out / RESULT_FILE).exists()

    settings = SearchSettings(algorithm=algorithm, population=6, generations=8, seed=2)
    evaluator = FormulaEvaluator(tiny_space())
    resumed = run_search(tiny_space(), evaluator, settings, out, resume=True, progress=False)
    assert evaluator.measured <= 6 * (8 - saved) + 2  # no work done twice
    whole = run_search(tiny_space(), FormulaEvaluator(tiny_space()), settings, tmp_path / "whole")
    assert _same(resumed) == _same(whole)
    assert resumed["generations"] == 8 and len(resumed["history"]) == 8
    assert json.loads((out / RESULT_FILE).read_text()) == json.loads(json.dumps(resumed))


def test_the_folder_rules(tmp_path):
    settings = SearchSettings(algorithm="evolution", population=4, generations=2)
    run_search(tiny_space(), FormulaEvaluator(tiny_space()), settings, tmp_path, progress=False)
    with pytest.raises(ValueError, match="already holds a search; pass --resume"):
        run_search(tiny_space(), FormulaEvaluator(tiny_space()), settings, tmp_path)
    other = SearchSettings(algorithm="evolution", population=4, generations=3)
    with pytest.raises(ValueError, match="other settings") as error:
        run_search(tiny_space(), FormulaEvaluator(tiny_space()), other, tmp_path, resume=True)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="no search state"):
        run_search(tiny_space(), FormulaEvaluator(tiny_space()), settings, tmp_path / "new", True)
    # a finished search resumed: the same result, nothing measured again
    evaluator = FormulaEvaluator(tiny_space())
    again = run_search(tiny_space(), evaluator, settings, tmp_path, resume=True, progress=False)
    assert evaluator.measured == 0
    assert _same(again) == _same(json.loads((tmp_path / RESULT_FILE).read_text()))


def test_a_search_of_tiny_real_models_and_its_outputs(tmp_path, capsys):
    evaluator = tiny_evaluator()
    settings = SearchSettings(algorithm="nsga2", population=3, generations=2, seed=1)
    result = run_search(evaluator.space, evaluator, settings, tmp_path)
    progress = capsys.readouterr().err.splitlines()
    assert progress[0].startswith("generation 1/2: 3 subnets (3 measured)")
    assert "left" in progress[0] and "left" not in progress[1]
    assert result["evaluated"] == 6 and result["generations"] == 2
    # the front: the non-dominated points among all evaluated, by energy
    points = result["points"]
    assert len(points) == 6
    expected = sorted(
        (points[i] for i in pareto_front(_as_objectives(points), ("error", "energy"))),
        key=lambda p: (p[0], -p[1]),
    )
    assert [[e["energy_uj"], e["val_accuracy"]] for e in result["front"]] == expected
    # every entry's numbers are the evaluator's for its subnet
    for entry in result["front"]:
        measured = evaluator.objectives([entry["genome"]])[0]
        assert (entry["val_accuracy"], entry["energy_uj"]) == (
            measured.accuracy,
            measured.energy_uj,
        )
    largest = evaluator.objectives([evaluator.space.encode(evaluator.space.extreme(True))])[0]
    assert result["largest"]["energy_uj"] == largest.energy_uj
    assert result["fitness"]["reference"]["energy_uj"] == largest.energy_uj
    assert result["reference"] is None  # the registry's spikformer is not in the tiny space
    assert json.loads((tmp_path / RESULT_FILE).read_text()) == json.loads(json.dumps(result))
    with Image.open(tmp_path / PLOT_FILE) as image:
        assert image.format == "PNG" and image.size[0] > 300
    table = format_result(result).splitlines()
    assert table[0].startswith("nsga2 on a space of spikformer: 2 generations, 6 subnets")
    assert len(table) == 3 + len(result["front"]) + 2  # header lines, front, best, largest


def _as_objectives(points):
    from neurojoule.search.objectives import Objectives

    return [Objectives(accuracy, energy, 1, 1, 1, None) for energy, accuracy in points]


def test_the_hand_designed_reference_of_each_shipped_space():
    cpu = reference_subnet(load_space("spikformer-fmnist-cpu"))
    assert cpu == {
        "embed_dim": 128,
        "steps": 4,
        "depth": 2,
        "heads": (4, 4),
        "mlp_ratio": (4.0, 4.0),
        "v_threshold": (1.0, 1.0),
        "tau": (2.0, 2.0),
    }
    published = reference_subnet(load_space("spikformer-published"))
    assert (published["embed_dim"], published["depth"], published["steps"]) == (384, 4, 4)
    assert published["heads"] == (12,) * 4
    assert reference_subnet(tiny_space()) is None


def test_default_budgets():
    published = default_budget(load_space("spikformer-published"))
    assert (published.population, published.generations, published.val_limit) == (50, 20, None)
    cpu = default_budget(load_space("spikformer-fmnist-cpu"))
    assert (cpu.population, cpu.generations, cpu.val_limit) == (20, 10, 2000)
    custom = default_budget(parse_space({**_cpu_values(), "depth": [1, 2]}))
    assert custom == published
    assert SearchSettings().population == 50 and SearchSettings().generations == 20


def _cpu_values():
    from importlib import resources

    import yaml

    path = resources.files("neurojoule.search") / "spaces" / "spikformer-fmnist-cpu.yaml"
    return yaml.safe_load(path.read_text())
