"""The short fuzz run (the long one is python -m benchmarks.fuzz): every loader of user
files answers generated bad inputs with a result or its documented error, nothing else."""

import logging

import pytest

from benchmarks.fuzz import LOADERS, Harness, fuzz, mutate

EXAMPLES = 120  # per loader: a few seconds each


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    return Harness(str(tmp_path_factory.mktemp("fuzz")))


@pytest.mark.parametrize("loader", LOADERS)
def test_loader_gives_a_result_or_its_documented_error(harness, loader):
    logging.disable(logging.WARNING)
    try:
        tally = fuzz(loader, EXAMPLES, harness, seed=1)
    finally:
        logging.disable(logging.NOTSET)
    assert tally.ok, "\n".join(tally.failures)
    assert tally.tried >= EXAMPLES and sum(tally.errors.values()) > EXAMPLES // 4  # mostly bad inputs


def test_the_fuzzer_reports_an_undocumented_error(harness):
    def loader_with_a_bug(case):
        name, edits = case
        if len(edits) > 1:
            raise KeyError("a traceback a user would see")

    tally = fuzz("image", 50, harness, call=loader_with_a_bug)
    assert not tally.ok and "KeyError" in tally.failures[0]


def test_mutations():
    data = bytes(range(10))
    assert mutate(data, [("truncate", 0.5, 0)]) == data[:5]
    assert mutate(data, [("flip", 2, 0)])[2] == 3
    assert mutate(data, [("zero", 1, 3)]) == b"\x00\x00\x00\x00\x04" + data[5:]
    assert mutate(data, [("insert", 0, b"ab")]) == b"ab" + data
    assert mutate(b"", [("flip", 0.3, 1), ("zero", 0, 4)]) == b""
