#!/usr/bin/env python3
"""Helpers for scripts/autobahn; run with the test virtualenv's Python.

    autobahn_verdict.py count URL
        Ask a running kosoku fuzzing server how many cases it serves
        (its /getCaseCount endpoint) and print the number.

    autobahn_verdict.py verdict --outdir DIR --agent NAME --expected N \
            [--cases LIST] [--exclude LIST]
        Read DIR/index.json written by the fuzzing server and judge it: print
        a per-group table and every failing case, and exit 0 only when the
        report holds exactly N cases for NAME and every one passed.

A case passes when both its `behavior` and its `behaviorClose` are one of OK,
NON-STRICT or INFORMATIONAL (the same rule as Autobahn's and kosoku's).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
from collections import Counter, defaultdict

PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


def split_list(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def sort_key(case_id: str) -> list[int]:
    return [int(p) if p.isdigit() else 0 for p in case_id.split(".")]


def cmd_count(args: argparse.Namespace) -> int:
    from websockets.sync.client import connect

    url = args.url.rstrip("/") + "/getCaseCount"
    with connect(url, compression=None, open_timeout=10, close_timeout=2) as ws:
        text = ws.recv(timeout=10)
    print(int(text))
    return 0


def selected_case_ids(cases: list[str], exclude: list[str]) -> list[str] | None:
    """The ids kosoku's own case index holds for this selection, or None if
    that index can't be read (only used to name missing cases)."""
    try:
        from kosoku.cases import CASES  # type: ignore[import-not-found]
    except Exception:  # pragma: no cover - depends on kosoku internals
        return None
    ids = list(CASES)
    if cases:
        ids = [i for i in ids if any(fnmatch.fnmatchcase(i, p) for p in cases)]
    return [i for i in ids if not any(fnmatch.fnmatchcase(i, p) for p in exclude)]


def describe_failure(outdir: str, case_id: str, entry: dict) -> list[str]:
    lines = [
        f"  {case_id:<9} behavior={entry.get('behavior')}  "
        f"behaviorClose={entry.get('behaviorClose')}  "
        f"remoteCloseCode={entry.get('remoteCloseCode')}  "
        f"duration={entry.get('duration')}ms"
    ]
    report = entry.get("reportfile")
    if report:
        path = os.path.join(outdir, report)
        try:
            with open(path, encoding="utf-8") as f:
                case = json.load(f)
        except (OSError, ValueError):
            case = {}
        first_line = (case.get("description") or "").strip().splitlines()
        if first_line:
            lines.append(f"            case:        {first_line[0][:150]}")
        if case.get("expectation"):
            lines.append(f"            expectation: {case['expectation'].strip()[:150]}")
        if case.get("result"):
            lines.append(f"            result:      {case['result']}")
        if case.get("resultClose"):
            lines.append(f"            resultClose: {case['resultClose']}")
        lines.append(f"            report:      {path[:-5]}.html")
    return lines


def cmd_verdict(args: argparse.Namespace) -> int:
    index_path = os.path.join(args.outdir, "index.json")
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except FileNotFoundError:
        print(f"autobahn: FAILED: no report at {index_path}", file=sys.stderr)
        return 1

    if args.agent not in index:
        print(
            f"autobahn: FAILED: agent {args.agent!r} not in {index_path} "
            f"(agents there: {', '.join(sorted(index)) or 'none'})",
            file=sys.stderr,
        )
        return 1
    results: dict = index[args.agent]
    ids = sorted(results, key=sort_key)

    by_group: dict[str, Counter] = defaultdict(Counter)
    verdicts: Counter = Counter()
    failing: list[str] = []
    lenient: list[str] = []
    for case_id in ids:
        entry = results[case_id]
        group = case_id.split(".")[0]
        behavior, close = entry.get("behavior"), entry.get("behaviorClose")
        verdicts[(behavior, close)] += 1
        ok = behavior in PASSING and close in PASSING
        by_group[group]["cases"] += 1
        by_group[group]["passed" if ok else "failed"] += 1
        if not ok:
            failing.append(case_id)
        elif behavior != "OK" or close != "OK":
            lenient.append(f"{case_id}({behavior}/{close})")

    print(f"Autobahn report for agent {args.agent!r}: {index_path}")
    print(f"  {'group':<6} {'cases':>5} {'passed':>6} {'failed':>6}")
    for group in sorted(by_group, key=int):
        c = by_group[group]
        print(f"  {group:<6} {c['cases']:>5} {c['passed']:>6} {c['failed']:>6}")
    print(f"  {'total':<6} {len(ids):>5} {len(ids) - len(failing):>6} {len(failing):>6}")
    print("  verdicts (behavior/behaviorClose): " + ", ".join(
        f"{b}/{c}={n}" for (b, c), n in sorted(verdicts.items(), key=lambda kv: -kv[1])
    ))
    if lenient:
        print(f"  passed but not OK/OK ({len(lenient)}): " + " ".join(lenient))

    problems = 0
    if failing:
        problems += 1
        print(f"\nFailing cases ({len(failing)}):")
        for case_id in failing:
            for line in describe_failure(args.outdir, case_id, results[case_id]):
                print(line)

    if len(ids) != args.expected:
        problems += 1
        print(
            f"\nautobahn: the report holds {len(ids)} cases, the fuzzing server "
            f"served {args.expected}"
        )
        wanted = selected_case_ids(split_list(args.cases), split_list(args.exclude))
        if wanted is not None:
            missing = [i for i in wanted if i not in results]
            if missing:
                shown = " ".join(missing[:40]) + (" ..." if len(missing) > 40 else "")
                print(f"  missing from the report ({len(missing)}): {shown}")

    if problems:
        print(
            f"autobahn: FAILED: {len(failing)} of {len(ids)} cases failed, "
            f"{args.expected} expected"
        )
        return 1
    print(f"autobahn: all {len(ids)} of {args.expected} cases passed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p_count = sub.add_parser("count", help="ask the fuzzing server for its case count")
    p_count.add_argument("url", help="ws://HOST:PORT of the fuzzing server")
    p_count.set_defaults(func=cmd_count)

    p_verdict = sub.add_parser("verdict", help="judge DIR/index.json")
    p_verdict.add_argument("--outdir", required=True)
    p_verdict.add_argument("--agent", required=True)
    p_verdict.add_argument("--expected", type=int, required=True,
                           help="number of cases the run must have reported")
    p_verdict.add_argument("--cases", default="", help="comma-separated globs (informative)")
    p_verdict.add_argument("--exclude", default="", help="comma-separated globs (informative)")
    p_verdict.set_defaults(func=cmd_verdict)

    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
