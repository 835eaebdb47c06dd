"""Micro-benchmark of the ingest policy (ingest/guard.py: secret scrubbing and attribute
limits) on the log hot path, in-process: one 1,000-record OTLP/protobuf request of
benchmarks/decode.py's shape, decoded alone and decoded then guarded with the default
rules, the default rules plus one user rule, and the limits alone.

    .venv/bin/python benchmarks/scrub.py [--repeat 20] [--profile]

Times are the best of --repeat runs, in CPU time of the running thread; the extra cost
per record is (decode + guard) - decode, divided by the records.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from decode import RECORDS, best_of, build_bodies  # noqa: E402

from koban.ingest.guard import IngestPolicy, apply_policy  # noqa: E402
from koban.ingest.otlp_proto import decode_logs  # noqa: E402
from koban.ingest.scrub import DEFAULT_RULES  # noqa: E402

USER_RULE = ("internal_host", r"\b[a-z0-9-]+\.corp\.example\.com\b", "[HOST]", (), "")

POLICIES = {
    "default rules": IngestPolicy(DEFAULT_RULES),
    "default rules + 1 user rule": IngestPolicy(DEFAULT_RULES + (USER_RULE,)),
    "default rules + limits (128 attrs, 4096 chars)": IngestPolicy(DEFAULT_RULES, 128, 4096),
    "limits only": IngestPolicy((), 128, 4096),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)

    body = build_bodies(1)[0]
    received = time.time_ns()
    batch = decode_logs(body, received)
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(lambda: [apply_policy(POLICIES["default rules"], batch) for _ in range(10)])
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        return
    decode_s = best_of(args.repeat, lambda: decode_logs(body, received))
    print(f"decode_logs, {RECORDS} records: {decode_s * 1e3:7.2f} ms  ({decode_s / RECORDS * 1e6:.2f} us/record)")
    for name, policy in POLICIES.items():
        apply_policy(policy, batch)  # compile the rules outside the timing
        guard_s = best_of(args.repeat, lambda: apply_policy(policy, batch))
        print(f"  + {name:48s} {guard_s * 1e3:7.2f} ms  (+{guard_s / RECORDS * 1e6:.2f} us/record, "
              f"+{guard_s / decode_s * 100:.0f}%)")


if __name__ == "__main__":
    main()
