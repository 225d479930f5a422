"""customer-import: load a merchant's customer export, validate it, upsert it through the API."""

from customer_import.config import JobConfig, load_job
from customer_import.errors import (
    ConfigError,
    FatalApiError,
    ImportJobError,
    InputError,
    RunAborted,
)
from customer_import.pipeline import RunOptions, RunReport, run_job

__all__ = [
    "ConfigError",
    "FatalApiError",
    "ImportJobError",
    "InputError",
    "JobConfig",
    "RunAborted",
    "RunOptions",
    "RunReport",
    "load_job",
    "run_job",
]
__version__ = "0.1.0"
