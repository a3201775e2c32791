"""`grapepose serve`: the HTTP pose service (JSON API + web page), batching images across requests."""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import socket
from typing import Any

from grapepose.cli import options as opt
from grapepose.errors import GrapeposeError

_OVERRIDE = re.compile(r"^(model|data|test)\.[A-Za-z_][\w.]*=")
_ENV = "GRAPEPOSE_SERVE_ARGS"  # how `--workers N` hands the options to each worker process


def add_arguments(p: argparse.ArgumentParser) -> None:
    arg = p.add_argument
    opt.add_overrides(p, "test.base_size=384")
    opt.add_weights(p, "checkpoint (.safetensors, authors' .pth.tar, .onnx) or 'demo' (default)")
    opt.add_preset(p, "alone: an untrained network of this preset; with --weights: the config of a file without one")
    arg("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all interfaces)")
    arg("--port", type=int, default=8080, help="TCP port (default 8080)")
    opt.add_device(p)
    opt.add_precision(p)
    arg("--max-batch", type=int, default=8, help="images per forward pass (default 8)")
    arg("--max-wait-ms", type=float, default=10.0,
        help="how long an image waits for others to share its forward pass (default 10)")
    arg("--max-image-mb", type=float, default=20.0, help="largest accepted image, in MB (default 20)")
    opt.add_max_megapixels(p, "largest accepted decoded image, checked from its header before decoding")
    arg("--max-queue", type=int, default=64,
        help="images waiting for the model (and requests in flight); beyond it 503 (default 64)")
    arg("--max-client-requests", type=int, default=16,
        help="requests in flight per client address; beyond it 429 (default 16)")
    arg("--max-client-connections", type=int, default=32,
        help="requests open per client address, counted while their body uploads; beyond it 429 (default 32)")
    arg("--body-timeout", type=float, default=60.0, metavar="S",
        help="seconds a request body may take to arrive; beyond it 408 and the connection closes (default 60)")
    arg("--score-thr", type=float, default=0.1, help="default minimum person score (default 0.1, as predict)")
    opt.add_workers(p, 1, "server processes, each with its own model copy (default 1)", lo=1)


def _settings(args: argparse.Namespace) -> Any:
    from grapepose.serve.schemas import ServeSettings

    flags = {
        "max_batch": "--max-batch", "max_wait_ms": "--max-wait-ms", "max_image_mb": "--max-image-mb",
        "max_megapixels": "--max-megapixels", "max_queue": "--max-queue",
        "max_client_requests": "--max-client-requests", "max_client_connections": "--max-client-connections",
        "body_timeout": "--body-timeout", "score_threshold": "--score-thr",
    }  # fmt: skip
    values = {k: getattr(args, "score_thr" if k == "score_threshold" else k) for k in flags}
    values["max_batch_images"] = min(16, max(1, values["max_queue"]))
    try:
        return ServeSettings(**values)
    except GrapeposeError as e:  # "max_batch=0: must be >= 1" -> "--max-batch 0: must be >= 1"
        name, rest = str(e).split("=", 1)
        raise GrapeposeError(f"{flags.get(name, name)} {rest}") from None


def _load(args: argparse.Namespace) -> tuple[Any, str]:
    import torch

    from grapepose.api import PoseEstimator

    if args.device and args.device.startswith("cuda") and not torch.cuda.is_available():
        raise GrapeposeError(f"--device {args.device}: CUDA is not available on this machine")
    bad = [o for o in args.overrides if not _OVERRIDE.match(o)]
    if bad:
        raise GrapeposeError(f"{bad[0]}: not a config override of the form section.key=value (e.g. test.base_size=384)")
    source = args.weights if args.weights is not None else (args.preset or "demo")
    preset = args.preset if args.weights is not None else None
    est = PoseEstimator.from_pretrained(
        source, device=args.device, preset=preset, overrides=opt.flag_overrides(args), batch_size=args.max_batch
    )
    return est, str(source)


def build_app(args: argparse.Namespace) -> Any:
    """The ASGI app for parsed `grapepose serve` arguments (model loaded)."""
    from grapepose.serve.app import create_app

    settings = _settings(args)
    estimator, source = _load(args)
    return create_app(estimator, settings, source)


def app_from_env() -> Any:
    """uvicorn factory for `--workers N`: each worker process loads the model from the same arguments."""
    return build_app(argparse.Namespace(**json.loads(os.environ[_ENV])))


def _bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` as uvicorn binds one, or one error line naming the address."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise GrapeposeError(f"{host}:{port}: address already in use (another server listens there; "
                                 "choose another --port)") from None  # fmt: skip
        raise GrapeposeError(f"{host}:{port}: cannot listen there ({e.strerror or e})") from None
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ModuleNotFoundError:
        raise GrapeposeError("the serve extra is not installed: pip install 'grapepose[serve]'") from None
    if not 0 <= args.port <= 65535:
        raise GrapeposeError(f"--port {args.port}: must be between 0 and 65535")
    if args.workers < 1:
        raise GrapeposeError(f"--workers must be >= 1, got {args.workers}")
    if args.workers == 1:
        _settings(args)
        sock = _bind(args.host, args.port)  # before the model loads; uvicorn would report a busy port after it
        try:
            app = build_app(args)
            port = sock.getsockname()[1]
            print(f"grapepose serve: http://{args.host}:{port}/ (Ctrl-C stops)", flush=True)
            config = uvicorn.Config(app, host=args.host, port=port, log_level="info", timeout_graceful_shutdown=5)
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            sock.close()
        return 0
    _settings(args)  # fail here, not in every worker
    _bind(args.host, args.port).close()  # uvicorn binds it again for its workers
    keys = ("overrides", "weights", "preset", "device", "dtype", "max_batch", "max_wait_ms", "max_image_mb",
            "max_megapixels", "max_queue", "max_client_requests", "max_client_connections", "body_timeout",
            "score_thr")  # fmt: skip
    os.environ[_ENV] = json.dumps({k: getattr(args, k) for k in keys})
    print(f"grapepose serve: http://{args.host}:{args.port}/ with {args.workers} workers (Ctrl-C stops)", flush=True)
    uvicorn.run(
        "grapepose.cli.serve:app_from_env", factory=True, host=args.host, port=args.port,
        workers=args.workers, log_level="info", timeout_graceful_shutdown=5,
    )  # fmt: skip
    return 0
