import subprocess
import sys

from grapepose.cli.main import COMMANDS, main


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
