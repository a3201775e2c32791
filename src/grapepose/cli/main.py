"""The `grapepose` command: one subcommand per job, each in its own module under `grapepose.cli`.

Subcommand modules define `add_arguments(parser)` and `run(args) -> int`; they are imported only when
their command runs, so `grapepose --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
from collections.abc import Sequence

from grapepose.cli.options import Parser
from grapepose.errors import GrapeposeError

# (name, module, one-line description, example)
COMMANDS: list[tuple[str, str, str, str]] = [
    ("demo", "grapepose.cli.demo", "run the bundled demo model on bundled crowd images and report it",
     "grapepose demo --out outputs/demo"),
    ("predict", "grapepose.cli.predict", "estimate poses in images, folders, videos or a webcam",
     "grapepose predict photo.jpg clips/ --weights model.safetensors --out outputs/"),
    ("evaluate", "grapepose.cli.evaluate", "OKS AP/AR of a model or a results file on a COCO-format set",
     "grapepose evaluate --weights model.safetensors --data images/ --ann val.json"),
    ("train", "grapepose.cli.train", "train a model (one process, or under torchrun for DDP)",
     "grapepose train --preset crowdpose_w32 --data images/ --ann train.json --out runs/cp"),
    ("synth", "grapepose.cli.synth", "generate a synthetic crowd dataset in COCO format",
     "grapepose synth --scene crowd --num-images 100 --out data/synth"),
    ("export", "grapepose.cli.export", "export a model to ONNX",
     "grapepose export --weights model.safetensors --format onnx --out model.onnx"),
    ("convert", "grapepose.cli.convert", "convert the authors' .pth.tar checkpoint to safetensors",
     "grapepose convert model_crowdpose.pth.tar --out out.safetensors --preset crowdpose_w32"),
    ("show-targets", "grapepose.cli.show_targets", "draw augmented training samples with their targets",
     "grapepose show-targets --data images/ --ann train.json --out outputs/targets"),
    ("bench", "grapepose.cli.bench", "measure speed (forward, targets, loader, decode, predict, train, serve) "
     "and per-joint confidence (joints)",
     "grapepose bench decode --people 15 --device cpu"),
    ("serve", "grapepose.cli.serve", "HTTP pose service: JSON API and a web page, batching across requests",
     "grapepose serve --weights model.safetensors --port 8080"),
    ("presets", "grapepose.cli.presets", "list the named configs, or print one as YAML",
     "grapepose presets crowdpose_w32"),
]  # fmt: skip

log = logging.getLogger("grapepose")

# `section.key=value`: a config override wherever it stands on the line (sections checked against Config)
_OVERRIDE = re.compile(r"^([a-z_]+)\.[A-Za-z_][\w.]*=")


def _is_override(token: str) -> bool:
    """`token` is `section.key=value` for a config section, and not the name of an existing file."""
    m = _OVERRIDE.match(token)
    if not m or os.path.lexists(token):
        return False
    import dataclasses

    from grapepose.config import Config

    return m.group(1) in {f.name for f in dataclasses.fields(Config) if f.name != "name"}


def _leaf_parser(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The (sub)parser that will read the options in `argv`: follows subcommand names (`bench decode`)."""
    for action in parser._actions:  # noqa: SLF001 - argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for i, token in enumerate(argv):
                if token in action.choices:
                    return _leaf_parser(action.choices[token], argv[i + 1 :])
    return parser


def _pull_overrides(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Move each bare `section.key=value` in `argv` to the end as `--set=section.key=value`.

    A command without `--set` refuses them (one error line). The bare overrides keep their order and apply after the
    `--set` ones (one that follows a list option such as `--scales 0.5 1` stays in place, ending
    that list). The value of a single-value option (`--out test.a=1`) is left alone, as are
    `--flag=value` words, existing paths and everything after `--`. Moving them out keeps the
    positional arguments around them one group (`predict a.jpg test.flip=false b.jpg`).
    """
    leaf = _leaf_parser(parser, argv)
    if leaf is parser:
        return argv
    options = leaf._option_string_actions  # noqa: SLF001
    out: list[str] = []
    pulled: list[str] = []
    tail: list[str] = []
    skip, in_list = 0, False
    for i, token in enumerate(argv):
        if token == "--":
            tail = argv[i:]
            break
        if skip:
            skip -= 1
        elif token.startswith("-"):
            action = options.get(token.split("=", 1)[0])
            nargs = action.nargs if action is not None and "=" not in token else 0
            skip = 1 if nargs in (None, "?") else nargs if isinstance(nargs, int) else 0
            in_list = nargs in ("+", "*")
        elif _is_override(token):
            if in_list:  # it ends the values of `--scales 0.5 1 test.flip=false`, as an option would
                out.append(f"--set={token}")
                in_list = False
            else:
                pulled.append(f"--set={token}")
            continue
        out.append(token)
    if pulled and "--set" not in options:
        leaf.error(f"this command takes no config overrides, got {pulled[0].split('=', 1)[1]}")
    return [*out, *pulled, *tail]


def _build_parser(selected: str | None) -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<13} {desc}\n  {'':<13} e.g. {ex}" for name, _, desc, ex in COMMANDS)
    parser = Parser(
        prog="grapepose",
        description="GRAPE multi-person 2D pose estimation.",
        epilog=f"commands:\n{lines}\n\nRun `grapepose COMMAND --help` for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, module, desc, example in COMMANDS:
        p = sub.add_parser(
            name, help=desc, description=f"{desc}.", epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name == selected:
            importlib.import_module(module).add_arguments(p)
    return parser


def _one_line(e: GrapeposeError | OSError) -> str:
    """The error line of a failed command: ours as it is; an `OSError` as `path: reason` (`path -> other: reason`
    for a rename)."""
    if isinstance(e, GrapeposeError):
        return str(e)
    reason = e.strerror or str(e) or type(e).__name__
    if e.filename is None:
        return reason
    where = f"{e.filename}" if e.filename2 is None else f"{e.filename} -> {e.filename2}"
    return f"{where}: {reason}"


def passive_openmp_waits() -> None:
    """Make OpenMP threads sleep as soon as they wait (`OMP_WAIT_POLICY=PASSIVE`), unless the user chose.

    PyTorch's GNU OpenMP lets a thread that waits at the end of a parallel region spin before it
    sleeps. On a CPU shared with other busy processes the spinning threads take the cores the
    working ones need: a 2-thread forward cost 6.6x the CPU time of a 1-thread one (docs/BENCHMARKS.md).
    The variable is read when torch loads, so this runs before anything imports torch; a user's
    `OMP_WAIT_POLICY` or `GOMP_SPINCOUNT` is left alone, and so is a process that already loaded torch.
    """
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `grapepose` console script."""
    passive_openmp_waits()
    argv = list(sys.argv[1:] if argv is None else argv)
    names = {c[0] for c in COMMANDS}
    selected = next((a for a in argv if not a.startswith("-") and not _OVERRIDE.match(a)), None)
    parser = _build_parser(selected if selected in names else None)
    try:
        args = parser.parse_args(_pull_overrides(parser, argv))
    except SystemExit as e:  # --help, or a bad command line (one line on stderr): the exit code
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    if args.command is None:
        parser.print_help()
        return 0
    module = next(m for n, m, _, _ in COMMANDS if n == args.command)
    try:
        return int(importlib.import_module(module).run(args) or 0)
    except (GrapeposeError, OSError) as e:  # OSError: a full disk, a read-only or missing folder, ...
        if args.verbose:
            log.exception("failed")
        print(f"grapepose {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"grapepose {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
