"""The ASGI application: routes, request reading within limits, JSON errors.

    from grapepose import PoseEstimator
    from grapepose.serve import create_app
    app = create_app(PoseEstimator.from_pretrained("demo", batch_size=8))   # run with uvicorn

Routes: `GET /` (the web page), `GET /healthz`, `GET /v1/model`, `POST /v1/poses`, `POST /v1/poses:batch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from grapepose.errors import GrapeposeError
from grapepose.serve.errors import HTTPError, bad_request, error_body
from grapepose.serve.images import RAW_TYPES, decode_image, encode_image
from grapepose.serve.schemas import ServeSettings, parse_options, poses_json, spec_json
from grapepose.serve.service import PoseService

__all__ = ["create_app", "STATIC_DIR"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
_MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the image bytes


class _Admission:
    """Bounds requests open per client address (429 beyond), counted from their headers, before the
    body is read; and, once the body has arrived, requests in flight in all (503 beyond) and per
    client address (429 beyond). A slow upload thus holds its own client's share only."""

    def __init__(self, total: int, per_client: int, open_per_client: int) -> None:
        self.total, self.per_client, self.open_per_client = total, per_client, open_per_client
        self.clients: Counter[str] = Counter()
        self.opened: Counter[str] = Counter()

    @property
    def uploading(self) -> int:
        """Requests whose body is still being received."""
        return sum(self.opened.values()) - sum(self.clients.values())

    @contextlib.contextmanager
    def open(self, client: str) -> Iterator[None]:
        if self.opened[client] >= self.open_per_client:
            raise HTTPError(
                429, f"too many open requests from this client (limit {self.open_per_client}, "
                "--max-client-connections); wait for answers before sending more", {"Retry-After": "1"},
            )  # fmt: skip
        with _counted(self.opened, client):
            yield

    @contextlib.contextmanager
    def enter(self, client: str) -> Iterator[None]:
        if sum(self.clients.values()) >= self.total:
            raise HTTPError(
                503, f"server busy: the limit of {self.total} requests in flight is reached; retry later",
                {"Retry-After": "1"},
            )
        if self.clients[client] >= self.per_client:
            raise HTTPError(
                429, f"too many requests in flight from this client (limit {self.per_client}); "
                "wait for answers before sending more", {"Retry-After": "1"},
            )  # fmt: skip
        with _counted(self.clients, client):
            yield


@contextlib.contextmanager
def _counted(counter: Counter[str], client: str) -> Iterator[None]:
    """One more for `client` in `counter` while the block runs; a client at zero leaves the counter."""
    counter[client] += 1
    try:
        yield
    finally:
        counter[client] -= 1
        if counter[client] <= 0:
            del counter[client]


async def _read_body(request: Request, limit: int, limit_mb: float, timeout: float) -> bytes:
    """The request body, refused (413) as soon as it exceeds `limit` bytes, whatever Content-Length says,
    and (408, connection closed) when it has not all arrived `timeout` seconds after this call."""
    too_large = HTTPError(413, f"request body exceeds the {limit_mb:g} MB limit (--max-image-mb)")
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    stream = request.stream().__aiter__()
    chunks, size = [], 0
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), max(0.0, deadline - loop.time()))
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise HTTPError(408, f"request body not received within {timeout:g} s (--body-timeout)",
                            {"Connection": "close"}) from None  # fmt: skip
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _boundary(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            return value.strip('"')
    return ""


async def _uploads(request: Request, settings: ServeSettings, field: str, max_files: int) -> list[tuple[str, bytes]]:
    """(name, bytes) of each uploaded image: a raw image body, or multipart files under `field`."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    mb = settings.max_image_mb
    if ctype == "multipart/form-data":
        limit = settings.max_image_bytes * max_files + _MULTIPART_SLACK
        body = await _read_body(request, limit, mb * max_files, settings.body_timeout)
        boundary = _boundary(request.headers.get("content-type", ""))
        if boundary and f"--{boundary}--".encode() not in body[-len(boundary) - 64 :]:
            raise bad_request("malformed multipart body (no closing boundary: the upload was cut off)")
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(max_files=max_files + 1, max_fields=8)
        except (MultiPartException, StarletteHTTPException) as e:
            detail = getattr(e, "detail", None) or getattr(e, "message", None) or str(e)
            if "Too many files" in str(detail):
                raise HTTPError(413, f"too many files: at most {max_files} per request") from None
            raise bad_request(f"malformed multipart body ({str(detail).rstrip('.')})") from None
        try:
            items = form.multi_items()
            for key, value in items:
                if key != field:
                    raise bad_request(
                        f"unexpected multipart field {key!r}: send the image as a file in field {field!r}"
                    )
                if not isinstance(value, UploadFile):
                    raise bad_request(f"multipart field {field!r} must be a file upload, not text")
            if not items:
                raise bad_request(f"multipart field {field!r} missing: send the image as a file in it")
            if len(items) > max_files:
                hint = " (use POST /v1/poses:batch for several)" if max_files == 1 else ""
                raise HTTPError(413, f"too many files: at most {max_files} per request{hint}")
            uploads = [(v.filename or f"#{i}", await v.read()) for i, (_, v) in enumerate(items)]
        finally:
            await form.close()
    elif max_files > 1:
        raise HTTPError(415, f"unsupported content type {ctype or 'none'!r}: send multipart/form-data "
                        f"with one {field!r} file per image")  # fmt: skip
    elif ctype in RAW_TYPES or not ctype:
        uploads = [("body", await _read_body(request, settings.max_image_bytes, mb, settings.body_timeout))]
    else:
        raise HTTPError(
            415, f"unsupported content type {ctype!r}: send an image ({', '.join(RAW_TYPES)}) "
            f"or multipart/form-data with the file in field {field!r}",
        )  # fmt: skip
    for name, data in uploads:
        if len(data) > settings.max_image_bytes:
            size = f"{len(data) / 1e6:.1f} MB"
            raise HTTPError(413, f"image {name!r}: {size} exceeds the {mb:g} MB limit (--max-image-mb)")
        if not data:
            raise bad_request(
                "empty body: send an image" if name == "body" else f"image {name!r}: empty file (0 bytes)"
            )
    return uploads


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def create_app(estimator: Any, settings: ServeSettings | None = None, source: str = "") -> Starlette:
    """The Starlette app serving `estimator` (a `PoseEstimator`) with `settings`' limits and batching."""
    settings = settings or ServeSettings()
    service = PoseService(estimator, settings, source)
    admission = _Admission(settings.max_queue, settings.max_client_requests, settings.max_client_connections)
    spec = spec_json(estimator.spec)

    async def decode_all(uploads: list[tuple[str, bytes]]) -> list[Any]:
        def what(name: str) -> str:
            return "request body" if name == "body" else f"image {name!r}"

        return [
            await asyncio.to_thread(decode_image, data, settings.max_megapixels, what(name)) for name, data in uploads
        ]

    async def poses(request: Request) -> Response:
        t0 = time.perf_counter()
        opts = parse_options(request.query_params, settings)
        client = _client(request)
        with admission.open(client):
            uploads = await _uploads(request, settings, "image", 1)
            with admission.enter(client):  # a slot in flight only once the body has arrived
                images = await decode_all(uploads)
                (result,) = await service.predict(images, opts)
                if opts.draw:
                    drawn = await asyncio.to_thread(
                        lambda: encode_image(result.draw(images[0], min_joint_score=opts.min_joint_score), opts.format)
                    )
                    ms = (time.perf_counter() - t0) * 1000
                    headers = {"X-People": str(len(result)), "X-Latency-Ms": f"{ms:.1f}"}
                    return Response(drawn, media_type=f"image/{opts.format}", headers=headers)
        h, w = images[0].shape[:2]
        body = poses_json(result.keypoints, result.scores, w, h, result.joint_scores)
        body.update(keypoint_names=spec["names"], skeleton=spec["skeleton"])
        body["latency_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        return JSONResponse(body)

    async def poses_batch(request: Request) -> Response:
        t0 = time.perf_counter()
        opts = parse_options(request.query_params, settings, allow_draw=False)
        client = _client(request)
        with admission.open(client):
            uploads = await _uploads(request, settings, "images", settings.max_batch_images)
            with admission.enter(client):  # a slot in flight only once the body has arrived
                images = await decode_all(uploads)
                results = await service.predict(images, opts)
        out = []
        for (name, _), img, res in zip(uploads, images, results):
            h, w = img.shape[:2]
            entry = {"name": name, **poses_json(res.keypoints, res.scores, w, h, res.joint_scores)}
            out.append(entry)
        body = {"results": out, "keypoint_names": spec["names"], "skeleton": spec["skeleton"]}
        body["latency_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        return JSONResponse(body)

    async def healthz(request: Request) -> Response:
        b = service.batcher
        return JSONResponse({"status": "ok", "queued": b.pending, "batches": b.batches, "images": b.images,
                             "uploading": admission.uploading})  # fmt: skip

    async def model(request: Request) -> Response:
        return JSONResponse(service.model_info())

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPError)
        return JSONResponse(error_body(exc.message), exc.status, headers=exc.headers)

    async def on_starlette_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        path = request.url.path
        messages = {404: f"not found: {path}", 405: f"method {request.method} not allowed on {path}"}
        return JSONResponse(error_body(messages.get(exc.status_code, str(exc.detail))), exc.status_code)

    async def on_disconnect(request: Request, exc: Exception) -> Response:
        # The client is gone (closed the page, lost the network): nobody reads an answer; one line, no traceback.
        peer = f"{request.client.host}:{request.client.port}" if request.client else "a client"
        log.info("%s disconnected during its upload to %s %s; request dropped", peer, request.method, request.url.path)
        return Response(status_code=400)

    async def on_grapepose_error(request: Request, exc: Exception) -> Response:
        return JSONResponse(error_body(str(exc)), 400)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.batcher.start()
        try:
            yield
        finally:
            await service.batcher.close()

    app = Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/v1/model", model, methods=["GET"]),
            Route("/v1/poses", poses, methods=["POST"]),
            Route("/v1/poses:batch", poses_batch, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        exception_handlers={
            HTTPError: on_http_error, StarletteHTTPException: on_starlette_error, GrapeposeError: on_grapepose_error,
            ClientDisconnect: on_disconnect,
        },  # fmt: skip
        lifespan=lifespan,
    )
    app.state.service = service
    return app
