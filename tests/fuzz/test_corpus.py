"""The regression corpus: every crash the fuzzers ever found (tests/corpus/<target>/
crash-*) and the seeds, replayed through their target on every run."""

from __future__ import annotations

import pytest

from fuzz.targets import CORPUS, TARGETS, Target, check
from koban.ingest import CODECS

CASES = [(t, path) for t in TARGETS for path in t.corpus() if not path.name.startswith("README")]


@pytest.mark.parametrize(("target", "path"), CASES, ids=[f"{t.name}/{p.name}" for t, p in CASES])
def test_corpus_input_gets_a_result_or_the_targets_own_error(target: Target, path):
    check(target, path.read_bytes())


def test_seeds_are_valid_inputs():
    # a seed that is refused would make the mutation fuzzing start from garbage
    for target in TARGETS:
        for path in target.corpus():
            if path.name.startswith("seed-"):
                assert check(target, path.read_bytes()) is not None, f"{target.name}/{path.name} is refused"


def test_harness_covers_every_codec_and_every_target_has_seeds():
    names = {t.name for t in TARGETS}
    for codec in CODECS:
        assert codec.replace("/", "_").replace("-", "_") in names, f"codec {codec} is not fuzzed"
    for target in TARGETS:
        assert target.seeds(), f"tests/corpus/{target.name}/ has no seed"


def test_corpus_folders_all_belong_to_a_target():
    known = {t.name for t in TARGETS} | {"prom_text", "metric_query"}  # those two join when they land
    assert {p.name for p in CORPUS.iterdir() if p.is_dir()} <= known
