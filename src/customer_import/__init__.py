"""customer-import: load a merchant's customer export, validate it, upsert it through the API.

The public names are imported lazily, so ``python -m customer_import.sandbox`` starts
without loading Polars and the rest of the pipeline.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "JobConfig": "config",
    "load_job": "config",
    "ConfigError": "errors",
    "FatalApiError": "errors",
    "ImportJobError": "errors",
    "InputError": "errors",
    "RunAborted": "errors",
    "RunOptions": "pipeline",
    "RunReport": "pipeline",
    "run_job": "pipeline",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'customer_import' has no attribute {name!r}")
    return getattr(importlib.import_module(f"customer_import.{_HOMES[name]}"), name)
