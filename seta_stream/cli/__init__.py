"""The ``seta-stream`` command line: one subcommand per verb.

Handlers parse their arguments, call the library and return an exit code;
errors a user can cause print one line (``seta-stream: error: ...``), not a
traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import SetaStreamError
from . import ledger_cmds, plan_cmds, report_cmd


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seta-stream",
        description="Dynamic sample pruning (SeTa, InfoBatch) for WebDataset shards.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _command_modules():
        module.register(sub)
    return parser


def _command_modules() -> list:  # type: ignore[type-arg]
    return [ledger_cmds, plan_cmds, report_cmd]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (SetaStreamError, ValueError) as e:
        print(f"seta-stream: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("seta-stream: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
