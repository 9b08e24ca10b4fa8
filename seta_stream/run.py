"""A run directory and its binding to one ledger and one policy.

``RUN_DIR/run.json`` records the run's id, the ledger it was started on (path
and fingerprint) and its policy config. Every later start checks them: a run
directory cannot be continued with another ledger or another config, and a
ledger whose scores belong to one run cannot silently feed another.

Layout::

    RUN_DIR/run.json
    RUN_DIR/manifests/epoch=NNNNNN/{manifest.parquet,summary.json}
    RUN_DIR/losses/epoch=NNNNNN/rank=R.parquet
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .files import atomic_write, differing_fields, read_versioned_json
from .config import PolicyConfig
from .errors import RunError
from .ledger import Ledger

RUN_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RunInfo:
    run_dir: str
    run_id: str
    ledger_path: str
    ledger_fingerprint: str
    config: dict[str, Any]


def read_run(run_dir: str) -> RunInfo | None:
    d = read_versioned_json(os.path.join(run_dir, "run.json"), RUN_SCHEMA_VERSION, RunError)
    if d is None:
        return None
    return RunInfo(run_dir, d["run_id"], d["ledger"], d["ledger_fingerprint"], d["config"])


def check_run(info: RunInfo, fingerprint: str, config: PolicyConfig) -> None:
    """Raise RunError unless the run was started with this ledger and config."""
    if info.ledger_fingerprint != fingerprint:
        raise RunError(
            f"run directory {info.run_dir} was written with another ledger ({info.ledger_path}, fingerprint "
            f"{info.ledger_fingerprint}; this ledger's is {fingerprint}); use a new run directory"
        )
    diff = differing_fields(info.config, config.to_dict())
    if diff:
        raise RunError(
            f"run directory {info.run_dir} was written with another config (differs in {', '.join(diff)}); "
            "use the run's config or a new run directory"
        )


def bind_run(ledger: Ledger, run_dir: str, config: PolicyConfig) -> RunInfo:
    """Create or check ``run.json`` and claim the ledger's scores for this run.

    Raises:
        RunError: the run directory belongs to another ledger or config, or the
            ledger's scores belong to another run.
    """
    fingerprint = ledger.fingerprint()
    info = read_run(run_dir)
    if info is None:
        os.makedirs(run_dir, exist_ok=True)
        info = RunInfo(run_dir, uuid.uuid4().hex, os.path.abspath(ledger.path), fingerprint, config.to_dict())
        doc = {
            "schema_version": RUN_SCHEMA_VERSION,
            "run_id": info.run_id,
            "ledger": info.ledger_path,
            "ledger_fingerprint": fingerprint,
            "config": info.config,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic_write(os.path.join(run_dir, "run.json"), json.dumps(doc, indent=1, sort_keys=True).encode())
    else:
        check_run(info, fingerprint, config)
    owner = ledger.meta("owner_run")
    if owner is not None and owner != info.run_id:
        seen = ledger.con.execute("SELECT count(*) FROM scores WHERE n_seen > 0").fetchall()[0][0]
        if seen:
            raise RunError(
                f"the scores in ledger {ledger.path} belong to run {owner}, not to {run_dir} ({info.run_id}); "
                "copy the ledger file for a new run"
            )
    if owner != info.run_id:
        ledger.set_meta("owner_run", info.run_id)
    return info
