"""What a caller of ``run_job`` may set beyond the job file."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from customer_import.config import RunMode
from customer_import.contracts import Progress

if TYPE_CHECKING:  # held, not used: options load none of the stages
    import httpx

    from customer_import.transform.fieldstats import FieldStats
    from customer_import.transform.sharding import Shard


@dataclass(frozen=True, slots=True)
class RunOptions:
    """None (or False) means "as the job file says"."""

    input: Path | str | None = None
    """An input path or URL instead of ``[source] path``."""
    input_copy: Path | None = None
    """A copy of a remote input, already made by whoever calls (a ``--workers`` parent)."""
    out_dir: Path | None = None
    base_url: str | None = None
    concurrency: int | None = None
    rate_limit: float | None = None
    mode: RunMode | None = None
    """Overrides the job file's ``mode`` (``--full`` / ``--incremental``)."""
    dry_run: bool = False
    allow_missing: bool = False
    """Deactivate the customers missing from the export however many they are (this run)."""
    resume: bool = False
    """Resume the unfinished run in the output folder (or refuse): overrides on_unfinished."""
    restart: bool = False
    """Close the unfinished run as abandoned and start anew: overrides on_unfinished."""
    encoding: str | None = None
    """Overrides ``[source] encoding`` for this input (``--encoding``)."""
    delimiter: str | None = None
    """Overrides ``[source] delimiter`` for this input (``--delimiter``)."""
    progress: Callable[[Progress], None] | None = None
    """Called about twice a second with what the run has done; a callback that raises is
    turned off and the run goes on."""
    transport: httpx.AsyncBaseTransport | None = None
    """An httpx transport instead of the one ``api.transport`` names (tests)."""
    environ: Mapping[str, str] | None = None
    """The environment credentials are read from (default: this process's)."""
    handle_signals: bool = False
    """SIGINT/SIGTERM stop the run cleanly (resumable) rather than kill it."""
    field_stats: FieldStats | None = None
    """Filled in with per-field counts (``customer-import check``)."""
    shard: Shard | None = None
    """This run is shard K of N (README, "Scale")."""
