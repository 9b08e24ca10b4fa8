#!/usr/bin/env python3
"""Index WebDataset tar shards into a seta-stream ledger.

Same as ``seta-stream build-ledger``; see ``--help``.
"""

import sys

from seta_stream.cli import main

if __name__ == "__main__":
    sys.exit(main(["build-ledger", *sys.argv[1:]]))
