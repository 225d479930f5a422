"""customer-import: load a merchant's customer export, validate it, upsert it through the API.

The public names are imported lazily, so ``python -m customer_import.sandbox`` starts
without loading Polars and the rest of the pipeline.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from customer_import.version import __version__ as __version__

if TYPE_CHECKING:
    from customer_import.config import JobConfig, load_job
    from customer_import.contracts import RunReport
    from customer_import.errors import (
        ConfigError,
        FatalApiError,
        ImportJobError,
        InputError,
        RunAborted,
    )
    from customer_import.run.options import RunOptions
    from customer_import.runner import run_job

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

_HOMES = {
    "JobConfig": "config",
    "load_job": "config",
    "ConfigError": "errors",
    "FatalApiError": "errors",
    "ImportJobError": "errors",
    "InputError": "errors",
    "RunAborted": "errors",
    "RunOptions": "run.options",
    "RunReport": "contracts",
    "run_job": "runner",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'customer_import' has no attribute {name!r}")
    return getattr(importlib.import_module(f"customer_import.{_HOMES[name]}"), name)
