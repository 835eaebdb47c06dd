from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koban.errors import Overloaded
from koban.model import EMPTY_SCOPE, Batch, LogRecord, Resource
from koban.pipeline.buffer import IngestBuffer

pytestmark = pytest.mark.timeout(30)


def batch(n: int, tag: str = "") -> Batch:
    r = Resource("svc", {})
    return Batch(logs=tuple(LogRecord(0, 0, "", "", 0, "", 0, f"{tag}{i}", {}, r, EMPTY_SCOPE) for i in range(n)))


def started(max_records: int = 100, first_lsn: int = 1) -> IngestBuffer:
    buf = IngestBuffer(max_records)
    buf.start_at(first_lsn)
    return buf


def test_a_full_buffer_answers_overloaded_with_retry_after() -> None:
    buf = started(10)
    buf.reserve(6)
    held = buf.reserve(4)
    with pytest.raises(Overloaded) as raised:
        buf.reserve(1)
    assert raised.value.status == 429 and raised.value.retry_after >= 1
    assert buf.rejected_total == 1
    assert buf.depth == 10

    buf.release(held)
    assert buf.depth == 6
    buf.reserve(4)


def test_a_full_buffer_refuses_before_anything_is_decoded() -> None:
    buf = started(10)
    buf.refuse_when_full()  # room: no error
    held = buf.reserve(10)
    with pytest.raises(Overloaded) as raised:
        buf.refuse_when_full()
    assert raised.value.status == 429 and raised.value.retry_after >= 1
    buf.release(held)
    buf.refuse_when_full()


def test_queued_records_count_until_taken() -> None:
    buf = started(10)
    res = buf.reserve(8)
    buf.put(res, 1, batch(8))
    assert buf.depth == 8
    with pytest.raises(Overloaded):
        buf.reserve(3)
    assert [lsn for lsn, _ in buf.take(100, 0)] == [1]
    assert buf.depth == 0
    buf.reserve(10)


def test_a_request_bigger_than_the_buffer_gets_in_only_when_it_is_empty() -> None:
    buf = started(10)
    small = buf.reserve(1)
    with pytest.raises(Overloaded):
        buf.reserve(50)
    buf.release(small)
    big = buf.reserve(50)
    assert buf.depth == 50
    with pytest.raises(Overloaded):
        buf.reserve(1)
    buf.put(big, 1, batch(50))
    assert buf.take(10, 0)[0][1].record_count == 50  # one item even over max_records


def test_take_hands_out_only_the_contiguous_prefix_of_lsns() -> None:
    buf = started()
    r1, r2, r3 = buf.reserve(1), buf.reserve(1), buf.reserve(1)
    buf.put(r3, 3, batch(1, "c"))
    buf.put(r2, 2, batch(1, "b"))
    assert buf.take(100, 0) == []  # lsn 1 is still on its way
    assert buf.head_gap() == 1
    buf.put(r1, 1, batch(1, "a"))
    assert buf.head_gap() is None
    assert [lsn for lsn, _ in buf.take(100, 0)] == [1, 2, 3]
    assert buf.next_lsn == 4


def test_take_stops_near_max_records_but_returns_at_least_one_item() -> None:
    buf = started(1000)
    for lsn in range(1, 6):
        buf.put(buf.reserve(4), lsn, batch(4))
    assert [lsn for lsn, _ in buf.take(9, 0)] == [1, 2]
    assert [lsn for lsn, _ in buf.take(1, 0)] == [3]
    assert [lsn for lsn, _ in buf.take(100, 0)] == [4, 5]


def test_take_waits_for_a_put_from_another_thread() -> None:
    buf = started()
    res = buf.reserve(1)
    waiting = threading.Event()

    def producer() -> None:
        waiting.wait(5)
        buf.put(res, 1, batch(1))

    t = threading.Thread(target=producer)
    t.start()
    waiting.set()
    assert [lsn for lsn, _ in buf.take(10, timeout_s=5)] == [1]
    t.join(5)


def test_take_times_out_empty_and_before_start() -> None:
    assert IngestBuffer(10).take(10, 0.01) == []
    assert started().take(10, 0.01) == []


def test_a_put_after_its_lsn_was_skipped_is_dropped_and_frees_its_room() -> None:
    buf = started(10)
    late = buf.reserve(3)
    buf.put(buf.reserve(1), 2, batch(1))
    buf.skip_through(1)  # the writer stored lsn 1 from the WAL
    assert [lsn for lsn, _ in buf.take(10, 0)] == [2]
    buf.put(late, 1, batch(3))
    assert buf.late_puts_dropped == 1
    assert buf.depth == 0
    assert buf.take(10, 0) == []


def test_a_reservation_is_settled_once() -> None:
    buf = started(10)
    res = buf.reserve(2)
    buf.put(res, 1, batch(2))
    buf.release(res)  # a no-op after put, so `finally: release` is safe
    assert buf.depth == 2
    with pytest.raises(ValueError):
        buf.put(res, 2, batch(2))


def test_wait_until_empty() -> None:
    buf = started(10)
    assert buf.wait_until_empty(0)
    buf.put(buf.reserve(1), 1, batch(1))
    assert not buf.wait_until_empty(0.01)
    buf.take(10, 0)
    assert buf.wait_until_empty(0)


@given(st.permutations(list(range(1, 30))), st.integers(1, 7))
def test_any_put_order_comes_out_in_lsn_order(order: list[int], take_size: int) -> None:
    buf = started(1000)
    reservations = {lsn: buf.reserve(1) for lsn in order}
    out: list[int] = []
    for lsn in order:
        buf.put(reservations[lsn], lsn, batch(1))
        out.extend(lsn for lsn, _ in buf.take(take_size, 0))
    while taken := buf.take(take_size, 0):
        out.extend(lsn for lsn, _ in taken)
    assert out == list(range(1, 30))
    assert buf.depth == 0
