"""Lint infra/ferry-policy.json with parliament; fail on any finding not justified.

    python scripts/lib/parliament_check.py POLICY JUSTIFIED

Runs `parliament --json` on POLICY and reads JUSTIFIED (YAML: a list of
{issue, sid, actions, why}). A finding is identified by its issue id, the Sid of
the statement it is about and the actions it names; each must match exactly one
justified entry, and each entry must still match a finding (a justification left
behind after the policy changed fails too). infra/README.md explains each entry.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import yaml


def statement_starts(path: str) -> list[tuple[int, str]]:
    """(line of the statement's opening brace, its Sid), in file order."""
    starts = []
    with open(path) as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines, start=1):
        m = re.match(r'\s*"Sid":\s*"([^"]+)"', line)
        if m:
            starts.append((i - 1, m.group(1)))
    return starts


def sid_at(starts: list[tuple[int, str]], line: int) -> str:
    best = "?"
    for start, sid in starts:
        if start <= line:
            best = sid
    return best


def actions_of(detail: object) -> list[str]:
    out = []
    for item in detail if isinstance(detail, list) else [detail]:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and "action" in item:
            out.append(str(item["action"]))
    return sorted(set(out))


def main() -> int:
    policy, justified_path = sys.argv[1], sys.argv[2]
    parliament = os.path.join(os.path.dirname(sys.executable), "parliament")
    run = subprocess.run([parliament, "--json", "--files", policy], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, check=False)
    if run.returncode not in (0, 1) or run.stderr.strip():
        print(f"parliament failed ({run.returncode}):\n{run.stderr}", file=sys.stderr)
        return 2
    with open(justified_path) as f:
        justified = yaml.safe_load(f) or []
    wanted = {(j["issue"], j["sid"], tuple(sorted(j["actions"]))): j for j in justified}
    starts = statement_starts(policy)
    seen = set()
    problems = []
    for line in run.stdout.splitlines():
        if not line.strip():
            continue
        finding = json.loads(line)
        key = (finding["issue"], sid_at(starts, int(finding["location"].get("line", 0))),
               tuple(actions_of(finding["detail"])))
        if key in wanted:
            seen.add(key)
            print(f"justified: {key[0]} {key[1]} {', '.join(key[2])}")
        else:
            problems.append(f"not justified: {finding['severity']} {key[0]} ({finding['title']}) in {key[1]}: "
                            f"{finding['detail']}")
    for key in wanted:
        if key not in seen:
            problems.append(f"justified but not found (remove it from {justified_path}): {key}")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"fix the policy, or justify the finding in {justified_path} and infra/README.md", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
