"""neurojoule export: a checkpoint (or its run folder) to a .nir file, a one-line summary, and
one line on stderr with status 2 for a missing or broken file or a model NIR cannot hold."""

from __future__ import annotations

import dataclasses
import json

import nir
import pytest
import torch

from neurojoule.cli import main
from neurojoule.data.tasks import TaskInfo
from neurojoule.export import import_nir
from neurojoule.layers.time_first import repeat_steps
from neurojoule.train.config import TrainConfig
from neurojoule.train.module import build_model_for_task

DIGITS = TaskInfo("digits", 10, 64, in_channels=1, image_size=8)
LISTOPS = TaskInfo("listops", 10, 40, vocab_size=20)


def write_run(folder, model: str, info: TaskInfo, **options):
    """A run folder with checkpoints/best-epoch=0.ckpt of a freshly built model, as train
    writes it (config and task_info as plain data, the weights under model.)."""
    torch.manual_seed(0)
    config = TrainConfig(model=model, task=info.name, model_options=options)
    built = build_model_for_task(config, info).eval()
    path = folder / "checkpoints" / "best-epoch=0.ckpt"
    path.parent.mkdir(parents=True)
    torch.save(
        {
            "hyper_parameters": {"config": config.to_dict(), "task_info": dataclasses.asdict(info)},
            "state_dict": {f"model.{k}": v for k, v in built.state_dict().items()},
        },
        path,
    )
    return built


def export(capsys, *argv) -> tuple[int, str, str]:
    status = main(["export", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_export_of_a_run_folder_writes_a_graph_that_runs_as_the_model(tmp_path, capsys):
    model = write_run(tmp_path / "run", "dense-snn", DIGITS, hidden=[16], steps=3)
    out_file = tmp_path / "net.nir"
    status, out, err = export(capsys, str(tmp_path / "run"), "--out", str(out_file))
    assert status == 0 and err == ""
    assert out.count("\n") == 1
    assert out.startswith(f"wrote {out_file}: dense-snn, 6 nodes, 5 edges")
    assert "1 LIF node(s), dt=1, T=3; nothing cut" in out
    graph = nir.read(out_file)  # a plain nir reader takes it
    assert float(graph.metadata["dt"]) == 1.0
    images = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(import_nir(out_file)(repeat_steps(images, 3)), model.step_logits(images))


def test_export_of_a_spiking_ssm_says_what_was_cut(tmp_path, capsys):
    write_run(tmp_path / "run", "spiking-ssm", LISTOPS, d_model=8, n_layers=2, d_state=4)
    checkpoint = tmp_path / "run" / "checkpoints" / "best-epoch=0.ckpt"
    out_file = tmp_path / "ssm.nir"
    status, out, _ = export(
        capsys, str(checkpoint), "--out", str(out_file), "--dt", "0.5", "--json"
    )
    assert status == 0
    summary = json.loads(out)
    assert summary["model"] == "spiking-ssm" and summary["dt"] == 0.5
    assert summary["inputs"] == [f"backbone.layers.{i}.block.current" for i in (0, 1)]
    assert summary["outputs"] == [f"backbone.layers.{i}.block.conv_out" for i in (0, 1)]
    assert summary["spiking_nodes"] == 2 and len(summary["cut"]) == 3
    assert "S4D convolution" in summary["cut"][0] and summary["out"] == str(out_file)
    assert float(nir.read(out_file).metadata["dt"]) == 0.5


@pytest.mark.parametrize("case", ["missing", "broken", "not exportable"])
def test_bad_input_is_one_line_and_status_2(case, tmp_path, capsys):
    target = tmp_path / "run"
    if case == "broken":
        target = tmp_path / "broken.ckpt"
        target.write_bytes(b"PK\x03\x04 not a checkpoint at all")
    elif case == "not exportable":  # the non-spiking S4D baseline has no neuron to export
        write_run(target, "s4d", LISTOPS, d_model=8, n_layers=1, d_state=4)
    status, out, err = export(capsys, str(target), "--out", str(tmp_path / "x.nir"))
    assert status == 2 and out == ""
    assert err.startswith("neurojoule export: error: ") and err.count("\n") == 1
    expected = {
        "missing": "no checkpoint file or run folder",
        "broken": "is not a neurojoule training checkpoint",
        "not exportable": "cannot export a SequenceClassifier to NIR",
    }[case]
    assert expected in err
    assert not (tmp_path / "x.nir").exists()
