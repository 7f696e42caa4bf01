"""The serving defects that need the real server: a blocked prediction must not stall the
event loop, and any method token uvicorn accepts must not become a metric label."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

import httpx
import pandas as pd
import pytest

from levibot.io import file_lock
from levibot.settings import load_settings
from levibot.state.paths import Paths
from tests.serving.conftest import running_server

pytestmark = pytest.mark.slow
TOKEN = "uvicorn-hardening-token"


@pytest.fixture
def one_worker(trained_root, tmp_path):
    with running_server(trained_root, tmp_path, workers=1, token=TOKEN) as (base, root):
        yield base, root


def _raw_request(base: str, method: str, path: str) -> bytes:
    """One HTTP/1.1 request with an arbitrary method token (clients refuse to send some)."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _append_bar(paths: Paths, symbol: str) -> None:
    store = paths.store()
    frame = store.read(symbol)
    new = frame.iloc[[-1]].copy()
    new.index = new.index + store.bar_length
    new.index.name = frame.index.name
    store.write(symbol, pd.concat([frame, new]))


def test_a_prediction_waiting_on_a_lock_does_not_stall_the_event_loop(one_worker):
    """The predict routes ran the synchronous service on the event loop: one request
    stuck on a file lock (or in torch) froze /ping and every other client with it."""
    base, root = one_worker
    paths = Paths.of(load_settings(root / "env.yaml", root=root))
    answers: list[int] = []
    with file_lock(paths.paper_book("prod")), file_lock(paths.paper_book("candidate")):
        _append_bar(paths, "ETHUSDT")  # a new bar: the books must act, and wait for the lock
        blocked = threading.Thread(
            target=lambda: answers.append(
                httpx.get(
                    f"{base}/ml/predict", params={"symbol": "ETHUSDT"}, timeout=120
                ).status_code
            )
        )
        blocked.start()
        blocked.join(timeout=1.0)
        ping = httpx.get(f"{base}/ping", timeout=10)  # blocked until the lock timed out (60 s)
        health = httpx.get(f"{base}/healthz", timeout=10)
        assert ping.status_code == 200 and health.status_code == 200
    blocked.join(timeout=60)
    assert answers == [200]


def test_arbitrary_method_tokens_do_not_become_metric_series(one_worker):
    """Made-up tokens (refused by the compiled parser, accepted by h11) and the parser's
    extra methods (WebDAV and the like, which reach the app) must all stay off /metrics."""
    base, _ = one_worker
    unusual = ("PROPFIND", "MKCOL", "PURGE", "SEARCH", "UNLOCK", "REPORT")
    for i in range(30):
        _raw_request(base, f"ZZ{i:03d}QQ", "/ml/predict?symbol=BTCUSDT")
        _raw_request(base, unusual[i % len(unusual)], f"/no/such/path/{i}")
        _raw_request(base, unusual[i % len(unusual)], "/ml/predict?symbol=BTCUSDT")
    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    assert "ZZ0" not in metrics and "/no/such" not in metrics
    assert not any(f'method="{m}"' in metrics for m in unusual)
    assert 'method="other"' in metrics
