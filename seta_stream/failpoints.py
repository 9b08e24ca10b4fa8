"""Named points where a test can kill the process, to prove kill-anywhere resume.

Set ``SETA_STREAM_FAILPOINT`` to ``NAME`` or ``NAME@EPOCH`` (optionally
``NAME@EPOCH#RANK``); when the code reaches that point the process sends
itself SIGKILL: no cleanup, no flush, as when a node dies. Points:

``after_spool``     a rank wrote its loss part, before the barrier
``ingest``          inside the ingest transaction, before it commits
``manifest_write``  the manifest's Parquet file is in place, its summary not yet

Unset (the normal case), a failpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal


def failpoint(name: str, epoch: int | None = None, rank: int | None = None) -> None:
    spec = os.environ.get("SETA_STREAM_FAILPOINT")
    if not spec:
        return
    want_name, _, rest = spec.partition("@")
    want_epoch, _, want_rank = rest.partition("#")
    if want_name != name:
        return
    if want_epoch and (epoch is None or int(want_epoch) != epoch):
        return
    if want_rank and (rank is None or int(want_rank) != rank):
        return
    os.kill(os.getpid(), signal.SIGKILL)
