"""`grapepose presets [NAME]`: list the named configs or print one as YAML."""

from __future__ import annotations

import argparse

import yaml

from grapepose.cli import options as opt
from grapepose.config import PRESETS, TEST_MODES, config_to_dict, load_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="preset name or YAML file to resolve and print")
    opt.add_overrides(p, "test.flip=false")


def run(args: argparse.Namespace) -> int:
    if args.name is None:
        if args.overrides:
            from grapepose.errors import ConfigError

            raise ConfigError("overrides need a preset NAME, e.g. grapepose presets coco_w32 test.flip=false")
        for name, cfg in PRESETS.items():
            m = cfg.model
            print(f"{name:<14} {m.backbone:<10} K={m.num_keypoints:<3} dataset={cfg.data.dataset}")
        print("test modes: " + ", ".join(TEST_MODES))
        return 0
    print(yaml.safe_dump(config_to_dict(load_config(args.name, args.overrides)), sort_keys=False), end="")
    return 0
