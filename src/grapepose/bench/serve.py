"""`grapepose bench serve`: the HTTP service under load, at several numbers of concurrent clients.

Starts `grapepose serve` in a subprocess on a free loopback port, sends a bounded number of
`POST /v1/poses` requests (one JPEG) from 1, then 8 concurrent clients, reports requests/s, p50/p99
latency and the mean images per forward pass, and stops the server. Loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from grapepose.bench._timing import time_calls
from grapepose.cli import options as opt
from grapepose.errors import GrapeposeError


def add_arguments(p: argparse.ArgumentParser) -> None:
    opt.add_preset(p, "model preset, random weights (default coco_w18s)", default="coco_w18s")
    opt.add_weights(p, "a checkpoint instead of the preset's random weights")
    opt.add_device(p, default="cpu")
    opt.add_precision(p, shown="the model's config")
    p.add_argument("--image", type=Path, default=None, help="JPEG to send (default: a synthetic --size image)")
    p.add_argument("--size", type=int, default=320, help="side of the synthetic image (default 320)")
    p.add_argument("--clients", default="1,8", help="concurrent clients per run, comma-separated (default 1,8)")
    p.add_argument("--requests", type=int, default=32, help="timed requests per run (default 32, max 1000)")
    p.add_argument("--max-batch", type=int, default=8, help="server --max-batch (default 8)")
    p.add_argument("--max-wait-ms", type=float, default=10.0, help="server --max-wait-ms (default 10)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds for the server to start (default 300)")
    opt.add_overrides(p, "test.base_size=256")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _synthetic_jpeg(size: int) -> bytes:
    import cv2

    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 256, (size // 16 + 1, size // 16 + 1, 3), dtype=np.uint8), (size, size))
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def _request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        headers = {"Content-Type": "image/jpeg"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _drive(port: int, body: bytes, clients: int, requests: int) -> dict[str, Any]:
    """`requests` POSTs from `clients` threads; each thread sends its next request when answered."""
    per_client = [requests // clients + (i < requests % clients) for i in range(clients)]

    def post() -> None:
        status, data = _request(port, "POST", "/v1/poses", body)
        if status != 200:
            raise GrapeposeError(f"bench serve: HTTP {status}: {data[:200].decode(errors='replace')}")

    def client(n: int) -> tuple[float, ...]:
        return time_calls(post, n).calls

    before = json.loads(_request(port, "GET", "/healthz")[1])
    latencies: list[float] = []

    def all_clients() -> None:
        with ThreadPoolExecutor(clients) as pool:
            latencies.extend(x for part in pool.map(client, per_client) for x in part)

    wall = time_calls(all_clients, 1).seconds
    after = json.loads(_request(port, "GET", "/healthz")[1])
    ms = np.asarray(latencies) * 1000
    batches = after["batches"] - before["batches"]
    return {
        "clients": clients, "requests": len(latencies), "seconds": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "mean_batch": round((after["images"] - before["images"]) / max(batches, 1), 2),
    }  # fmt: skip


def _wait_ready(proc: subprocess.Popen, port: int, timeout: float, log: Path) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise GrapeposeError(f"bench serve: the server exited ({tail[0]})")
        try:
            if _request(port, "GET", "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise GrapeposeError(f"bench serve: the server did not answer within {timeout:g} s")


def run(args: argparse.Namespace) -> dict[str, Any]:
    clients = [int(c) for c in str(args.clients).split(",") if c.strip()]
    if not clients or min(clients) < 1 or not 1 <= args.requests <= 1000:
        raise GrapeposeError("bench serve: --clients must be positive numbers and --requests between 1 and 1000")
    body = args.image.read_bytes() if args.image else _synthetic_jpeg(args.size)
    port = _free_port()
    model = ["--weights", args.weights] if args.weights else ["--preset", args.preset]
    cmd = [sys.executable, "-m", "grapepose", "-q", "serve", *model, "--host", "127.0.0.1", "--port", str(port),
           "--device", args.device or "auto", "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms),
           "--max-client-requests", str(max(clients) + 1), "--max-client-connections", str(max(clients) + 1),
           *(["--precision", args.dtype] if args.dtype else []), *args.overrides]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        with log.open("w") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
        try:
            _wait_ready(proc, port, args.timeout, log)
            for _ in range(2):  # warm-up: first-call allocations, thread pools
                _request(port, "POST", "/v1/poses", body)
            runs = [_drive(port, body, c, args.requests) for c in clients]
        finally:
            proc.terminate()  # uvicorn shuts down gracefully on SIGTERM
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    figures: dict[str, Any] = {
        "model": args.weights or f"{args.preset} (random weights)", "device": args.device, "precision": args.dtype,
        "image_bytes": len(body), "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
        "overrides": list(args.overrides), "runs": runs,
    }  # fmt: skip
    figures["requests_per_s"] = runs[-1]["requests_per_s"]
    if len(runs) > 1:
        figures["speedup"] = round(runs[-1]["requests_per_s"] / runs[0]["requests_per_s"], 2)
    return figures
