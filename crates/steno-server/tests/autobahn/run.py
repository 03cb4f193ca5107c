"""Autobahn's WebSocket conformance cases (through kosoku) against a server
under test; verdicts compared with tests/autobahn/expected.json.

Run by scripts/autobahn.sh, which starts the server (examples/autobahn_echo.rs,
steno's WebSocket stack with an echo in place of the audio pipeline).

A regression is a case whose message exchange or closing handshake passed
in expected.json and does not pass now, or a passing case that did not run:
the run then exits 1. Other changes (a case that now
passes, a different failing verdict) are reported; `--update` writes the new
verdicts as the expected ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from kosoku import FailureError, run_fuzzingclient

PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


def verdicts(results) -> dict[str, dict]:
    out = {}
    for r in results:
        behavior = r.behavior.value
        behavior_close = r.behavior_close.value
        out[r.case_id] = {
            "behavior": behavior,
            "behavior_close": behavior_close,
            "remote_close_code": r.remote_close_code,
            "passed": behavior in PASSING and behavior_close in PASSING,
        }
    return dict(sorted(out.items(), key=lambda kv: [int(p) for p in kv[0].split(".")]))


async def run_cases(url: str, include, exclude, parallelism: int, limit_s: float):
    try:
        results = await asyncio.wait_for(
            run_fuzzingclient(url, include, exclude, concurrency=parallelism), limit_s
        )
    except FailureError as failure:
        results = failure.results
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url", help="ws://127.0.0.1:PORT/ of the server under test")
    p.add_argument("--expected", type=Path, required=True)
    p.add_argument("--include", action="append", help="case id or glob (repeatable)")
    p.add_argument("--exclude", action="append", help="case id or glob (repeatable)")
    p.add_argument("--parallelism", type=int, default=2)
    p.add_argument("--limit-s", type=float, default=600.0, help="whole-run time limit")
    p.add_argument("--results", type=Path, help="write this run's verdicts here")
    p.add_argument("--update", action="store_true", help="write the verdicts to --expected")
    a = p.parse_args()

    started = time.monotonic()
    results = asyncio.run(run_cases(a.url, a.include, a.exclude, a.parallelism, a.limit_s))
    elapsed = time.monotonic() - started
    now = verdicts(results)
    passed = sum(v["passed"] for v in now.values())
    by_verdict: dict[str, int] = {}
    for v in now.values():
        key = f'{v["behavior"]}/{v["behavior_close"]}'
        by_verdict[key] = by_verdict.get(key, 0) + 1
    print(f"autobahn: {len(now)} cases in {elapsed:.1f} s, {passed} passed")
    for key, n in sorted(by_verdict.items()):
        print(f"  {n:4d}  {key}")

    document = {
        "tool": "kosoku 0.1.0 (Autobahn TestSuite cases), fuzzingclient mode",
        "server": "examples/autobahn_echo.rs: steno's WebSocket stack with Config::default() limits",
        "include": a.include or [],
        "exclude": a.exclude or [],
        "cases": now,
    }
    if a.results:
        a.results.parent.mkdir(parents=True, exist_ok=True)
        a.results.write_text(json.dumps(document, indent=1) + "\n")
    if a.update:
        a.expected.write_text(json.dumps(document, indent=1) + "\n")
        print(f"wrote {a.expected}")
        return 0

    expected = json.loads(a.expected.read_text())["cases"]
    regressions, changes = [], []
    for case, want in expected.items():
        got = now.get(case)
        if got is None:
            # A partial run (--include/--exclude) checks only what it ran.
            if want["passed"] and not (a.include or a.exclude):
                regressions.append(f"{case}: passed before, did not run now")
            continue
        was = f'{want["behavior"]}/{want["behavior_close"]}'
        is_ = f'{got["behavior"]}/{got["behavior_close"]}'
        # Each half on its own: a case whose close is a known failure still
        # guards its message exchange, and the other way round.
        worse = [
            key
            for key in ("behavior", "behavior_close")
            if want[key] in PASSING and got[key] not in PASSING
        ]
        if worse:
            regressions.append(
                f"{case}: was {was}, now {is_} (close code {got['remote_close_code']})"
            )
        elif was != is_:
            changes.append(f"{case}: {was} -> {is_}")
    for case in now.keys() - expected.keys():
        changes.append(f"{case}: not in {a.expected.name} (run with --update to record it)")
    for c in changes:
        print(f"  changed: {c}")
    if regressions:
        print(f"autobahn: {len(regressions)} regression(s):")
        for r in regressions:
            print(f"  REGRESSION {r}")
        return 1
    print(f"autobahn: no regression against {a.expected}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # kosoku's native runtime can abort while the interpreter tears down;
    # the verdict is already decided, so leave without the teardown.
    os._exit(code)
