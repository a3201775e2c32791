import pytest


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
    """The checkpoint exported once per module through the CLI (the slow part: ~30 s on one core)."""
    import contextlib
    import io

    from grapepose.cli.main import main

    out = tmp_path_factory.mktemp("onnx") / "w18.onnx"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["export", "--weights", str(tiny_checkpoint), "--out", str(out), "--size", "128", "128"])
    assert code == 0, buf.getvalue()
    return out, buf.getvalue()
