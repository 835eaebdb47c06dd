"""The e2e server fixture itself: a port taken between picking it and koban binding it
(another process's outgoing connection can take it) makes koban exit with a message
naming it, and the fixture starts koban again on other ports instead of failing every
test of a module."""

from __future__ import annotations

import socket

import httpx

from e2e.conftest import KobanServer


def test_a_taken_port_is_named_by_koban_and_the_fixture_starts_on_other_ports(tmp_path):
    server = KobanServer(tmp_path / "data", tmp_path / "server.log")
    taken_port = server.grpc_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", taken_port))
        taken.listen()

        server.start()
        try:
            assert server.grpc_port != taken_port
            assert httpx.get(server.url + "/api/health").status_code == 200
            assert f"127.0.0.1:{taken_port}" in server.log() and "already in use" in server.log().lower()
        finally:
            server.stop()
