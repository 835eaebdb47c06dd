"""Long, coverage-guided fuzzing of one harness target with atheris (libFuzzer).
Not part of the test suite: run it by hand, for minutes or hours.

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python tests/fuzz/atheris_run.py otlp_proto_logs -max_total_time=600
    .venv/bin/python tests/fuzz/atheris_run.py --list

It starts from the target's corpus (tests/corpus/<target>/), and a crash is written
there as crash-<sha1> by libFuzzer, so test_corpus.py replays it from then on. Extra
arguments go to libFuzzer (-max_total_time, -jobs, -dict, ...). New interesting inputs
go to a scratch directory, not the corpus: only seeds and crashes are kept in git.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, as pytest sets it

import atheris  # noqa: E402  (optional: the `fuzz` extra)

with atheris.instrument_imports():
    import koban  # noqa: F401  (instrumented so coverage guides the fuzzer)
    from fuzz.targets import BY_NAME, CORPUS, check


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help", "--list"):
        print("targets:", " ".join(sorted(BY_NAME)))
        return
    target = BY_NAME[sys.argv[1]]
    seeds = CORPUS / target.name
    seeds.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=f"koban-fuzz-{target.name}-")

    def one_input(data: bytes) -> None:
        check(target, data)

    args = [sys.argv[0], *sys.argv[2:], f"-artifact_prefix={seeds}/", scratch, str(seeds)]
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
