"""What the Python tests share: the eprof binary, a data directory, runs, JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def required_env(name: str) -> str:
    """A variable the test cannot run without: missing is a failure, never a skip."""
    v = os.environ.get(name)
    if not v:
        sys.exit(f"FAIL: ${name} is not set (scripts/test.sh sets it)")
    return v


BIN = str((ROOT / required_env("EPROF_BIN")).resolve())


class Eprof:
    """The eprof binary on one data directory."""

    def __init__(self, home: Path):
        self.home = home

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run(
            [BIN, "--data-dir", str(self.home), *args],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and p.returncode != 0:
            raise AssertionError(
                f"eprof {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
            )
        return p

    def json(self, *args: str):
        return json.loads(self.run(*args).stdout)

    def record(self, *args: str) -> str:
        """Record one run (quiet, JSON) and return its id."""
        v = self.json(
            "record",
            "Give me three tips for staying healthy.",
            "--idle-ms",
            "20",
            "--quiet",
            "--json",
            *args,
        )
        return v["id"]


def close(a: float, b: float, rel: float = 1e-9) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


checks = 0


def check(cond: bool, what: str) -> None:
    global checks
    if not cond:
        raise AssertionError(what)
    checks += 1
