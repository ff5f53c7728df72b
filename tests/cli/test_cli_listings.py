"""neurojoule configs and neurojoule models: a header row, then one row per entry, each
checked against what the files and the models themselves say."""

import itertools
import json
import math
import re
from importlib import resources
from pathlib import Path

import pytest
import yaml

from neurojoule.cli import main

CONFIGS = Path(str(resources.files("neurojoule") / "configs"))


def _read_yaml_config(path: Path) -> dict:
    """name, task, model and the first sentence of the leading comment of a config file,
    read here afresh."""
    text = path.read_text()
    values = yaml.safe_load(text)
    leading = itertools.takewhile(lambda line: line.startswith("#"), text.splitlines())
    comment = " ".join(word for line in leading for word in line.lstrip("#").split())
    sentence = re.match(r"(.*?\.)(?=\s|$)", comment)
    return {
        "name": path.stem,
        "task": values.get("task", "listops"),
        "model": values.get("model"),
        "description": sentence.group(1) if sentence else comment,
    }


def test_configs_json_lists_every_file_with_its_task_model_and_description(capsys):
    assert main(["configs", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    expected = [
        _read_yaml_config(path) for path in sorted(CONFIGS.glob("*.yaml"), key=lambda p: p.stem)
    ]
    assert rows == expected
    by_name = {row["name"]: row for row in rows}
    assert by_name["kjv-cpu"]["model"] == "spiking-ssm-lm" and by_name["listops"]["model"] is None
    assert by_name["pathx"]["task"] == "pathfinder"


def test_configs_table_has_a_header_and_a_row_per_config(capsys):
    assert main(["configs"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == ["config", "task", "model", "description"]
    expected = [
        _read_yaml_config(path) for path in sorted(CONFIGS.glob("*.yaml"), key=lambda p: p.stem)
    ]
    assert len(lines) == len(expected)
    for line, row in zip(lines, expected, strict=True):
        name, task, model, *description = line.split()
        assert (name, task, model) == (row["name"], row["task"], row["model"] or "-")
        assert " ".join(description) == " ".join(row["description"].split())


SMALL = ["spiking-mlp", "spikformer", "spiking-ssm", "s4d", "spiking-ssm-lm", "s4d-lm"]


def test_models_lists_published_variants_with_size_and_input_shape(capsys):
    assert main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert {"spiking-mlp-spe-t", "spiking-mlp-spe-s", "spiking-mlp-s"} <= set(rows)
    assert rows["spikformer-4-384"]["params"] == pytest.approx(9.32e6, rel=0.01)  # published
    assert rows["spikformer-8-768"]["input_shape"] == ["batch", 3, 224, 224]
    assert rows["spiking-mlp"]["input_shape"] == ["batch", 1, 28, 28]
    assert rows["spiking-ssm"]["input_shape"] == ["batch", "length", 1]


@pytest.mark.parametrize("name", SMALL)
def test_a_small_models_row_counts_the_weights_of_the_model_built(name, capsys):
    """The meta-device count of the registry against the parameters of the real model, and the
    input shape against an input that model takes."""
    import torch

    from neurojoule.models import build_model

    assert main(["models", "--json"]) == 0
    (row,) = (r for r in json.loads(capsys.readouterr().out) if r["name"] == name)
    model = build_model(name).eval()
    assert row["params"] == sum(p.numel() for p in model.parameters())
    shape = [{"batch": 2, "length": 16}.get(size, size) for size in row["input_shape"]]
    tokens = row["input_shape"] == ["batch", "length"]  # a language model reads token ids
    x = torch.randint(1, 10, shape) if tokens else torch.randn(shape)
    with torch.no_grad():
        assert model(x).shape[0] == 2


def test_models_table_has_a_header_and_a_row_per_model(capsys):
    from neurojoule.models import list_models

    assert main(["models"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == ["model", "params", "input", "description"]
    assert [line.split()[0] for line in lines] == list_models()
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for line, row in zip(lines, rows, strict=True):
        millions = float(line.split()[1].removesuffix("M"))
        assert math.isclose(millions, row["params"] / 1e6, abs_tol=0.005)
