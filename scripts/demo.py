"""`make demo`: the sandbox on a free port, the demo job against it, the summary, then stop.

The sandbox keeps its data in out/demo-sandbox.sqlite, so a second `make demo` shows
updates instead of creates. Exits 0 when the job completed (the sample data has rejects
on purpose), non-zero otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from customer_import.sandbox.testing import SandboxServer

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "jobs" / "demo.toml"
SANDBOX_DB = ROOT / "out" / "demo-sandbox.sqlite"
DEMO_KEY, DEMO_MERCHANT = "demo-key", "demo-merchant"


def main() -> int:
    SANDBOX_DB.parent.mkdir(parents=True, exist_ok=True)
    with SandboxServer(api_key=DEMO_KEY, merchant_id=DEMO_MERCHANT, db=SANDBOX_DB) as sandbox:
        print(f"sandbox started at {sandbox.base_url} (data in {SANDBOX_DB.relative_to(ROOT)})")
        env = {**os.environ, "CUSTOMERS_API_KEY": DEMO_KEY, "CUSTOMERS_MERCHANT_ID": DEMO_MERCHANT}
        command = [
            sys.executable,
            "-m",
            "customer_import",
            "run",
            str(JOB),
            "--base-url",
            sandbox.base_url,
            "--no-progress",
        ]
        print("$ customer-import run jobs/demo.toml --base-url", sandbox.base_url)
        code = subprocess.run(command, env=env, check=False).returncode
        print(f"the sandbox now holds {len(sandbox.customers())} customers")
    print("sandbox stopped")
    return 0 if code in (0, 1) else code


if __name__ == "__main__":
    sys.exit(main())
