"""neurojoule version: the installed version."""

from __future__ import annotations

import argparse

from neurojoule.cli.parsing import Command


def run(args: argparse.Namespace) -> int:
    import neurojoule

    print(f"neurojoule {neurojoule.__version__}")
    return 0


COMMAND = Command("version", "print the installed version", run=run, seeded=False)
