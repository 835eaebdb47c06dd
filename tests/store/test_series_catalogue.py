"""The series catalogue (store/series_catalogue.py) gives exactly the rows a fresh build
gives, whatever mix of known, new and cleaned series a request brings."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from koban.store.columns import _series_rows
from koban.store.series_catalogue import SeriesCatalogue

def ids(*values: int) -> np.ndarray:
    return np.array(values, np.uint64)


_request = st.lists(st.tuples(st.integers(0, 11), st.booleans()), min_size=1, max_size=25)


@given(st.lists(_request, min_size=1, max_size=12), st.integers(1, 40))
@settings(max_examples=200, deadline=None)
def test_each_request_gets_the_rows_a_fresh_build_gives(requests, max_rows):
    # twelve series; a request names some (maybe twice) and may bring a series with
    # attributes of other content under another id, as the ingest policy does when it masks
    labels = {n: ({"instance": f"host-{n}", "path": f"/{n}"}, n * 1_000_003) for n in range(12)}
    catalogue = SeriesCatalogue(_series_rows, max_rows=max_rows)
    for version, request in enumerate(requests):
        for n, cleaned in request:
            if cleaned:
                labels[n] = ({"instance": f"host-{n}", "path": f"[REDACTED {version}]"}, n * 1_000_003 + version + 1)
        attributes = [labels[n][0] for n, _ in request]
        series_ids = ids(*(labels[n][1] for n, _ in request))

        rows = catalogue.rows(attributes, series_ids)

        assert rows.to_pylist() == _series_rows(attributes, series_ids).to_pylist()


def test_a_known_series_is_not_built_again():
    built = []

    def build(attributes, ids):
        built.extend(ids.tolist())
        return _series_rows(attributes, ids)

    catalogue = SeriesCatalogue(build)
    a, b = {"k": "a"}, {"k": "b"}
    catalogue.rows([a, b], ids(1, 2))
    rows = catalogue.rows([b, a, b], ids(2, 1, 2))

    assert built == [1, 2]  # series a and b, once each
    assert rows.column("SeriesId").to_pylist() == [2, 1, 2]
    assert rows.column("Attributes").to_pylist() == [[("k", "b")], [("k", "a")], [("k", "b")]]


def test_equal_attributes_under_two_series_ids_keep_each_id():
    shared = {"k": "v"}
    catalogue = SeriesCatalogue(_series_rows)
    catalogue.rows([shared], ids(1))

    rows = catalogue.rows([shared, shared], ids(1, 2))

    assert rows.column("SeriesId").to_pylist() == [1, 2]


def test_rows_named_in_runs_are_the_rows_named_one_by_one():
    catalogue = SeriesCatalogue(_series_rows)
    attributes = [{"n": str(n)} for n in range(40)]
    catalogue.rows(attributes, ids(*range(40)))
    for chosen in ([*range(10, 30)], [*range(30, 40), *range(0, 5)], [3, 1, 2, 9, 8, 7], [*range(40)][::-1]):
        named = [attributes[n] for n in chosen]

        rows = catalogue.rows(named, ids(*chosen))

        assert rows.to_pylist() == _series_rows(named, ids(*chosen)).to_pylist()
