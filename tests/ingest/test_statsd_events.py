"""The WAL codec of DogStatsD events ("koban-events/jsonl"): what is encoded decodes again on replay."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koban import ingest
from koban.errors import DecodeError
from koban.ingest import events
from koban.model import Batch, Event

T0 = 1_767_225_600_000_000_000
DEPLOY = Event(T0, "Deploy ✓", "v1.2\nout", "success", "normal", "web-1", "dep", "ci", "checkout", {"team": "pay"})

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
_events = st.builds(
    Event, st.integers(0, 2**63 - 1), _text, _text, _text, _text, _text, _text, _text, _text,
    st.dictionaries(_text, _text, max_size=4),
)  # fmt: skip


def test_it_is_registered_so_the_wal_replays_events():
    assert ingest.decode(events.CODEC, events.encode([DEPLOY]), 0) == Batch(events=[DEPLOY])


@given(st.lists(_events, max_size=5))
def test_what_is_encoded_decodes_to_the_same_events(evs):
    assert list(events.decode(events.encode(evs), T0).events) == evs


def test_an_empty_payload_holds_no_events():
    assert events.decode(b"", T0).record_count == 0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff", "not UTF-8"),
        (b"{", "line 1 is not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"timestamp_ns": "1"}', "timestamp_ns must be an integer"),
        (b'{"timestamp_ns": -1}', "timestamp_ns must be an integer"),
        (b'{"timestamp_ns": 9223372036854775808}', "timestamp_ns must be an integer"),
        (b'{"timestamp_ns": true}', "timestamp_ns must be an integer"),
        (b'{"timestamp_ns": 1, "title": 5}', "title must be a string"),
        (b'{"timestamp_ns": 1, "tags": {"a": 1}}', "tags must be an object of strings"),
        (b'{"timestamp_ns": 1, "title": "\\ud800"}', "lone surrogate"),
        (b'{"timestamp_ns": 1}\n' + b"[" * 100_000, "line 2 is not JSON"),
    ],
)
def test_it_refuses_anything_but_the_exact_shape(payload, message):
    with pytest.raises(DecodeError, match=message):
        events.decode(payload, T0)


@given(st.binary(max_size=200))
def test_any_bytes_give_a_batch_or_a_decode_error(data):
    try:
        batch = events.decode(data, T0)
    except DecodeError:
        return
    assert all(isinstance(e, Event) for e in batch.events)
