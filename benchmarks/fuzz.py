"""Long fuzzing of every reader: each for minutes, counting the inputs it tried.

    .venv/bin/python benchmarks/fuzz.py                  # 2 minutes a reader (make fuzz)
    .venv/bin/python benchmarks/fuzz.py --minutes 0.2 --reader idx --no-record

Runs the suite's targets (``tests/test_fuzz_readers.py``: random bytes and valid files with
bytes changed and cut) in rounds of hypothesis examples until each reader's time is spent. A
reader passes when only its documented error escaped every input; the first failure is printed
with its input and counted. Records a table in the "Fuzzing the readers" section of
docs/reliability.md. There is no baseline to compare with: the figure is how many inputs
each reader survived.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings

from common import REPO, cpu_model, record_section

sys.path.insert(0, str(REPO / "tests"))
from test_fuzz_readers import TARGETS, Target, check

ROUND = 500  # examples a hypothesis run; rounds repeat until the time is spent
RELIABILITY_MD = REPO / "docs" / "reliability.md"


def fuzz_for(target: Target, seconds: float) -> tuple[int, str | None]:
    """(inputs tried, the first failure or None) for ``seconds`` of fuzzing ``target``."""
    tried = 0

    @settings(
        max_examples=ROUND,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(target.inputs)
    def one(data: bytes) -> None:
        nonlocal tried
        tried += 1
        check(target, data)

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            one()
        except Exception as error:  # a reader let an undocumented error escape
            return tried, f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    return tried, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="per reader (default 2)")
    parser.add_argument("--reader", action="append", choices=sorted(TARGETS))
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [
        "| reader | inputs tried | minutes | escaped (undocumented errors) |",
        "|---|---:|---:|---|",
    ]
    for name in args.reader or sorted(TARGETS):
        tried, failure = fuzz_for(TARGETS[name], args.minutes * 60)
        print(f"{name}: {tried:,} inputs, {failure or 'none escaped'}", flush=True)
        rows.append(f"| {name} | {tried:,} | {args.minutes:g} | {failure or 'none'} |")
    command = f"`.venv/bin/python benchmarks/fuzz.py --minutes {args.minutes:g}`"
    section = [
        "## Fuzzing the readers",
        f"Machine: {cpu_model()}, 1 torch thread, torch {torch.__version__}; {command}.",
        "",
        *rows,
    ]
    if not args.no_record:
        record_section(section, Path(RELIABILITY_MD))
        print(f"recorded in {RELIABILITY_MD}")


if __name__ == "__main__":
    main()
