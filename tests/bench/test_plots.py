import pytest

from neurojoule.bench.plots import SERIES, plot_rows
from neurojoule.cli import main


def test_plot_is_a_png_and_skips_missing_values(tmp_path):
    rows = [
        {
            "L": 1024,
            "bptt_s": 0.3,
            "sltt_s": 0.2,
            "sdn_s": 0.001,
            "fastest_exact_s": 0.4,
            "spikingjelly_s": None,
        },
        {
            "L": 2048,
            "bptt_s": None,
            "sltt_s": None,
            "sdn_s": 0.002,
            "fastest_exact_s": 0.7,
            "spikingjelly_s": None,
        },
    ]
    path = plot_rows(rows, SERIES["sdn"], tmp_path / "sdn.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_empty_rows_are_an_error(tmp_path):
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_rows([], SERIES["memory"], tmp_path / "m.png", "test")


def test_bench_plot_option(tmp_path, capsys):
    png = tmp_path / "neuron.png"
    argv = ["bench", "neuron", "--lengths", "64", "--channels", "8", "--repeats", "1"]
    assert main([*argv, "--plot", str(png)]) == 0
    assert png.stat().st_size > 1000
