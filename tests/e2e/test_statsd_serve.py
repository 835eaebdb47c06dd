"""StatsD through a real `koban serve`: the real `statsd` client, a flush window, the
points stored through the WAL like any other metric."""

from __future__ import annotations

import duckdb
import statsd



def _udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_statsd_metrics_sent_to_koban_serve_are_stored(make_server):
    port = _udp_port()
    server = make_server(statsd_port=port, statsd_flush_interval_s=0.5).start()
    client = statsd.StatsClient("127.0.0.1", port, prefix="shop")
    for _ in range(10):
        client.incr("orders", 2)
    client.gauge("queue.depth", 7)
    for ms in (10, 20, 30, 40):
        client.timing("checkout.latency", ms)

    def received() -> bool:
        for line in server.client().metrics_text().splitlines():
            if line.startswith("koban_records_received_total") and 'protocol="statsd"' in line:
                return float(line.rsplit(" ", 1)[1]) >= 3
        return False

    server.wait_for(received, what="a flushed StatsD window")
    assert server.stop() == 0
    with duckdb.connect(str(server.data_dir / "koban.duckdb"), read_only=True) as db:
        counters = db.execute(
            "SELECT sum(Value) FROM otel_metrics_sum WHERE MetricName = 'shop.orders'"
        ).fetchone()[0]
        gauge = db.execute(
            "SELECT Value FROM otel_metrics_gauge WHERE MetricName = 'shop.queue.depth'"
        ).fetchall()
        timer = db.execute(
            "SELECT sum(Count), sum(Sum), min(Min), max(Max) FROM otel_metrics_exponential_histogram "
            "WHERE MetricName = 'shop.checkout.latency'"
        ).fetchone()
    assert counters == 20.0
    assert gauge == [(7.0,)]
    assert timer == (4, 100.0, 10.0, 40.0)




def test_with_two_statsd_processes_every_counter_line_is_stored_once(make_server):
    import socket

    port = _udp_port()
    server = make_server(statsd_port=port, statsd_flush_interval_s=0.3, statsd_processes=2).start()
    clients, per_client = 30, 20
    for c in range(clients):  # one socket each: the kernel spreads them over both processes
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(per_client):
                s.sendto(b"two.procs:1|c|#env:test", ("127.0.0.1", port))

    def datagrams() -> bool:
        for line in server.client().metrics_text().splitlines():
            if line.startswith("koban_statsd_datagrams_received "):
                return float(line.split()[1]) >= clients * per_client
        return False

    server.wait_for(datagrams, what="every datagram read by one process or the other")
    assert server.stop() == 0
    with duckdb.connect(str(server.data_dir / "koban.duckdb"), read_only=True) as db:
        total = db.execute("SELECT sum(Value) FROM otel_metrics_sum WHERE MetricName = 'two.procs'").fetchone()[0]
    assert total == clients * per_client
