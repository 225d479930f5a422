"""One exception tree for the whole package; library errors are translated where they arise.

    ImportJobError                 anything this package raises on purpose
    ├── ConfigError                job file, flags, environment, mapping vs file      exit 2
    ├── InputError                 the input cannot be read at all                    exit 2
    └── RunAborted                 the run must stop; what is done is kept, resumable exit 3
        ├── FatalApiError          401/403/404, a redirect: every further request would fail too
        │   └── NotTheApi          something in front of the API answers every request
        ├── ApiUnavailable         every request failed for longer than api.max_outage_s
        ├── RateLimited            nothing but 429 for longer than api.max_rate_limited_s
        ├── InputChanged           the input file changed while the run read it
        ├── StorageFault           the journal or an output file could not be written
        ├── Guard                  the export as a whole looks wrong: nothing was sent
        │   ├── InvalidInputGuard      most of the first records are invalid
        │   ├── EmptyExportGuard       no record at all
        │   └── MissingCustomersGuard  many customers would be deactivated
        └── Interrupted            SIGINT/SIGTERM                                 exit 130/143

Each error's ``exit_code`` comes from the one table, ``contracts.ExitCode``; anything else
that escapes a run is a bug (exit 70). Bad rows are not exceptions: they are rejects (data).
"""

from __future__ import annotations

import signal

from customer_import.contracts import ExitCode, RunStatus


class ImportJobError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code: ExitCode = ExitCode.NOTHING_DONE


class ConfigError(ImportJobError):
    """The job cannot start as configured; nothing was sent."""


class InputError(ImportJobError):
    """The input file cannot be read as a table; nothing was sent."""


class RunAborted(ImportJobError):
    """The run stopped part-way; records without an outcome are pending for a resume."""

    exit_code = ExitCode.STOPPED
    run_status = RunStatus.ABORTED


class FatalApiError(RunAborted):
    """The API answered in a way that every further request would repeat (401/403/404)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class NotTheApi(FatalApiError):
    """Something in front of the API (a proxy, a gateway) answers the requests."""


class ApiUnavailable(RunAborted):
    """The API failed every request (5xx, no connection) for longer than the outage limit."""


class RateLimited(RunAborted):
    """The API answered nothing but 429 for longer than ``api.max_rate_limited_s``."""


class Guard(RunAborted):
    """The export as a whole looks wrong; nothing was sent, so the next run starts afresh."""


class InvalidInputGuard(Guard):
    """More than ``max_invalid_ratio`` of the first records were rejected."""


class EmptyExportGuard(Guard):
    """The export holds no record (and ``allow_empty`` is not set)."""


class MissingCustomersGuard(Guard):
    """More than ``max_missing_ratio`` of the last export's customers are missing from this
    one, and they would be deactivated."""


class StorageFault(RunAborted):
    """A write to the journal or an output file failed (disk full, file too large, I/O error,
    read-only file system); the journal keeps every outcome committed before it."""

    def __init__(self, path: object, error: BaseException) -> None:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        super().__init__(
            f"cannot write {path}: {reason}. Sending stopped; the journal keeps every outcome "
            "written before this. Make room (or fix the disk), then run again with --resume"
        )


class InputChanged(RunAborted):
    """The input file changed (rewritten, truncated, replaced) while the run read it."""

    def __init__(self, name: str, how: str) -> None:
        super().__init__(
            f"{name}: the export changed while it was being read ({how}); the run stopped, and "
            "the output files account for every record read before the change. Run again once "
            "the export is written whole (with --restart: this run's records belong to the "
            "earlier file)"
        )


class Interrupted(RunAborted):
    """SIGINT/SIGTERM: in-flight requests were let finish; the rest is pending for a resume."""

    run_status = RunStatus.INTERRUPTED

    def __init__(self, signum: int, detail: str = "") -> None:
        super().__init__(f"interrupted by signal {signum}" + (f" {detail}" if detail else ""))
        self.signum = signum
        self.exit_code = ExitCode.SIGTERM if signum == signal.SIGTERM else ExitCode.SIGINT
