"""`grapepose serve` and `grapepose bench serve` from the command line."""

from __future__ import annotations

import json

import pytest

from grapepose.cli.main import main


@pytest.mark.parametrize("argv, message", [
    (["--max-batch", "0"], "--max-batch 0: must be >= 1"),
    (["--max-wait-ms", "-1"], "--max-wait-ms -1.0: must be between 0 and 10000"),
    (["--max-image-mb", "0"], "--max-image-mb 0.0: must be in (0, 1000]"),
    (["--max-queue", "0"], "--max-queue 0: must be >= 1"),
    (["--max-client-connections", "0"], "--max-client-connections 0: must be >= 1"),
    (["--body-timeout", "0"], "--body-timeout 0.0: must be in (0, 3600]"),
    (["--score-thr", "1.5"], "--score-thr 1.5: must be between 0 and 1"),
    (["--port", "70000"], "--port 70000: must be between 0 and 65535"),
    (["--workers", "0"], "--workers must be >= 1, got 0"),
    (["--set", "base_size=3"], "base_size=3: not a config override of the form section.key=value (e.g. test.base_size=384)"),
    (["--weights", "missing.safetensors"], "missing.safetensors: no such checkpoint file (nor 'demo' or a preset name)"),
])  # fmt: skip
def test_bad_arguments_are_one_line_errors(argv, message, capsys):
    assert main(["serve", "--port", "0", *argv]) == 2  # any free port: the port is bound before the model loads
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"grapepose serve: error: {message}"


def test_serve_is_a_listed_command(capsys):
    assert main(["--help"]) == 0
    assert "grapepose serve --weights model.safetensors --port 8080" in capsys.readouterr().out


def test_worker_processes_build_the_app_from_the_environment(tiny_checkpoint, monkeypatch):
    from grapepose.cli import serve

    args = dict(overrides=["test.flip=true"], weights=str(tiny_checkpoint), preset=None, device="cpu", max_batch=4,
                max_wait_ms=5.0, max_image_mb=1.0, max_megapixels=2.0, max_queue=8, max_client_requests=2,
                max_client_connections=3, body_timeout=9.0, score_thr=0.2)  # fmt: skip
    monkeypatch.setenv("GRAPEPOSE_SERVE_ARGS", json.dumps(args))
    app = serve.app_from_env()
    service = app.state.service
    assert service.settings.max_batch == 4 and service.settings.max_image_mb == 1.0
    assert service.settings.score_threshold == 0.2 and service.settings.max_batch_images == 8
    assert service.settings.max_client_connections == 3 and service.settings.body_timeout == 9.0
    assert service.default_key == (True, (1.0,)) and service.estimator.batch_size == 4
    assert service.source == str(tiny_checkpoint)


def test_bench_serve_starts_loads_and_stops_a_server(capsys):
    argv = ["bench", "serve", "--preset", "crowdpose_w18s", "--requests", "2", "--clients", "1,2", "--size", "96",
            "test.base_size=64", "test.flip=false"]  # fmt: skip
    assert main(argv) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["bench"] == "serve" and figures["model"] == "crowdpose_w18s (random weights)"
    assert [r["clients"] for r in figures["runs"]] == [1, 2]
    for r in figures["runs"]:
        assert r["requests"] == 2 and r["requests_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"]
        assert 1 <= r["mean_batch"] <= 2
