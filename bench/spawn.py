"""Run a command and write its kernel-measured CPU and peak RSS to a JSON file.

    python -I bench/spawn.py REPORT.json -- COMMAND ARGS...

Why a go-between: Linux carries the high-water RSS of the memory a process replaces at exec
into that process's ru_maxrss. A child spawned straight from the benchmark process (vfork or
fork, then exec) therefore reports at least the benchmark's own peak, which holds the generated
data. This small process has a fresh, small memory of its own, so the command it starts reports
its own peak. SIGTERM and SIGINT are passed on to the command. Standard library only, and run
with ``-I`` so nothing else is imported.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    report, separator, *command = sys.argv[1:]
    if separator != "--" or not command:
        raise SystemExit(__doc__)
    started = time.perf_counter()
    child = subprocess.Popen(command)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: child.send_signal(number))
    while True:
        try:
            _, status, usage = os.wait4(child.pid, 0)
            break
        except InterruptedError:  # pragma: no cover - retried by Python itself since 3.5
            continue
    child.returncode = os.waitstatus_to_exitcode(status)
    facts = {
        "returncode": child.returncode,
        "wall_s": time.perf_counter() - started,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_rss_kb": usage.ru_maxrss,
    }
    Path(report).write_text(json.dumps(facts), encoding="utf-8")
    return child.returncode if child.returncode >= 0 else 128 - child.returncode


if __name__ == "__main__":
    sys.exit(main())
