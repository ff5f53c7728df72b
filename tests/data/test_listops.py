import random
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch

from neurojoule.data import listops, listops_reader
from neurojoule.data.listops import (
    ListOpsSpec,
    generate_listops,
    listops_files,
    listops_source,
    listops_value,
    write_listops,
)
from neurojoule.data.listops_reader import ListOpsDataset, listops_datasets, read_listops_tsv
from neurojoule.data.tokens import pad_collate

OPERATORS = {"[MIN", "[MAX", "[MED", "[SM"}
SMALL = ListOpsSpec(n_train=120, n_val=30, n_test=30, min_length=20, max_length=120, seed=3)


def reference_value(tokens):
    """Recursive-descent evaluator written from the LRA description, independent of the module."""

    def node(position):
        token = tokens[position]
        if token.isdigit():
            return int(token), position + 1
        assert token in OPERATORS, token
        args, position = [], position + 1
        while tokens[position] != "]":
            value, position = node(position)
            args.append(value)
        result = {
            "[MIN": lambda: min(args),
            "[MAX": lambda: max(args),
            "[MED": lambda: int(np.median(args)),
            "[SM": lambda: sum(args) % 10,
        }[token]()
        return result, position + 1

    value, end = node(0)
    assert end == len(tokens)
    return value


def nesting_and_arity(tokens):
    """(deepest operator nesting, argument counts of every operator)."""
    deepest, open_args, arities = 0, [], []
    for token in tokens:
        if open_args and token != "]":
            open_args[-1] += 1
        if token in OPERATORS:
            open_args.append(0)
            deepest = max(deepest, len(open_args))
        elif token == "]":
            arities.append(open_args.pop())
    return deepest, arities


HAND_COMPUTED = [
    ("7", 7),
    ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),  # MIN(4, 7) = 4, MAX(2, 9, 4, 0) = 9
    ("[MED 3 1 4 1 5 ]", 3),  # sorted 1 1 3 4 5
    ("[MED 1 2 3 4 ]", 2),  # median 2.5, int() -> 2
    ("[SM 8 9 [MAX 3 5 ] ]", 2),  # 8 + 9 + 5 = 22
    ("[MIN [SM 9 9 ] [MED 7 8 ] 9 ]", 7),  # SM 18 -> 8, MED 7.5 -> 7, MIN(8, 7, 9)
    ("( ( ( [MAX 2 ) 9 ) ] )", 9),  # the LRA file form
]


@pytest.mark.parametrize(("expression", "value"), HAND_COMPUTED)
def test_evaluators_agree_with_hand_computed_values(expression, value):
    tokens = expression.split()
    assert listops_value(tokens) == value
    assert reference_value([t for t in tokens if t not in "()"]) == value


@pytest.mark.parametrize("expression", ["[MAX 2", "[MAX ]", "[FOO 1 ]", "1 2", "]"])
def test_malformed_expressions_raise(expression):
    with pytest.raises(ValueError):
        listops_value(expression.split())


def test_source_wraps_every_pair_in_parentheses():
    # LRA nests (((op, a1), a2), ']') and prints every pair in parentheses
    tokens = ["[SM", "[MIN", "1", "2", "]", "3", "]"]
    expected = "( ( ( [SM ( ( ( [MIN 1 ) 2 ) ] ) ) 3 ) ] )"
    assert listops_source(tokens) == expected
    assert listops_source(["4"]) == "4"


def test_generated_examples_follow_the_specification():
    splits = generate_listops(SMALL)
    assert {split: len(examples) for split, examples in splits.items()} == SMALL.split_sizes()
    examples = [example for examples in splits.values() for example in examples]
    seen_tokens = set()
    for tokens, label in examples:
        assert SMALL.min_length < len(tokens) < SMALL.max_length
        assert label == reference_value(tokens)
        deepest, arities = nesting_and_arity(tokens)
        assert deepest <= SMALL.max_depth - 1  # the root is depth 1; depth 10 is always a digit
        assert all(2 <= arity <= SMALL.max_args for arity in arities)
        seen_tokens.update(tokens)
    assert seen_tokens == OPERATORS | {"]"} | {str(d) for d in range(10)}
    assert len({" ".join(tokens) for tokens, _ in examples}) == len(examples)


def test_depth_and_argument_limits_are_respected():
    spec = ListOpsSpec(60, 0, 0, min_length=8, max_length=40, max_depth=3, max_args=4)
    nestings = []
    for tokens, label in generate_listops(spec)["train"]:
        deepest, arities = nesting_and_arity(tokens)
        nestings.append(deepest)
        assert max(arities) <= 4
        assert label == reference_value(tokens)
    assert max(nestings) == 2


def test_draws_follow_the_lra_probabilities():
    spec = ListOpsSpec(min_length=0, max_length=10**9)
    draw = random.Random(5).random
    trees = [listops._draw_tree(spec, draw)[0] for _ in range(12_000)]
    digit_roots = sum(len(tokens) == 1 for tokens in trees)
    assert abs(digit_roots / len(trees) - 0.75) < 0.02
    operator_roots = [tokens for tokens in trees if len(tokens) > 1]
    root_arity = Counter(nesting_and_arity(tokens)[1][-1] for tokens in operator_roots)
    assert sorted(root_arity) == list(range(2, 11))
    expected = len(operator_roots) / 9
    assert all(abs(count - expected) < 0.3 * expected for count in root_arity.values())
    root_operator = Counter(tokens[0] for tokens in operator_roots)
    quarter = len(operator_roots) / 4
    assert all(abs(count - quarter) < 0.15 * quarter for count in root_operator.values())


def test_duplicates_are_dropped_until_the_window_is_exhausted(monkeypatch):
    # depth 2, two arguments, length 4: exactly 4 operators x 100 digit pairs = 400 trees
    spec = ListOpsSpec(400, 0, 0, min_length=3, max_length=5, max_depth=2, max_args=2)
    sources = {" ".join(tokens) for tokens, _ in generate_listops(spec)["train"]}
    assert len(sources) == 400
    monkeypatch.setattr(listops, "_MAX_FRUITLESS_DRAWS", 5_000)
    with pytest.raises(ValueError, match="too few distinct trees"):
        generate_listops(replace(spec, n_train=401))


def test_same_seed_same_data_other_seed_other_data():
    first, again = generate_listops(SMALL), generate_listops(SMALL)
    other = generate_listops(replace(SMALL, seed=4))
    assert first == again
    assert first["train"] != other["train"]


def test_files_round_trip_in_the_lra_format(tmp_path):
    paths = write_listops(tmp_path, SMALL)
    assert sorted(p.name for p in paths.values()) == [
        "basic_test.tsv",
        "basic_train.tsv",
        "basic_val.tsv",
    ]
    lines = paths["val"].read_text().splitlines()
    assert lines[0] == "Source\tTarget"
    assert len(lines) == 1 + SMALL.n_val
    assert lines[1].startswith("( ")
    generated = generate_listops(SMALL)
    for split, path in paths.items():
        assert read_listops_tsv(path) == generated[split]


def test_files_are_cached_under_neurojoule_cache_and_reused(cache, monkeypatch):
    paths = listops_files(SMALL)
    assert all(path.is_relative_to(cache) for path in paths.values())
    assert (paths["train"].parent / "spec.json").exists()
    contents = {split: path.read_bytes() for split, path in paths.items()}

    def must_not_generate(*args, **kwargs):
        raise AssertionError("regenerated although the cache was complete")

    monkeypatch.setattr(listops, "write_listops", must_not_generate)
    assert listops_files(SMALL) == paths
    assert {split: path.read_bytes() for split, path in paths.items()} == contents
    with pytest.raises(AssertionError, match="regenerated"):
        listops_files(replace(SMALL, seed=9))


def test_incomplete_cache_is_regenerated(cache):
    paths = listops_files(SMALL)
    (paths["train"].parent / "spec.json").unlink()
    paths["test"].unlink()
    assert listops_files(SMALL) == paths
    assert read_listops_tsv(paths["test"]) == generate_listops(SMALL)["test"]


def test_dataset_gives_padded_token_ids_and_labels(tmp_path):
    paths = write_listops(tmp_path, SMALL)
    examples = read_listops_tsv(paths["train"])
    dataset = ListOpsDataset(paths["train"], max_length=100)
    assert len(dataset) == SMALL.n_train
    vocab = listops.VOCAB
    for index in (0, 7, len(dataset) - 1):
        ids, label = dataset[index]
        tokens, expected_label = examples[index]
        assert ids.dtype == torch.long and ids.shape == (100,)
        expected = [vocab[t] for t in tokens][:100]
        assert ids[: len(expected)].tolist() == expected
        assert (ids[len(expected) :] == 0).all()
        assert label == expected_label
    assert sorted(vocab.values()) == list(range(1, listops.VOCAB_SIZE))


def test_variable_length_dataset_batches_with_pad_collate(tmp_path):
    paths = write_listops(tmp_path, SMALL)
    dataset = ListOpsDataset(paths["val"])
    batch = [dataset[i] for i in range(4)]
    inputs, labels = pad_collate(batch)
    longest = max(len(ids) for ids, _ in batch)
    assert inputs.shape == (4, longest)
    assert labels.tolist() == [label for _, label in batch]
    assert [int((row != 0).sum()) for row in inputs] == [len(ids) for ids, _ in batch]


def test_vectorised_reader_matches_the_line_parser(tmp_path):
    paths = write_listops(tmp_path, SMALL)
    crlf = tmp_path / "crlf.tsv"
    crlf.write_bytes(paths["train"].read_bytes().replace(b"\n", b"\r\n"))
    for path in (paths["train"], crlf):
        examples = read_listops_tsv(path)
        body = path.read_bytes().partition(b"\n")[2]
        ids, lengths, labels = listops_reader._encode_fast(body)  # None would mean: not taken
        assert lengths.tolist() == [len(tokens) for tokens, _ in examples]
        assert ids.tolist() == [listops.VOCAB[t] for tokens, _ in examples for t in tokens]
        assert labels.tolist() == [label for _, label in examples]


@pytest.mark.parametrize(
    ("corruption", "message"),
    [
        ((b"[MAX", b"[MIX"), "unknown tokens \\['\\[MIX'\\]"),
        ((b"[MED", b"[M ED"), "unknown tokens"),
        ((b"] )", b"]] )"), "unknown tokens"),
        ((b"[SM", b"[SM[SM"), "unknown tokens"),
        ((b"\t", b"\t\t"), "expected 'source<TAB>label'"),
    ],
)
def test_corrupt_rows_are_caught_even_when_read_vectorised(tmp_path, corruption, message):
    path = write_listops(tmp_path, SMALL)["val"]
    head, body = path.read_bytes().split(b"\n", 1)
    rows = body.split(b"\n")
    rows[7] = rows[7].replace(*corruption)
    assert rows[7] != body.split(b"\n")[7]
    path.write_bytes(head + b"\n" + b"\n".join(rows))
    with pytest.raises(ValueError, match=f":9: {message}"):
        ListOpsDataset(path)


def test_reads_published_release_files_with_crlf(tmp_path):
    # the LRA release was written by csv.writer: CRLF line ends
    folder = tmp_path / "listops-1000"
    folder.mkdir()
    rows = ["Source\tTarget", "( ( ( [MAX 2 ) 9 ) ] )\t9", "( ( ( [SM 8 ) 9 ) ] )\t7"]
    for name in ("basic_train.tsv", "basic_val.tsv", "basic_test.tsv"):
        (folder / name).write_bytes(("\r\n".join(rows) + "\r\n").encode())
    train, val, test = listops_datasets(root=tmp_path, max_length=8)
    ids, label = train[1]
    vocab = listops.VOCAB
    assert ids.tolist() == [vocab["[SM"], vocab["8"], vocab["9"], vocab["]"], 0, 0, 0, 0]
    assert label == 7 and len(val) == len(test) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("Input\tOutput\n[MAX 2 ]\t2\n", "header"),
        ("Source\tTarget\n[MAX 2 ]\t12\n", ":2: expected 'source<TAB>label'"),
        ("Source\tTarget\n[MAX 2 ]\n", ":2: expected"),
        ("Source\tTarget\n[MAX 2 ]\t2\n[MAX x ]\t1\n", ":3: unknown tokens \\['x'\\]"),
        ("Source\tTarget\n[MAX 2 ]\t2\n[MAX a ]\t1\n", ":3: unknown tokens \\['a'\\]"),
        ("Source\tTarget\n", "rows of 'source<TAB>label' after the header, got none"),
        ("Source\tTarget", "after the header, got none"),
        ("Source\tTarget\n[MAX 2 3\t2\n", ":2: .*complete ListOps expression, got 1 operators"),
        ("Source\tTarget\n[MAX ]\t2\n", ":2: .*an operator without arguments"),
        ("Source\tTarget\n3 4\t2\n", ":2: .*got more after the expression ends"),
        ("Source\tTarget\n\t2\n", ":2: .*got no tokens"),
        ("Source\tTarget\n( ( [SM 2 ) 3 ]\t5\n", ":2: .*1 '\\(' left open"),
        ("Source\tTarget\n) ( [SM 2 3 ]\t5\n", ":2: .*a '\\)' with no '\\(' open"),
    ],
)
def test_malformed_files_raise_value_error_naming_the_line(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        ListOpsDataset(path)


@pytest.mark.parametrize(
    "row",
    [
        b"[MAX 10  3 ]\t3",  # "10" is two ids to a byte filter; a double space evens the count
        b"[MI 10 N 3 ]\t3",
        b"[MAX 3 ]\t 3",  # a space before the label, which fields[1] keeps
        b"[MAX 3 ]\t3\r\r",  # one CR before LF ends a row; the other is part of the label
        b"[SM 3 4 ]\t\t3",
    ],
)
def test_the_vectorised_path_vouches_for_nothing_the_line_parser_refuses(tmp_path, row):
    path = tmp_path / "tricky.tsv"
    path.write_bytes(b"Source\tTarget\n" + row + b"\n")
    assert listops_reader._encode_fast(row + b"\n") is None
    with pytest.raises(ValueError, match=":2: "):
        ListOpsDataset(path)


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "bytes.tsv"
    path.write_bytes(b"Source\tTarget\n[MAX 2 ]\t2\n[MAX 1 \xff ]\t3\n")
    with pytest.raises(
        ValueError, match=r"bytes.tsv:3: expected UTF-8 text, got the bytes b'\\xff'"
    ):
        ListOpsDataset(path)


def test_missing_release_files_say_where_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="basic_train.tsv.*long-range-arena"):
        listops_datasets(root=tmp_path)


@pytest.mark.parametrize(
    "fields",
    [
        {"min_length": 10, "max_length": 11},
        {"n_train": -1},
        {"max_args": 1},
        {"max_depth": 2, "max_args": 3, "min_length": 5},  # longest tree: 5 tokens
        {"n_train": "many"},
        {"seed": -1},
        {"max_args": 2.0},
        {"max_depth": True},
    ],
)
def test_impossible_specs_are_rejected(fields):
    with pytest.raises(ValueError):
        ListOpsSpec(**fields)


def test_a_huge_depth_bound_is_checked_without_computing_the_longest_tree():
    # the longest tree at depth 10**6 has ~10**6 digits; the check stops once it is long enough
    assert ListOpsSpec(max_depth=10**6, min_length=10, max_length=100).max_depth == 10**6
