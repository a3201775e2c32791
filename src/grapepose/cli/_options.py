"""The flags every command spells the same way, and the parse-time checks of their values.

Each shared flag is defined once here (`add_device`, `add_batch_size`, ...) so `--device`,
`--batch-size`, `--workers`, `--out`, `--weights`, `--preset`, `--scales`, `--scene` and `--set`
read the same on every command. Type functions reject a bad value while the command line is
parsed, before any work, with one line such as `--batch-size must be >= 1, got 0`.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "Parser", "int_range", "float_range", "device_name", "scale_values",
    "add_device", "add_batch_size", "add_workers", "add_out", "add_weights", "add_preset", "add_scales",
    "add_scene", "add_overrides", "add_deprecated", "SEED_MAX",
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
    """An argparse `type` for one `--scales` word: `1`, or the older comma form `0.5,1,2`."""
    parse = float_range(0.0, lo_open=True)
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"must be numbers > 0, got {text!r}")
    return [parse(p) for p in parts]


class _Flatten(argparse.Action):
    """Store the values of an `nargs='+'` option whose type returns lists, as one tuple."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:  # fmt: skip
        setattr(namespace, self.dest, tuple(v for group in values for v in group))


class _Deprecated(argparse.Action):
    """A hidden old spelling of a flag: warns, then stores like the new one."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str = "", flatten: bool = False,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(option_strings, dest, **kwargs)
        self.new, self.flatten = new, flatten

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:  # fmt: skip
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        if self.flatten:
            values = tuple(v for group in values for v in group)
        setattr(namespace, self.dest, values)


def add_deprecated(p: argparse.ArgumentParser, old: str, new: str, dest: str, **kwargs: Any) -> None:
    """Accept `old` for one more release as a hidden alias of `new` (same `dest`), with a warning."""
    p.add_argument(old, dest=dest, action=_Deprecated, new=new, help=argparse.SUPPRESS, default=argparse.SUPPRESS,
                   **kwargs)  # fmt: skip


def add_device(p: argparse.ArgumentParser, default: str | None = None, extra: str = "") -> None:
    """`--device auto|cpu|cuda|cuda:N`."""
    shown = default or "auto: cuda when available, else cpu"
    p.add_argument("--device", type=device_name, default=default, metavar="DEVICE",
                   help=f"cpu, cuda, cuda:N or auto (default: {shown}){extra}")  # fmt: skip


def add_batch_size(p: argparse.ArgumentParser, default: int | None, help: str, dest: str = "batch_size",
                   old: str | None = None) -> None:  # fmt: skip
    """`--batch-size N` (N >= 1); `old` is a deprecated spelling still accepted."""
    kind = int_range(1)
    p.add_argument("--batch-size", dest=dest, type=kind, default=default, metavar="N", help=help)
    if old:
        add_deprecated(p, old, "--batch-size", dest, type=kind, metavar="N")


def add_workers(p: argparse.ArgumentParser, default: int | None, help: str, lo: int = 0) -> None:
    """`--workers N` (N >= lo)."""
    p.add_argument("--workers", type=int_range(lo), default=default, metavar="N", help=help)


def add_out(p: argparse.ArgumentParser, kind: str, help: str, default: Any = None, required: bool = False) -> None:
    """`--out PATH`: a file (`kind="file"`) or a folder (`kind="dir"`), checked before work by the command."""
    metavar = "FILE" if kind == "file" else "DIR"
    p.add_argument("--out", default=default, required=required, metavar=metavar, help=help)


def add_weights(p: argparse.ArgumentParser, help: str, default: str | None = None) -> None:
    """`--weights W`: a model file (ours, the authors', `.onnx` where supported) or `demo`."""
    p.add_argument("--weights", default=default, metavar="W", help=help)


def add_preset(p: argparse.ArgumentParser, help: str, default: str | None = None) -> None:
    """`--preset P`: a named model config (`grapepose presets` lists them) or a YAML config file."""
    p.add_argument("--preset", default=default, metavar="P", help=help)


def add_scales(p: argparse.ArgumentParser, help: str, default: Any = None) -> None:
    """`--scales 0.5 1 2` (numbers > 0; the older `0.5,1,2` is accepted too)."""
    p.add_argument("--scales", type=scale_values, nargs="+", action=_Flatten, default=default, metavar="S", help=help)


def add_scene(p: argparse.ArgumentParser, help: str, default: str | None = None,
              old: str | None = None, required: bool = False) -> None:  # fmt: skip
    """`--scene sparse|crowd|hard`: the kind of synthetic scene (not a model preset)."""
    from grapepose.synth.scene import PRESETS as SCENES

    p.add_argument("--scene", choices=SCENES, default=default, required=required, help=help)
    if old:
        add_deprecated(p, old, "--scene", "scene", choices=SCENES, metavar="SCENE")


def add_overrides(p: argparse.ArgumentParser, example: str) -> None:
    """`--set section.key=value` (repeatable); `grapepose` also turns a bare `section.key=value` anywhere
    on the command line into `--set` (see `cli.main`). The values land in `args.overrides`, in order."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"config override, e.g. {example} (repeatable; a bare section.key=value "
                   "anywhere on the line is the same)")  # fmt: skip
