"""Where the job's time goes: py-spy samples of one ``customer-import run``, summarised.

    .venv/bin/python bench/profile_job.py --mode send --records 20000        # against a sandbox
    .venv/bin/python bench/profile_job.py --mode dry --records 200000        # --dry-run
    .venv/bin/python bench/profile_job.py --raw out.txt --summarise-only     # an existing profile

py-spy is not a project dependency: install it where you like (``pip install py-spy``) and pass
``--py-spy PATH`` unless it is on PATH. Samples of every thread are taken (idle ones left out);
the summary gives the share of samples per thread, per package (self time: the frame that was
running) and per function of the job (inclusive: anywhere on the stack).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from common import child_env, log, sandbox, work_dir
from data import write_csv, write_job


@dataclass(slots=True)
class Profile:
    samples: int = 0
    threads: Counter[str] = field(default_factory=Counter)
    packages: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    leaves: Counter[str] = field(default_factory=Counter)


def _package(frame: str) -> str:
    """'send (httpx/_client.py:1)' -> 'httpx'; stdlib modules by their file or package name."""
    where = frame.rsplit("(", 1)[-1].rstrip(")")
    path = where.rsplit(":", 1)[0]
    if path.startswith("<"):
        return path
    return path.split("/")[0].removesuffix(".py")


def _function(frame: str) -> str:
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})"


def _thread_kind(frames: list[str]) -> str:
    joined = ";".join(frames)
    if "BatchPreparer.prepare" in joined:
        return "validating threads (two)"
    if "concurrent/futures/thread.py" in joined:
        return "executor threads (reading, journal, hand-over)"
    if "Thread._bootstrap" in joined:
        return "other thread"
    return "main thread (event loop)"


def summarise(raw: Path) -> Profile:
    """Counts from py-spy's raw (collapsed) format: 'thread (id);frame;frame... count'."""
    profile = Profile()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames, count = stack.split(";")[1:], int(count_text)
        if not frames:
            continue
        profile.samples += count
        profile.threads[_thread_kind(frames)] += count
        profile.packages[_package(frames[-1])] += count
        profile.leaves[_function(frames[-1])] += count
        for function in {_function(f) for f in frames}:
            if "customer_import/" in function:
                profile.own[function] += count
            profile.inclusive[function] += count
    return profile


def report(profile: Profile, top: int) -> str:
    total = profile.samples or 1
    lines = [f"{profile.samples} samples (idle threads left out)", "", "by thread:"]
    lines += [f"  {n / total:6.1%}  {k}" for k, n in profile.threads.most_common()]
    lines += ["", "self time by package:"]
    lines += [f"  {n / total:6.1%}  {k}" for k, n in profile.packages.most_common(top)]
    lines += ["", "job functions, inclusive:"]
    lines += [f"  {n / total:6.1%}  {k}" for k, n in profile.own.most_common(top)]
    lines += ["", "self time by function:"]
    lines += [f"  {n / total:6.1%}  {k}" for k, n in profile.leaves.most_common(top)]
    return "\n".join(lines)


def record(args: argparse.Namespace, raw: Path) -> None:
    py_spy = args.py_spy or shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy not found: pip install py-spy, then pass --py-spy PATH")
    with work_dir(keep=args.keep) as work:
        csv = write_csv(work / "profile.csv", args.records)
        job = write_job(work / "profile.toml", csv, work / "out", concurrency=args.concurrency)
        command = [py_spy, "record", "--threads", "--format", "raw", "--rate", str(args.rate)]
        command += ["--output", str(raw), "--", sys.executable, "-m", "customer_import", "run"]
        command += [str(job), "--no-progress", "--out", str(work / "out-profile")]
        if args.mode == "dry":
            _run([*command, "--dry-run"])
            return
        with sandbox(latency_ms=args.latency_ms or None) as server:
            _run([*command, "--base-url", server.base_url])


def _run(command: list[str]) -> None:
    log("$ " + " ".join(command))
    subprocess.run(command, env=child_env(), check=True, timeout=900)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("send", "dry"), default="send")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--py-spy", help="path of the py-spy executable")
    parser.add_argument("--raw", type=Path, default=Path("bench/results/profile.txt"))
    parser.add_argument("--summarise-only", action="store_true")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    args.raw.parent.mkdir(parents=True, exist_ok=True)
    if not args.summarise_only:
        record(args, args.raw)
    print(report(summarise(args.raw), args.top))


if __name__ == "__main__":
    main()
