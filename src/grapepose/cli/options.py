"""The flags every command spells the same way, and the parse-time checks of their values.

Each shared flag is defined once here (`add_device`, `add_batch_size`, ...) so `--device`,
`--batch-size`, `--workers` (processes), `--read-threads` (threads), `--out`, `--weights`, `--preset`,
the test flags, `--scene` and `--set` read the same, and mean the same, on every command; the test
flags reach the config one way (`flag_overrides`). Type functions reject a bad value while the
command line is parsed, before any work, with one line such as `--batch-size must be >= 1, got 0`.
The benchmarks (`grapepose.bench`) build their command lines from these helpers too.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from typing import Any

from grapepose.limits import MAX_BASE_SIZE, MAX_MEGAPIXELS, MAX_TEST_SCALES, TEST_SCALE_RANGE

__all__ = [
    "Parser", "int_range", "float_range", "device_name", "scale_values",
    "add_device", "add_batch_size", "add_workers", "add_read_threads", "add_out", "add_weights", "add_preset",
    "add_scales", "add_test_flags", "flag_overrides", "add_precision", "add_max_megapixels", "add_scene",
    "add_overrides", "SEED_MAX",
]  # fmt: skip

SEED_MAX = 2**32 - 1  # numpy and torch both take seeds in [0, 2**32)
_ARGUMENT_PREFIX = re.compile(r"^argument (\S+): (.*)$", re.S)


class Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one line: `grapepose CMD: error: MESSAGE` (exit 2).

    argparse's `argument --flag: must be >= 1, got 0` reads `--flag must be >= 1, got 0`; other
    messages keep the flag in front: `--scene: invalid choice: ...`.
    """

    def error(self, message: str) -> Any:  # noqa: ANN401 - NoReturn in the base class
        m = _ARGUMENT_PREFIX.match(message)
        if m:
            flag, rest = m.group(1).split("/")[0], m.group(2)
            message = f"{flag} {rest}" if rest.startswith("must ") else f"{flag}: {rest}"
        self.exit(2, f"{self.prog}: error: {message}\n")


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse `type` parsing an integer in [lo, hi] (either bound may be None).

    Its errors read `must be >= 1, got 0`; argparse puts the flag in front.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if lo is not None and value < lo:
            bound = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        if hi is not None and value > hi:
            bound = f"in [{lo}, {hi}]" if lo is not None else f"<= {hi}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def float_range(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> Callable[[str], float]:
    """An argparse `type` parsing a finite number in [lo, hi] (`(lo, hi]` with `lo_open`)."""
    left = "(" if lo_open else "["
    if lo is not None and hi is not None:
        bound = f"a number in {left}{lo:g}, {hi:g}]"
    elif lo is not None:
        bound = f"a number {'>' if lo_open else '>='} {lo:g}"
    elif hi is not None:
        bound = f"a number <= {hi:g}"
    else:
        bound = "a finite number"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text!r}") from None
        ok = math.isfinite(value)
        ok = ok and (lo is None or (value > lo if lo_open else value >= lo)) and (hi is None or value <= hi)
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


_DEVICE_FORM = re.compile(r"^(cpu|cuda(:\d+)?)$")


def device_name(text: str) -> str | None:
    """An argparse `type` for `--device`: the name's form, returned as given (None: auto).

    Whether CUDA (or GPU N) is there is checked when the command runs, by the one device resolver
    (`grapepose.utils.device.resolve_device`), so a command line can be checked on any machine.
    """
    name = text.strip().lower()
    if name in ("", "auto"):
        return None
    if not _DEVICE_FORM.match(name):
        raise argparse.ArgumentTypeError(f"must be one of auto, cpu, cuda, cuda:N, got {text!r}")
    return text


def scale_values(text: str) -> list[float]:
    """An argparse `type` for one `--scales` word: `1`, or the comma form `0.5,1,2`, each in
    `TEST_SCALE_RANGE` (the service's bound)."""
    lo, hi = TEST_SCALE_RANGE
    parse = float_range(lo, hi)
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"must be numbers in [{lo:g}, {hi:g}], got {text!r}")
    return [parse(p) for p in parts]


class _Flatten(argparse.Action):
    """Store the values of an `nargs='+'` option whose type returns lists, as one tuple (of at most `most`)."""

    def __init__(self, *args: Any, most: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.most = most

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:  # fmt: skip
        flat = tuple(v for group in values for v in group)
        if self.most is not None and len(flat) > self.most:
            parser.error(f"{option_string} takes at most {self.most} values, got {len(flat)}")
        setattr(namespace, self.dest, flat)


def add_device(p: argparse.ArgumentParser, default: str | None = None, extra: str = "") -> None:
    """`--device auto|cpu|cuda|cuda:N`."""
    shown = default or "auto: cuda when available, else cpu"
    p.add_argument("--device", type=device_name, default=default, metavar="DEVICE",
                   help=f"cpu, cuda, cuda:N or auto (default: {shown}){extra}")  # fmt: skip


def add_batch_size(p: argparse.ArgumentParser, default: int | None, help: str, dest: str = "batch_size") -> None:
    """`--batch-size N` (N >= 1)."""
    p.add_argument("--batch-size", dest=dest, type=int_range(1), default=default, metavar="N", help=help)


def add_workers(p: argparse.ArgumentParser, default: int | None, help: str, lo: int = 0) -> None:
    """`--workers N` (N >= lo): worker processes (DataLoader workers, server or generator processes)."""
    p.add_argument("--workers", type=int_range(lo), default=default, metavar="N", help=help)


def add_read_threads(p: argparse.ArgumentParser, default: int) -> None:
    """`--read-threads N` (N >= 0): threads that read and decode images ahead of the model (0: read in turn)."""
    p.add_argument("--read-threads", type=int_range(0), default=default, metavar="N",
                   help=f"threads reading images ahead of the model (default {default})")  # fmt: skip


def add_out(p: argparse.ArgumentParser, kind: str, help: str, default: Any = None, required: bool = False) -> None:
    """`--out PATH`: a file (`kind="file"`) or a folder (`kind="dir"`), checked before work by the command."""
    metavar = "FILE" if kind == "file" else "DIR"
    p.add_argument("--out", default=default, required=required, metavar=metavar, help=help)


def add_weights(p: argparse.ArgumentParser, help: str, default: str | None = None) -> None:
    """`--weights W`: a model file or `demo`; commands that run a model read it with
    `PoseEstimator.from_pretrained` (also `.onnx` files and preset names)."""
    p.add_argument("--weights", default=default, metavar="W", help=help)


def add_preset(p: argparse.ArgumentParser, help: str, default: str | None = None) -> None:
    """`--preset P`: a named model config (`grapepose presets` lists them) or a YAML config file."""
    p.add_argument("--preset", default=default, metavar="P", help=help)


def add_scales(p: argparse.ArgumentParser, help: str, default: Any = None) -> None:
    """`--scales 0.5 1 2`: at most `MAX_TEST_SCALES` numbers in `TEST_SCALE_RANGE` (the comma form `0.5,1,2` too)."""
    p.add_argument("--scales", type=scale_values, nargs="+", action=_Flatten, most=MAX_TEST_SCALES, default=default,
                   metavar="S", help=help)  # fmt: skip


def add_test_flags(p: argparse.ArgumentParser, default: str) -> None:
    """`--flip/--no-flip`, `--scales S [S ...]`, `--base-size N`: the test procedure (see `flag_overrides`)."""
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help=f"flip test (default: {default})")  # fmt: skip
    add_scales(p, f"test scales, e.g. 0.5 1 2 (default: {default})")
    p.add_argument("--base-size", type=int_range(1, MAX_BASE_SIZE), metavar="N",
                   help=f"short side at scale 1, at most {MAX_BASE_SIZE} (default: {default})")  # fmt: skip


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """The `section.key=value` overrides that a command's config flags stand for, in the order they apply.

    `--set` values first, then the settings of `--mode` (`grapepose.config.TEST_MODES`), then `--flip`,
    `--scales`, `--base-size` and `--precision` (`args.dtype`); each command has some of these flags.
    Values are written as JSON (which YAML reads), so `apply_overrides` gets back exactly the parsed
    flag values.
    """
    import json

    from grapepose.config import TEST_MODES

    mode = getattr(args, "mode", None)
    changes: dict[str, Any] = dict(TEST_MODES[mode]) if mode else {}
    for key in ("flip", "scales", "base_size", "dtype"):
        value = getattr(args, key, None)
        if value is not None:
            changes[key] = value
    return [*getattr(args, "overrides", ()), *(f"test.{key}={json.dumps(value)}" for key, value in changes.items())]


def add_precision(p: argparse.ArgumentParser, default: str | None = None, shown: str = "the config's test.dtype, "
                  "auto", help: str | None = None) -> None:  # fmt: skip
    """`--precision auto|fp32|bf16|fp16|int8`, stored as `args.dtype` (`flag_overrides` writes it to `test.dtype`).

    What each runs on, and what `auto` picks, is `grapepose.inference.precision`; `help` replaces
    that description where a command gives the names another meaning (`bench train`: `train.amp`).
    """
    from grapepose.config import PRECISIONS

    what = help or ("network precision: fp32; bf16 (CUDA, or a CPU with avx512_bf16/amx_bf16, via OpenVINO); "
                    "fp16 (CUDA); int8 (CPU with VNNI, via OpenVINO); auto: the fastest this machine supports")
    p.add_argument("--precision", dest="dtype", choices=PRECISIONS, default=default,
                   help=f"{what} (default: {shown})")  # fmt: skip


def add_max_megapixels(p: argparse.ArgumentParser, help: str) -> None:
    """`--max-megapixels M`: refuse decoded images above M megapixels (default `MAX_MEGAPIXELS`)."""
    p.add_argument("--max-megapixels", type=float_range(0.0, lo_open=True), default=MAX_MEGAPIXELS, metavar="M",
                   help=f"{help} (default {MAX_MEGAPIXELS:g})")  # fmt: skip


def add_scene(p: argparse.ArgumentParser, help: str, default: str | None = None, required: bool = False) -> None:
    """`--scene sparse|crowd|hard`: the kind of synthetic scene (not a model preset)."""
    from grapepose.synth.scene import PRESETS as SCENES

    p.add_argument("--scene", choices=SCENES, default=default, required=required, help=help)


def add_overrides(p: argparse.ArgumentParser, example: str) -> None:
    """`--set section.key=value` (repeatable); `grapepose` also turns a bare `section.key=value` anywhere
    on the command line into `--set` (see `cli.main`). The values land in `args.overrides`, in order."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"config override, e.g. {example} (repeatable; a bare section.key=value "
                   "anywhere on the line is the same)")  # fmt: skip
