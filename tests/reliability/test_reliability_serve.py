"""The pose service under slow and vanishing clients, and `grapepose serve` on a busy port (issue 22).

Before: 64 connections from 4 addresses that sent headers and half a body held every slot (503 for
everyone else) for as long as they stayed; each client gone mid-upload logged "Exception in ASGI
application" with a traceback; a busy port printed the URL, then uvicorn's error and shutdown lines.
A real uvicorn server in a thread on 127.0.0.1 (and the loopback aliases 127.0.0.2, 127.0.0.3 as
other client addresses); the slow clients are a few sockets, answered within seconds.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

uvicorn = pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")

from grapepose.api import PoseEstimator  # noqa: E402
from grapepose.cli.main import main  # noqa: E402
from grapepose.serve import ServeSettings, create_app  # noqa: E402


@pytest.fixture(scope="module")
def estimator(tiny_checkpoint: Path) -> PoseEstimator:
    return PoseEstimator.from_pretrained(tiny_checkpoint, device="cpu", batch_size=4)


@contextlib.contextmanager
def _server(app: Any) -> Iterator[int]:
    """`app` served by uvicorn in a thread on 127.0.0.1; yields the port once it accepts connections."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="info", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait(lambda: server.started or not thread.is_alive(), 60)
        assert server.started, "the server did not start"
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def _wait(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.02)


def _health(port: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/healthz")
    return json.loads(conn.getresponse().read())


def _slow_upload(port: int, source: str, total: int = 4000, sent: int = 2000) -> socket.socket:
    """Headers and half a body of a POST /v1/poses from address `source`, then silence."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    head = f"POST /v1/poses HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {total}\r\n\r\n"
    s.sendall(head.encode() + b"\xff" * sent)
    return s


def _answer(s: socket.socket) -> tuple[int, dict[str, Any]]:
    r = http.client.HTTPResponse(s)
    r.begin()
    return r.status, json.loads(r.read())


def test_slow_uploads_hold_their_own_clients_share_only(estimator, shared_data):
    settings = ServeSettings(max_queue=2, max_batch_images=2, max_client_connections=2, body_timeout=600)
    with _server(create_app(estimator, settings, "tiny")) as port:
        slow = [_slow_upload(port, a) for a in ("127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3")]
        _wait(lambda: _health(port)["uploading"] == 4)  # all four are in: more than the 2 slots in flight
        extra = _slow_upload(port, "127.0.0.2")  # a third from the same address: refused before its body
        assert _answer(extra) == (429, {"error": "too many open requests from this client (limit 2, "
                                                 "--max-client-connections); wait for answers before sending more"})
        extra.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # everyone else is served meanwhile
        conn.request("POST", "/v1/poses", (shared_data / "demo" / "crowd_01.jpg").read_bytes(),
                     {"Content-Type": "image/jpeg"})  # fmt: skip
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["num_people"] > 0
        for s in slow:
            s.close()
        _wait(lambda: _health(port)["uploading"] == 0)  # their shares are free again


def test_a_body_that_does_not_arrive_is_answered_408_and_closed(estimator, shared_data):
    with _server(create_app(estimator, ServeSettings(body_timeout=1), "tiny")) as port:
        slow = _slow_upload(port, "127.0.0.1")
        assert _answer(slow) == (408, {"error": "request body not received within 1 s (--body-timeout)"})
        assert slow.recv(1) == b""  # the server closed the connection
        slow.close()
        assert _health(port)["uploading"] == 0


def test_client_gone_mid_upload_is_one_info_line(estimator, caplog):
    caplog.set_level(logging.INFO)
    with _server(create_app(estimator, ServeSettings(), "tiny")) as port:
        s = _slow_upload(port, "127.0.0.1")
        peer = "127.0.0.1:%d" % s.getsockname()[1]
        _wait(lambda: _health(port)["uploading"] == 1)
        s.close()
        _wait(lambda: _health(port)["uploading"] == 0)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if "disconnect" in r.getMessage().lower()]
    assert lines == [("INFO", f"{peer} disconnected during its upload to POST /v1/poses; request dropped")]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not any(r.exc_info for r in caplog.records)


def test_serve_on_a_busy_port_is_one_line_before_the_model_loads(capsys, monkeypatch):
    def no_model(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model was loaded before the port was checked")

    monkeypatch.setattr(PoseEstimator, "from_pretrained", no_model)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        assert main(["serve", "--preset", "crowdpose_w18s", "--port", str(port)]) == 2
    finally:
        busy.close()
    out, err = capsys.readouterr()
    assert out == ""  # no URL printed first
    assert err == (f"grapepose serve: error: 127.0.0.1:{port}: address already in use (another server listens "
                   "there; choose another --port)\n")
