"""Retention: how long each signal is kept, and the disk budget.

Each run deletes, per signal, what is older than its retention: the days an admin set
at runtime (kept in `<data_dir>/retention.json`, so they survive a restart), else the
`retention_<signal>_days` setting. Then, when `max_disk_bytes` is set and the store's
data takes more, it deletes the oldest data of every signal, an hour at a time, until
the estimate says it is under the budget.

What the budget is checked against: the sum over koban's tables of `TableUsage.live_bytes`
(store/base.py), the bytes each table takes scaled to its live rows. Deleting rows
lowers it at once, while the engine frees the space later or never (DuckDB frees a
block only when a whole row group goes, then reuses it; ClickHouse merges parts), so
retention never deletes twice for space that is only waiting to be reclaimed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from pathlib import Path
from typing import NamedTuple

from koban.clock import Clock
from koban.query.dialects import Dialect
from koban.query.storage import SIGNALS, bucket_counts, rows_per_bucket, signal_usage
from koban.query.timeparse import format_rfc3339_ns
from koban.settings import Settings
from koban.store.base import Store, TableUsage

log = logging.getLogger("koban.retention")

FILE_NAME = "retention.json"
DAY_NS = 86_400 * 10**9
HOUR_NS = 3_600 * 10**9
MAX_DAYS = 36_500.0  # a hundred years: longer is a typo, not a policy
_SCAN_TIMEOUT_S = 120.0  # the budget's scan reads every row's time; it may be slow on a big store


def default_days(settings: Settings) -> dict[str, float]:
    """The configured retention of each signal, in days."""
    return {
        "logs": settings.retention_logs_days,
        "spans": settings.retention_spans_days,
        "metrics": settings.retention_metrics_days,
    }


def check_days(signal: object, days: object) -> tuple[str, float]:
    """(signal, days) when `signal` is a known signal and `days` a positive number of at
    most MAX_DAYS; raises ValueError saying which is wrong otherwise."""
    if not isinstance(signal, str) or signal not in SIGNALS:
        raise ValueError(f"signal must be one of {', '.join(SIGNALS)}; got {signal!r}")
    if isinstance(days, bool) or not isinstance(days, (int, float)):
        raise ValueError(f"days must be a number; got {days!r}")
    if not math.isfinite(days) or days <= 0 or days > MAX_DAYS:
        raise ValueError(f"days must be more than 0 and at most {MAX_DAYS:g}; got {days!r}")
    return signal, float(days)


class RetentionOverrides:
    """Retention days set at runtime, per signal, in one small JSON file. A missing or
    unreadable file means no overrides (logged), never a server that cannot start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._days = self._load()

    def _load(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("ignoring retention overrides in %s: %s", self.path, exc)
            return {}
        out = {}
        for signal, days in (data.items() if isinstance(data, dict) else ()):
            try:
                out.update([check_days(signal, days)])
            except ValueError as exc:
                log.error("ignoring a retention override in %s: %s", self.path, exc)
        return out

    def get(self) -> dict[str, float]:
        """{signal: days} of the signals that have an override."""
        with self._lock:
            return dict(self._days)

    def set(self, signal: str, days: float | None) -> None:
        """Keep `signal` for `days` (None: back to the setting). Raises ValueError for a
        bad signal or days, OSError when the file cannot be written (nothing changes)."""
        with self._lock:
            updated = dict(self._days)
            if days is None:
                check_days(signal, 1.0)
                updated.pop(signal, None)
            else:
                updated.update([check_days(signal, days)])
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(updated, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, self.path)  # atomic: a crash leaves the old file or the new one
            self._days = updated


class BudgetStatus(NamedTuple):
    budget_bytes: int  # 0: no budget
    used_bytes: int  # what the budget is checked against (module docstring)

    @property
    def fraction(self) -> float | None:
        return self.used_bytes / self.budget_bytes if self.budget_bytes else None


def used_bytes(tables: dict[str, TableUsage]) -> int:
    """The bytes the disk budget counts: live bytes of the tables that hold signals."""
    return sum(s["live_bytes"] for s in signal_usage(tables).values())


def budget_cutoff(buckets: list[tuple[str, int, int]], bytes_per_row: dict[str, float], excess: int,
                  step_ns: int = HOUR_NS) -> int | None:  # fmt: skip
    """The time before which deleting everything frees at least `excess` bytes: the
    oldest buckets of every signal first, whole buckets of `step_ns`. `buckets` is
    (signal, bucket_ns, rows); None when there is nothing to delete. When all of it
    is not enough, the end of the newest bucket (everything goes)."""
    freed = 0.0
    by_time: dict[int, float] = {}
    for signal, bucket, rows in buckets:
        by_time[bucket] = by_time.get(bucket, 0.0) + rows * bytes_per_row.get(signal, 0.0)
    if not by_time:
        return None
    for bucket in sorted(by_time):
        freed += by_time[bucket]
        if freed >= excess:
            return bucket + step_ns
    return max(by_time) + step_ns


class Retention:
    """Runs retention over a store. `run()` is called from the server's retention loop
    (and at start); the API reads `days()` and `budget()` and sets overrides."""

    def __init__(self, store: Store, dialect: Dialect, settings: Settings, clock: Clock,
                 overrides: RetentionOverrides, on_deleted=None) -> None:  # fmt: skip
        """`on_deleted(signal, rows)` is told of every deletion (the self-metrics counter)."""
        self.store = store
        self.dialect = dialect
        self.settings = settings
        self.clock = clock
        self.overrides = overrides
        self._on_deleted = on_deleted or (lambda signal, rows: None)
        self._run_lock = threading.Lock()  # a run from the loop and one from the API never overlap

    @classmethod
    def for_data_dir(cls, store: Store, dialect: Dialect, settings: Settings, clock: Clock,
                     on_deleted=None) -> Retention:  # fmt: skip
        return cls(store, dialect, settings, clock, RetentionOverrides(Path(settings.data_dir) / FILE_NAME), on_deleted)

    def days(self) -> dict[str, dict[str, float | None]]:
        """{signal: {"days": effective, "default": setting, "override": set or None}}."""
        defaults, overrides = default_days(self.settings), self.overrides.get()
        return {
            s: {"days": overrides.get(s, defaults[s]), "default": defaults[s], "override": overrides.get(s)}
            for s in SIGNALS
        }

    def budget(self, tables: dict[str, TableUsage]) -> BudgetStatus:
        return BudgetStatus(self.settings.max_disk_bytes, used_bytes(tables))

    def run(self) -> None:
        """Delete what each signal's retention no longer keeps, then what the disk budget
        does not. Raises StoreError when the store fails (the loop logs it and retries)."""
        with self._run_lock:
            now = self.clock.now_ns()
            for signal, entry in self.days().items():
                days = entry["days"]
                removed = self.store.delete_older_than(signal, now - int(days * DAY_NS))
                self._deleted(signal, removed)
                if removed > 0:
                    log.info("retention removed %d %s rows older than %s days", removed, signal, days)
            if self.settings.max_disk_bytes > 0:
                self._enforce_budget(self.settings.max_disk_bytes)

    def _deleted(self, signal: str, removed: int) -> None:
        if removed > 0:
            self._on_deleted(signal, removed)

    def _enforce_budget(self, budget: int) -> None:
        # One deletion per run, sized from the measured excess: re-measuring at once
        # would see bytes the engine has not reclaimed yet (a ClickHouse part with a
        # delete mask is briefly bigger) and delete again for nothing.
        tables = self.store.usage()
        used = used_bytes(tables)
        if used <= budget:
            return
        usage = signal_usage(tables)
        per_row = {s: u["live_bytes"] / u["rows"] for s, u in usage.items() if u["rows"]}
        stmt = rows_per_bucket(self.dialect, HOUR_NS)
        result = self.store.query(stmt.sql, stmt.params, timeout_s=_SCAN_TIMEOUT_S, max_rows=10_000_000)
        cutoff = budget_cutoff(bucket_counts(result), per_row, used - budget)
        if cutoff is None:
            log.warning("disk budget: the store's data takes %d bytes, over max_disk_bytes %d, "
                        "but there is no row left to delete", used, budget)
            return
        removed = {s: self.store.delete_older_than(s, cutoff) for s in SIGNALS}
        for signal, n in removed.items():
            self._deleted(signal, n)
        log.warning(
            "disk budget: the store's data took %d bytes, over max_disk_bytes %d; removed the oldest "
            "data, everything before %s (rows removed: %s)",
            used, budget, format_rfc3339_ns(cutoff),
            ", ".join(f"{s} {n if n >= 0 else 'unknown'}" for s, n in removed.items()),
        )
