"""neurojoule generate: text from a small language model trained here, streamed one token at a
time; the same seed gives the same text; speed and energy per token; bad arguments are one
line and exit status 2."""

import json
import shutil
from pathlib import Path

import pytest

from neurojoule.cli import main

FIXTURES = Path(__file__).parents[1] / "fixtures"
WORDS = ("the cat", "a dog", "the bird"), ("sees", "eats"), ("fish", "seeds")


def _write_wikitext(root: Path) -> Path:
    subjects, verbs, objects = WORDS
    lines = [f"{subjects[i % 3]} {verbs[i % 2]} {objects[(i // 2) % 2]} ." for i in range(60)]
    folder = root / "wikitext-103"
    folder.mkdir(parents=True)
    for split, part in (("train", lines), ("valid", lines[:8]), ("test", lines[8:16])):
        (folder / f"wiki.{split}.tokens").write_text("\n".join(part) + "\n")
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A spiking word-level LM trained for a few steps on a tiny WikiText-like corpus."""
    from neurojoule.train.config import load_config
    from neurojoule.train.language_model import train_lm

    folder = tmp_path_factory.mktemp("generate")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEUROJOULE_CACHE", str(folder / "cache"))
        root = _write_wikitext(folder / "data")
        config = load_config(
            "wikitext-103",
            [
                "task_options={seq_len: 16}",
                "model_options={d_model: 8, n_layers: 1, d_state: 4}",
                "optim.batch_size=4",
                "optim.max_steps=3",
                "limit_train_samples=12",
                "lif_mode=bptt",
                f"task_root={root}",
            ],
        )
        train_lm(config, folder / "run", progress=False)
        yield folder / "run"


def generate(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr); argparse's own errors exit through SystemExit."""
    try:
        status = main(["generate", *argv])
    except SystemExit as exit_info:
        status = exit_info.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_generate_prints_the_prompt_continued_and_its_cost(run, capsys):
    status, out, err = generate(capsys, str(run), "--prompt", "the cat", "--max-tokens", "12")
    assert status == 0
    assert out.startswith("the cat") and len(out.split()) > 2
    known = {word for words in WORDS for phrase in words for word in phrase.split()}
    assert set(out.split()) <= known | {".", "<unk>"} | {word + "." for word in known}
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("12 tokens in ") and "tokens/s" in summary
    assert "µJ per token" in summary and "45nm" in summary


def test_the_same_seed_gives_the_same_text(run, capsys):
    texts = {}
    for seed in ("0", "0", "1", "2", "3"):
        argv = [str(run), "--prompt", "a dog", "--max-tokens", "15", "--seed", seed]
        status, out, _ = generate(capsys, *argv, "--temperature", "2")
        assert status == 0
        texts.setdefault(seed, set()).add(out)
    assert len(texts["0"]) == 1
    assert len({text for outs in texts.values() for text in outs}) > 1
    greedy = set()
    for seed in ("0", "5"):
        argv = [str(run), "--prompt", "a dog", "--max-tokens", "8", "--top-k", "1", "--seed", seed]
        greedy.add(generate(capsys, *argv)[1])
    assert len(greedy) == 1  # top-k 1: greedy decoding, whatever the seed


def test_json_holds_the_text_tokens_speed_and_energy(run, capsys):
    argv = [str(run), "--prompt", "the bird zebra", "--max-tokens", "7", "--json", "--top-k", "3"]
    status, out, _ = generate(capsys, *argv)
    assert status == 0
    result = json.loads(out)
    assert {"text", "tokens", "tokens_per_s", "energy_per_token_uj"} <= set(result)
    assert result["tokens"] == 7 and isinstance(result["text"], str)
    assert result["tokens_per_s"] > 0 and result["energy_per_token_uj"] > 0
    assert result["prompt"] == "the bird <unk>"  # unknown words map to <unk>
    assert result["model"] == "spiking-ssm-lm" and 0 <= result["mean_spike_rate"] <= 1


BAD = {
    "zero temperature": (["--temperature", "0"], "--temperature"),
    "negative temperature": (["--temperature", "-1"], "--temperature"),
    "nan temperature": (["--temperature", "nan"], "--temperature"),
    "infinite temperature": (["--temperature", "inf"], "--temperature"),
    "top-k 0": (["--top-k", "0"], "--top-k"),
    "no tokens": (["--max-tokens", "0"], "--max-tokens"),
    "empty prompt": (["--prompt", ""], "prompt"),
    "blank prompt": (["--prompt", "  \t"], "prompt"),
    "energy table": (["--energy-table", "nope"], "energy table"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_arguments_are_one_line_and_status_2(case, run, capsys):
    extra, named = BAD[case]
    status, out, err = generate(capsys, str(run), "--prompt", "the cat", *extra)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("neurojoule generate: error:")
    assert named in err


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # a bidirectional spiking-ssm classifier on ListOps
        (FIXTURES / "pre-rename-run", "is not a language model"),
        (FIXTURES / "no-such-run", "no checkpoint file or run folder"),
    ],
)
def test_a_checkpoint_that_is_no_language_model_is_one_line(target, expected, capsys):
    status, out, err = generate(capsys, str(target), "--prompt", "the cat")
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and expected in err


@pytest.mark.skipif(shutil.which("bible") is None, reason="needs Debian's bible-kjv (`bible`)")
def test_generate_from_a_king_james_bible_model(tmp_path, capsys):
    out_dir = tmp_path / "kjv"
    argv = ["train", "spiking-ssm-lm", "--task", "kjv", "--config", "kjv-cpu", "--quiet"]
    tiny = [
        "--max-steps", "2", "--lif-mode", "bptt", "--out", str(out_dir),
        "--set", "model_options.d_model=16", "--set", "model_options.n_layers=1",
        "--set", "task_options.seq_len=32", "--set", "limit_eval_samples=8",
        "--set", "limit_train_samples=16",
    ]  # fmt: skip
    assert main(argv + tiny) == 0
    capsys.readouterr()
    prompt = ["--prompt", "In the beginning God created", "--max-tokens", "20", "--json"]
    first, again = (generate(capsys, str(out_dir), *prompt) for _ in range(2))
    assert first[0] == again[0] == 0
    result, repeated = json.loads(first[1]), json.loads(again[1])
    timed = ("tokens_per_s", "seconds")
    assert {k: v for k, v in result.items() if k not in timed} == {
        k: v for k, v in repeated.items() if k not in timed
    }
    assert result["prompt"] == "in the beginning god created"  # the task lower-cases
    assert result["tokens"] == 20 and result["energy_per_token_uj"] > 0
