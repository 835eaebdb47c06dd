"""IdMap (koban/sorted_ids.py) answers as a dict of id -> value would, whatever the
order of ids, repeated ids and removals."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from koban.sorted_ids import IdMap

_ids = st.lists(st.integers(0, 2**64 - 1) | st.integers(0, 9), max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["update", "discard", "clear"]), _ids), max_size=12), _ids)
def test_an_id_map_answers_as_a_dict(steps, probes):
    mapped, model = IdMap(np.int64), {}
    for step, (op, ids) in enumerate(steps):
        array = np.array(ids, np.uint64)
        if op == "update":
            values = np.arange(len(ids), dtype=np.int64) + 100 * step
            mapped.update(array, values)
            model.update(zip(ids, values.tolist()))
        elif op == "discard":
            mapped.discard(array)
            for i in ids:
                model.pop(i, None)
        else:
            mapped.clear()
            model.clear()
        assert mapped.ids.tolist() == sorted(model) and len(mapped) == len(model)
        assert dict(zip(mapped.ids.tolist(), mapped.values.tolist())) == model

    at, found = mapped.find(np.array(probes, np.uint64))
    assert found.tolist() == [p in model for p in probes]
    assert mapped.values[at[found]].tolist() == [model[p] for p in probes if p in model]
