import re
import subprocess
import sys

import pytest

from grapepose.cli.bench import TOPICS
from grapepose.cli.main import COMMANDS, _build_parser, _pull_overrides, main


def test_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name, *_ in COMMANDS:
        assert name in out


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "grapepose", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "predict" in r.stdout


def test_config_error_is_one_line(capsys):
    assert main(["presets", "crowdpose_w32", "model.bogus=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown config key model.bogus" in err


def test_presets_lists_and_prints(capsys):
    assert main(["presets"]) == 0
    assert "crowdpose_w32" in capsys.readouterr().out
    assert main(["presets", "coco_w18", "test.flip=false"]) == 0
    assert "flip: false" in capsys.readouterr().out


# --- one vocabulary: the same flag spelled the same way on every command ------------------------------

# The shared flags each command has; every command spells them like this and no other way.
CANONICAL = {
    "demo": {"--out", "--weights", "--device", "--photos"},
    "predict": {"--out", "--weights", "--preset", "--device", "--batch-size", "--scales", "--base-size", "--set"},
    "evaluate": {"--out", "--weights", "--preset", "--device", "--batch-size", "--read-threads", "--scales",
                 "--base-size", "--set"},
    "train": {"--out", "--weights", "--preset", "--device", "--batch-size", "--workers", "--scene", "--num-images",
              "--seed", "--set"},
    "synth": {"--out", "--scene", "--num-images", "--workers", "--seed"},
    "export": {"--out", "--weights", "--preset"},
    "convert": {"--out", "--preset"},
    "show-targets": {"--out", "--preset", "--num-images", "--seed", "--set"},
    "presets": {"--set"},
    "serve": {"--weights", "--preset", "--device", "--workers", "--set"},
    "bench serve": {"--weights", "--preset", "--device", "--set"},
    "bench forward": {"--preset", "--device", "--batch-size", "--iters", "--set"},
    "bench targets": {"--iters", "--seed"},
    "bench loader": {"--preset", "--batch-size", "--workers", "--seed"},
    "bench decode": {"--device", "--batch-size", "--iters"},
    "bench predict": {"--preset", "--device", "--batch-size", "--scales", "--iters"},
    "bench train": {"--preset", "--device", "--batch-size", "--set"},
    "bench joints": {"--weights", "--preset", "--device", "--batch-size", "--read-threads", "--set"},
}  # fmt: skip
# `--workers` is always worker processes; commands that read images ahead in threads say `--read-threads`.
READ_THREADS = {"evaluate", "bench joints"}
RETIRED = {"--batch", "--synthetic", "--synthetic-length", "--repeats", "--num", "--num-synthetic-images"}


def test_canonical_table_covers_every_command():
    assert {c.split()[0] for c in CANONICAL} == {name for name, *_ in COMMANDS}
    assert {c.split()[1] for c in CANONICAL if c.startswith("bench ")} == set(TOPICS)


@pytest.mark.parametrize("command", sorted(CANONICAL))
def test_help_lists_the_canonical_flags(command, capsys):
    assert main([*command.split(), "--help"]) == 0
    out = capsys.readouterr().out
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", out))
    assert CANONICAL[command] <= flags
    assert not flags & RETIRED
    assert "--workers" not in flags or command not in READ_THREADS
    if command in ("synth", "bench targets", "bench decode"):
        assert "--preset" not in flags  # scene kinds and counts are not model presets


def test_scales_are_space_separated_and_the_comma_form_still_reads():
    parser = _build_parser("evaluate")
    assert parser.parse_args(["evaluate", "--ann", "a", "--scales", "0.5", "1", "2"]).scales == (0.5, 1.0, 2.0)
    assert parser.parse_args(["evaluate", "--ann", "a", "--scales", "0.5,1,2"]).scales == (0.5, 1.0, 2.0)


# --- section.key=value overrides anywhere on the line -------------------------------------------------


def _pulled(argv):
    command = next(a for a in argv if a in {c[0] for c in COMMANDS})
    return _pull_overrides(_build_parser(command), argv)


def test_overrides_anywhere_become_set_in_order():
    argv = ["predict", "test.flip=false", "a.jpg", "--scales", "0.5", "1", "test.base_size=384", "--out", "o",
            "--set", "test.refine=false", "model.dropout=0"]  # fmt: skip
    assert _pulled(argv) == ["predict", "a.jpg", "--scales", "0.5", "1", "--set=test.base_size=384", "--out", "o",
                             "--set", "test.refine=false", "--set=test.flip=false", "--set=model.dropout=0"]  # fmt: skip
    args = _build_parser("predict").parse_args(_pulled(argv))
    assert args.sources == ["a.jpg"] and args.scales == (0.5, 1.0) and args.out == "o"
    assert args.overrides == ["test.base_size=384", "test.refine=false", "test.flip=false", "model.dropout=0"]
    args = _build_parser("predict").parse_args(_pulled(["predict", "a.jpg", "test.flip=false", "b.jpg"]))
    assert args.sources == ["a.jpg", "b.jpg"] and args.overrides == ["test.flip=false"]


def test_override_before_the_command_and_in_bench_topics():
    assert _pulled(["-q", "test.flip=false", "presets", "coco_w18"]) == [
        "-q", "presets", "coco_w18", "--set=test.flip=false"]  # fmt: skip
    assert _pulled(["bench", "forward", "model.d_model=64", "--size", "128", "--", "x"]) == [
        "bench", "forward", "--size", "128", "--set=model.d_model=64", "--", "x"]  # fmt: skip


def test_what_is_not_an_override_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "test.base_size=5").write_text("")  # an existing path is a SOURCE, whatever its name
    argv = ["predict", "test.base_size=5", "--out", "test.out=1", "--weights=test.w=1", "x/test.a=1.jpg",
            "foo.bar=1", "Test.flip=1", "--", "test.flip=false"]  # fmt: skip
    assert _pulled(argv) == argv


def test_commands_without_a_config_refuse_overrides(capsys):
    assert main(["synth", "--num-images", "1", "--out", "x", "test.flip=false"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "grapepose synth: error: this command takes no config overrides, got test.flip=false"


def test_override_after_an_option_value_applies(capsys):
    assert main(["presets", "coco_w18", "--set", "test.base_size=384", "test.flip=false"]) == 0
    out = capsys.readouterr().out
    assert "flip: false" in out and "base_size: 384" in out


def test_device_form_is_checked_when_parsing_and_availability_when_running():
    parser = _build_parser("predict")
    assert parser.parse_args(["predict", "x.jpg", "--device", "cuda:1"]).device == "cuda:1"  # any machine
    assert parser.parse_args(["predict", "x.jpg", "--device", "auto"]).device is None
    assert parser.parse_args(["predict", "x.jpg"]).device is None
