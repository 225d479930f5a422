"""How a run ended: its status, and a message that says what happened and what to do next."""

from __future__ import annotations

from customer_import.config import ApiConfig
from customer_import.contracts import Ending, RunStatus
from customer_import.errors import (
    ApiUnavailable,
    FatalApiError,
    Guard,
    Interrupted,
    NotTheApi,
    RunAborted,
)
from customer_import.record.journal import Journal
from customer_import.record.recorder import Recorder


def ending_of(failure: BaseException | None, api: ApiConfig, recorder: Recorder) -> Ending:
    """The run's status from what stopped it (None: nothing did)."""
    if failure is None:
        return Ending(RunStatus.COMPLETED)
    if isinstance(failure, Interrupted):
        return Ending(RunStatus.INTERRUPTED, str(failure), failure.signum)
    if isinstance(failure, RunAborted):
        guarded = isinstance(failure, Guard)  # nothing was sent: the next run starts afresh
        return Ending(RunStatus.ABORTED, _explain(failure, api, recorder), resumable=not guarded)
    return Ending(
        RunStatus.ABORTED,
        f"an unexpected error stopped the run ({type(failure).__name__}: {failure}; a fault of "
        "customer-import: please report it); run again with --resume to finish",
    )


def _explain(exc: RunAborted, api: ApiConfig, recorder: Recorder) -> str:
    if isinstance(exc, Guard):
        return str(exc)  # nothing was sent: the next run starts afresh
    message = str(exc)
    if isinstance(exc, ApiUnavailable):
        # Records that ran out of attempts as the outage began failed for the same reason:
        # pending, not rejected, so a resume once the API is back sends them too.
        message += _pending_again(recorder.forget_transport_rejects(), "failed as it began")
    if isinstance(exc, NotTheApi):  # the records it rejected were not the API's rejects
        message += _pending_again(recorder.forget_first_api_rejects(), "it rejected")
    if isinstance(exc, FatalApiError) and exc.status_code == 401:
        message += f" ({api.api_key_env}, {api.merchant_id_env})"
    if "--resume" not in message:
        message += "; fix it, then run again with --resume"
    return message


def _pending_again(records: int, how: str) -> str:
    return f"; the {records} records that {how} are pending again" if records else ""


def whole_file_check(ending: Ending, total: int, journal: Journal) -> Ending:
    """A run that read the whole file calls itself complete only if every record has an
    outcome. Cannot fail by design; if it ever does, the run says so and can be resumed rather
    than exit 0 with records left behind."""
    if ending.status is not RunStatus.COMPLETED:
        return ending
    lost = total - journal.count_done()
    if lost <= 0:
        return ending
    return Ending(
        RunStatus.ABORTED,
        f"{lost} of {total} records have no outcome although the whole file was read (a fault "
        "of customer-import: please report it); run again with --resume to finish them",
    )
