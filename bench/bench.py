"""ferry against the bash + aws CLI runbook, side by side on one AWS emulator.

    python bench/bench.py --ferry target/release/ferry --aws target/bench-venv/bin/aws \
        --pg-url postgres://postgres@127.0.0.1:5432/postgres --out target/bench [--quick]

scripts/bench installs everything and calls this with the emulator venv's
python (boto3 for the set-up). What it does:

1. Starts tests/emulator/server.py with exact timings: a snapshot becomes
   `available` S s after CreateDBClusterSnapshot, a task starts at once
   (task_start_seconds = 0) and its command, bench/logger.py, runs T s writing
   one line every 100 ms, each with a sequence number and its write time.
2. For each S/T pair, on one fresh cluster + migration stack: bench/runbook.sh
   (the reference runbooks' aws CLI way), then `ferry deploy`. Every output
   line of either is stamped with its arrival time by a reader thread on the
   pipe (stdout and stderr merged).
3. Ground truth from the emulator: when the snapshot became available
   (/_emulator/snapshots ready_at), when the task stopped (/_emulator/tasks
   stoppedAt), and every API call it answered (/_emulator/calls).
4. Startup: `ferry --version`, `ferry plan` and one `aws rds
   describe-db-clusters`, each averaged over several runs.
5. Scale: N concurrent `ferry deploy`s, each with its own cluster, stack (ECS
   cluster, task family, log group) and project directory.
6. The failed-migration path: the fixture's Alembic migration failing halfway
   (FERRY_FIXTURE_FAIL=1), then the database restored from the pre-deploy
   snapshot under its own name: bench/runbook.sh followed at once by
   bench/restore.sh (restore, instance, the two renames, each with the CLI's
   waiter) against `ferry deploy`'s automatic restore, with timed states for
   the restore, the instance and the renames. Ground truth for each state
   change: the call that started it (the call log) plus its timed state.
7. The local no-op deploy: `ferry deploy` of the migration `true` on the
   quickstart's SQLite against running `true` directly.

Writes results.json and report.md under --out and prints the report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from typing import Any

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# Not us-east-1: there the aws CLI v1 sends RDS calls to https://rds.amazonaws.com
# unless --endpoint-url is given (it ignores AWS_ENDPOINT_URL), and the runbook
# should stay as teams write it. The emulator serves any region alike.
REGION = "eu-west-1"
LOG_LINE = re.compile(rb"bench-log seq=(\d+) t=(\d+\.\d+)")
LOG_INTERVAL = 0.1

# The line each tool prints when it has noticed a state change.
MARKERS = {
    "bash": {"snapshot": re.compile(rb"==> Snapshot \S+ is available"), "task": re.compile(rb"==> Migration task stopped")},
    "ferry": {"snapshot": re.compile(rb"snapshot \S+ available"), "task": re.compile(rb"exited with code")},
}
# Callers that are the harness itself, not the tool measured.
HARNESS_AGENTS = ("Boto3/", "Python-urllib/")

# What a run does, in this order (--only picks some).
PHASES = ("pairs", "restore", "noop", "startup", "scale")

# The restore path's timed states (s): RestoreDBClusterFromSnapshot, CreateDBInstance, each rename,
# a ModifyDBCluster of other settings. Not multiples of the CLI waiters' 30 s, so bash gets no best case.
RESTORE_TIMINGS = {"restore_seconds": 20.0, "instance_seconds": 20.0, "rename_seconds": 10.0, "modify_seconds": 5.0}

# CloudWatch Logs GetLogEvents: 10 TPS per account; RDS: ~12 TPS sustained (DESIGN.md).
BUDGETS = {"logs:GetLogEvents": 10.0, "rds:*": 12.0}


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# -- emulator --------------------------------------------------------------------------------


class Emulator:
    def __init__(self, python: str, pg_url: str, workdir: str) -> None:
        self.log_path = os.path.join(workdir, "emulator.log")
        self.proc = subprocess.Popen(
            [python, os.path.join(REPO, "tests", "emulator", "server.py"), "--port", "0", "--pg-url", pg_url,
             "--exit-on-stdin-eof", "--task-cwd", workdir],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.log_path, "wb"),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("READY "):
            with open(self.log_path) as f:
                sys.exit(f"bench: the emulator did not start ({line!r}):\n{f.read()}")
        self.url = line.split(" ", 1)[1]

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return json.load(r)

    def configure(self, **values: Any) -> None:
        req = urllib.request.Request(self.url + "/_emulator/config", data=json.dumps(values).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def wait(what: str, check: Any, limit: float = 300) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.2)
    sys.exit(f"bench: {what} did not happen within {limit:.0f}s")


def make_scenarios(emu: Emulator, names: list[str], logger_cmd: list[str]) -> list[dict[str, str]]:
    """An Aurora cluster `<name>-db` and the migration stack `<name>-stack`
    (infra/migration-stack.yaml: ECS cluster, task family, log group) per name."""
    rds = client("rds", emu.url)
    cfn = client("cloudformation", emu.url)
    with open(os.path.join(REPO, "infra", "migration-stack.yaml")) as f:
        template = f.read()
    out = []
    for name in names:
        cluster = f"{name}-db"
        rds.create_db_cluster(DBClusterIdentifier=cluster, Engine="aurora-postgresql", EngineVersion="15.4",
                              MasterUsername="app", MasterUserPassword="not-used-by-the-emulator",
                              DatabaseName="app")
        rds.create_db_instance(DBInstanceIdentifier=f"{cluster}-1", DBClusterIdentifier=cluster,
                               DBInstanceClass="db.r6g.large", Engine="aurora-postgresql")
        endpoint = rds.describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"][0]["Endpoint"]
        cfn.create_stack(
            StackName=f"{name}-stack", TemplateBody=template, Capabilities=["CAPABILITY_NAMED_IAM"],
            Parameters=[
                {"ParameterKey": "AppName", "ParameterValue": name},
                {"ParameterKey": "ImageUri", "ParameterValue": "app-migrations:latest"},
                {"ParameterKey": "DatabaseUrl", "ParameterValue": f"postgresql://app@{endpoint}:5432/app"},
                {"ParameterKey": "MigrationCommand", "ParameterValue": ",".join(logger_cmd)},
            ],
        )
        out.append({"name": name, "db_cluster": cluster, "stack": f"{name}-stack", "ecs_cluster": f"{name}-migrations"})
    for s in out:
        wait(f"stack {s['stack']}", lambda s=s: cfn.describe_stacks(StackName=s["stack"])["Stacks"][0]["StackStatus"]
             == "CREATE_COMPLETE")
        wait(f"cluster {s['db_cluster']}", lambda s=s: rds.describe_db_clusters(
            DBClusterIdentifier=s["db_cluster"])["DBClusters"][0]["Status"] == "available")
        wait(f"instance {s['db_cluster']}-1", lambda s=s: rds.describe_db_instances(
            DBInstanceIdentifier=f"{s['db_cluster']}-1")["DBInstances"][0]["DBInstanceStatus"] == "available")
    return out


# -- running a tool ----------------------------------------------------------------------------


def tool_env(endpoint: str, home: str, aws_bin_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FERRY_CONFIG", "GITHUB_ACTIONS", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE")}
    env.update({
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.path.join(home, "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "aws-credentials"),
        "AWS_PAGER": "", "HOME": home, "PATH": aws_bin_dir + os.pathsep + env.get("PATH", ""),
    })
    return env


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


def _hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for ln in fh:
                if ln.startswith("VmHWM:"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return 0


class Timed:
    """A process whose merged stdout/stderr lines are stamped on arrival.

    CPU seconds come from wait4 (the process and the descendants it waited
    for). Peak RSS does not: a child forked from this (large) Python process
    inherits its RSS high-water mark into ru_maxrss, so the peak is sampled
    instead, every 50 ms, as the largest VmHWM (peak RSS since exec) of any
    process in the tree.
    """

    def __init__(self, argv: list[str], cwd: str, env: dict[str, str]) -> None:
        self.argv = argv
        self.lines: list[tuple[float, bytes]] = []
        self.start = time.time()
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.end = 0.0
        self.exit_code: int | None = None
        self.maxrss_mib = 0.0
        self.cpu_s = 0.0
        self._done = threading.Event()
        self._hwm_kib = 0
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()

    def _sample(self) -> None:
        while not self._done.is_set():
            stack, tree = [self.proc.pid], []
            while stack:
                pid = stack.pop()
                tree.append(pid)
                stack.extend(_children(pid))
            self._hwm_kib = max([self._hwm_kib, *(_hwm_kib(pid) for pid in tree)])
            self._done.wait(0.05)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self.lines.append((time.time(), raw))

    def wait(self) -> Timed:
        _, status, ru = os.wait4(self.proc.pid, 0)
        self.end = time.time()
        self.exit_code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.exit_code
        self._done.set()
        self.maxrss_mib = self._hwm_kib / 1024
        self.cpu_s = ru.ru_utime + ru.ru_stime
        # A killed background child (the log follower's last call) may hold the pipe a little longer.
        self.reader.join(timeout=15)
        return self

    @property
    def wall(self) -> float:
        return self.end - self.start

    def text(self) -> str:
        return b"".join(raw for _, raw in self.lines).decode("utf-8", "replace")


def ferry_project(root: str, scen: dict[str, str], command: list[str], extra: str = "") -> str:
    d = os.path.join(root, "projects", scen["name"])
    os.makedirs(d, exist_ok=True)
    toml = f"""project = "{scen['name']}"

[env.bench]
region = "{REGION}"
stack = "{scen['stack']}"
database = {{ cluster = "{scen['db_cluster']}" }}
timeouts = {{ snapshot = "15m", migration = "15m", restore = "15m", service = "5m" }}
{extra}
[env.bench.migration]
cluster = "${{output:ClusterName}}"
task_definition = "${{output:MigrationTaskDefinitionArn}}"
subnets = "${{output:PrivateSubnetIds}}"
security_groups = ["${{output:MigrationSecurityGroupId}}"]
container = "migrate"
command = {json.dumps(command)}
"""
    with open(os.path.join(d, "ferry.toml"), "w") as f:
        f.write(toml)
    return d


# -- analysis ------------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def log_stats(run: Timed, expected: int) -> dict[str, Any]:
    seen: Counter[int] = Counter()
    latencies = []
    for arrived, raw in run.lines:
        m = LOG_LINE.search(raw)
        if not m:
            continue
        seq = int(m.group(1))
        seen[seq] += 1
        if seen[seq] == 1:
            latencies.append(arrived - float(m.group(2)))
    return {
        "expected": expected,
        "printed": sum(seen.values()),
        "lost": sum(1 for n in range(1, expected + 1) if n not in seen),
        "duplicated": sum(c - 1 for c in seen.values()),
        "latency_p50_s": pct(latencies, 50),
        "latency_p95_s": pct(latencies, 95),
        "latency_max_s": max(latencies) if latencies else None,
    }


def tool_calls(emu: Emulator, start: float, end: float, calls: list[list[Any]] | None = None) -> list[list[Any]]:
    """The calls the tools made between start and end (`calls`: an earlier fetch covering them)."""
    if calls is None:
        calls = emu.get(f"/_emulator/calls?since={start - 0.001}")["calls"]
    return [c for c in calls if start <= c[0] <= end and not c[4].startswith(HARNESS_AGENTS)]


def by_operation(calls: list[list[Any]]) -> dict[str, int]:
    return dict(sorted(Counter(f"{c[2]}:{c[3]}" for c in calls).items()))


def first_line_after(run: Timed, marker: re.Pattern[bytes], after: float) -> float | None:
    for arrived, raw in run.lines:
        if arrived >= after and marker.search(raw):
            return arrived
    return None


def first_call_seeing(calls: list[list[Any]], op: str, subject: str, after: float) -> float | None:
    """End time of the first `op` call about `subject` sent after the change:
    the state is a function of time, so that answer reported the new state."""
    for c in sorted(calls, key=lambda c: c[0]):
        if c[3] == op and c[0] >= after and subject in c[6]:
            return c[1]
    return None


def ground_truth(emu: Emulator, scen: dict[str, str], start: float, end: float) -> dict[str, Any]:
    snaps = [(sid, s) for sid, s in emu.get("/_emulator/snapshots").items()
             if s["cluster"] == scen["db_cluster"] and s.get("ready_at") and start <= s["ready_at"] <= end + 1]
    tasks = [(arn, t) for arn, t in emu.get("/_emulator/tasks").items()
             if f"/{scen['ecs_cluster']}/" in arn and t.get("startedAt") and start <= t["startedAt"] <= end]
    out: dict[str, Any] = {}
    if snaps:
        sid, s = snaps[-1]
        out.update(snapshot_id=sid, snapshot_ready_at=s["ready_at"], snapshot_status=s["status"])
    if tasks:
        arn, t = tasks[-1]
        out.update(task_arn=arn, task_started_at=t["startedAt"], task_stopped_at=t["stoppedAt"],
                   task_exit=[c["exitCode"] for c in t["containers"].values()])
    return out


def analyse(emu: Emulator, tool: str, run: Timed, scen: dict[str, str], s: float, t: float,
            fetched: list[list[Any]] | None = None) -> dict[str, Any]:
    truth = ground_truth(emu, scen, run.start, run.end)
    calls = tool_calls(emu, run.start, run.end, fetched)
    res: dict[str, Any] = {
        "tool": tool, "exit_code": run.exit_code, "wall_s": run.wall, "overhead_s": run.wall - s - t,
        "cpu_s": run.cpu_s, "maxrss_mib": run.maxrss_mib, "truth": truth,
        "logs": log_stats(run, round(t / LOG_INTERVAL)),
        "calls": by_operation(calls), "calls_total": len(calls),
    }
    if "snapshot_ready_at" in truth:
        ready = truth["snapshot_ready_at"]
        seen = first_line_after(run, MARKERS[tool]["snapshot"], ready)
        api = first_call_seeing(calls, "DescribeDBClusterSnapshots", truth["snapshot_id"], ready)
        res["snapshot_detect_output_s"] = None if seen is None else seen - ready
        res["snapshot_detect_api_s"] = None if api is None else api - ready
    if truth.get("task_stopped_at"):
        stopped = truth["task_stopped_at"]
        seen = first_line_after(run, MARKERS[tool]["task"], stopped)
        api = first_call_seeing(calls, "DescribeTasks", truth["task_arn"].rsplit("/", 1)[-1], stopped)
        res["task_detect_output_s"] = None if seen is None else seen - stopped
        res["task_detect_api_s"] = None if api is None else api - stopped
        res["task_ran_s"] = stopped - truth["task_started_at"]
        res["after_task_stop_s"] = run.end - stopped
    if "snapshot_ready_at" in truth:
        res["start_to_snapshot_ready_s"] = truth["snapshot_ready_at"] - run.start
        if truth.get("task_started_at"):
            res["snapshot_ready_to_task_start_s"] = truth["task_started_at"] - truth["snapshot_ready_at"]
    return res


def rates(calls: list[list[Any]], start: float, end: float) -> dict[str, dict[str, float]]:
    """Per operation (and all of RDS): mean calls/s over the window, the busiest
    1 s and the busiest 10 s (as calls/s)."""
    groups: dict[str, list[float]] = defaultdict(list)
    for c in calls:
        groups[f"{c[2]}:{c[3]}"].append(c[0])
        if c[2] == "rds":
            groups["rds:*"].append(c[0])
    span = max(end - start, 1e-9)
    out = {}
    for key, times in sorted(groups.items()):
        bins = Counter(int(x - start) for x in times)
        peak10 = max(sum(bins.get(b + i, 0) for i in range(10)) for b in range(int(span) + 1)) / 10
        out[key] = {"calls": len(times), "mean_per_s": len(times) / span, "peak_1s": max(bins.values()),
                    "peak_10s_per_s": peak10}
    return out


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def combine(runs: list[dict[str, Any]], top: bool = True) -> dict[str, Any]:
    """Repetitions of one tool at one S/T: numbers -> median (log lines lost,
    duplicated, expected and printed -> sums; the worst latency -> max)."""
    out: dict[str, Any] = {}
    for key, first in runs[0].items():
        values = [r[key] for r in runs if key in r]
        if isinstance(first, bool) or not values:
            out[key] = first
        elif isinstance(first, (int, float)) and all(isinstance(v, (int, float)) for v in values):
            out[key] = median([float(v) for v in values])
        elif isinstance(first, dict) and key != "truth":
            keys = sorted({k for v in values for k in v})
            out[key] = combine([{k: v.get(k, 0) for k in keys} for v in values], top=False)
        else:
            out[key] = first
    if not top:
        return out
    logs = [r["logs"] for r in runs]
    for k in ("expected", "printed", "lost", "duplicated"):
        out["logs"][k] = sum(x[k] for x in logs)
    out["logs"]["latency_max_s"] = max((x["latency_max_s"] or 0) for x in logs)
    out["exit_code"] = max(r["exit_code"] for r in runs)
    out["runs"] = len(runs)
    out["wall_each_s"] = [r["wall_s"] for r in runs]
    return out


# -- phases ------------------------------------------------------------------------------------


def side_by_side(emu: Emulator, args: argparse.Namespace, root: str, s: float, t: float, reps: int,
                 logger: list[str]) -> dict[str, Any]:
    """`reps` rounds of bash then ferry, each round on a fresh cluster and stack
    (so the bash runbook's group-wide log follower sees only its own task)."""
    emu.configure(snapshot_seconds=s)
    command = [*logger, str(t)]
    env = tool_env(emu.url, os.path.join(root, "home"), os.path.dirname(args.aws))
    each: dict[str, list[dict[str, Any]]] = {"bash": [], "ferry": []}
    for rep in range(1, reps + 1):
        [scen] = make_scenarios(emu, [f"p{int(s)}x{int(t)}r{rep}"], command)
        log(f"S/T = {s:g}/{t:g} round {rep}/{reps}: bash runbook")
        bash = Timed(["bash", os.path.join(HERE, "runbook.sh"), scen["stack"], scen["db_cluster"],
                      json.dumps(command)], root, env).wait()
        time.sleep(1)
        log(f"S/T = {s:g}/{t:g} round {rep}/{reps}: ferry deploy")
        project = ferry_project(root, scen, command)
        ferry = Timed([args.ferry, "deploy", "bench"], project, env).wait()
        for name, run in (("bash", bash), ("ferry", ferry)):
            with open(os.path.join(args.out, f"output-{int(s)}-{int(t)}-{rep}-{name}.log"), "w") as f:
                f.write("".join(f"{a:.3f} {raw.decode('utf-8', 'replace')}" for a, raw in run.lines))
            each[name].append(analyse(emu, name, run, scen, s, t))
        time.sleep(1)
    return {"S": s, "T": t, "runs": each, "bash": combine(each["bash"]), "ferry": combine(each["ferry"])}


def startup(emu: Emulator, args: argparse.Namespace, root: str, logger: list[str], reps: int) -> dict[str, Any]:
    [scen] = make_scenarios(emu, ["startup"], [*logger, "1"])
    project = ferry_project(root, scen, [*logger, "1"])
    env = tool_env(emu.url, os.path.join(root, "home"), os.path.dirname(args.aws))
    cases = {
        "ferry --version": [args.ferry, "--version"],
        "ferry plan bench": [args.ferry, "plan", "bench"],
        "aws rds describe-db-clusters": [args.aws, "rds", "describe-db-clusters", "--db-cluster-identifier",
                                         scen["db_cluster"]],
    }
    out = {}
    for name, argv in cases.items():
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            r = subprocess.run(argv, cwd=project, env=env, stdin=subprocess.DEVNULL, capture_output=True)
            times.append(time.perf_counter() - t0)
            if r.returncode != 0:
                sys.exit(f"bench: {name} failed ({r.returncode}):\n{r.stderr.decode()}")
        out[name] = {"mean_s": sum(times) / len(times), "min_s": min(times), "max_s": max(times), "runs": reps}
    return out


def shares(n: int) -> str:
    """ferry.toml's `api_budget` giving each of n concurrent ferries 1/n of the account's
    budgets (BUDGETS; ECS at its documented read refill of 20 a second)."""
    return (f"api_budget = {{ rds = {BUDGETS['rds:*'] / n:.3g}, logs = {BUDGETS['logs:GetLogEvents'] / n:.3g}, "
            f"ecs = {20.0 / n:.3g} }}")


def scale(emu: Emulator, args: argparse.Namespace, root: str, ns: list[tuple[int, bool]], s: float, t: float,
          logger: list[str]) -> list[dict[str, Any]]:
    emu.configure(snapshot_seconds=s)
    command = [*logger, str(t)]
    most = max(n for n, _ in ns)
    log(f"scale: creating {most} clusters and stacks")
    scens = make_scenarios(emu, [f"n{i:02d}" for i in range(most)], command)
    env = tool_env(emu.url, os.path.join(root, "home"), os.path.dirname(args.aws))
    out = []
    for n, shared in ns:
        # Each round on fresh clusters and stacks would cost minutes; the same ones are
        # reused (a deploy leaves its cluster as it found it, plus a snapshot).
        projects = [ferry_project(root, sc, command, shares(n) if shared else "") for sc in scens]
        log(f"scale: {n} concurrent ferry deploy (S/T = {s:g}/{t:g}){' with api_budget shares' if shared else ''}")
        load_before = os.getloadavg()[0]
        runs = [Timed([args.ferry, "deploy", "bench"], projects[i], env) for i in range(n)]
        for r in runs:
            r.wait()
        start, end = min(r.start for r in runs), max(r.end for r in runs)
        calls = tool_calls(emu, start, end)
        # Concurrent runs share the window: a run's own calls are those about its resources.
        per = [analyse(emu, "ferry", r, scens[i], s, t, calls) for i, r in enumerate(runs)]
        walls = sorted(r.wall for r in runs)
        rate = rates(calls, start, end)
        out.append({
            "N": n, "shares": shares(n) if shared else None, "S": s, "T": t, "load_before": load_before,
            "failed": sum(1 for r in runs if r.exit_code != 0),
            "wall_min_s": walls[0], "wall_median_s": walls[len(walls) // 2], "wall_max_s": walls[-1],
            "span_s": end - start,
            "snapshot_detect_output_max_s": max((p.get("snapshot_detect_output_s") or 0) for p in per),
            "task_detect_output_max_s": max((p.get("task_detect_output_s") or 0) for p in per),
            "log_p95_max_s": max((p["logs"]["latency_p95_s"] or 0) for p in per),
            "lines_lost": sum(p["logs"]["lost"] for p in per),
            "lines_duplicated": sum(p["logs"]["duplicated"] for p in per),
            "maxrss_max_mib": max(r.maxrss_mib for r in runs), "cpu_mean_s": sum(r.cpu_s for r in runs) / n,
            "calls_total": len(calls), "rates": rate,
            "budgets": {k: {"limit_per_s": v, "mean_per_s": rate.get(k, {}).get("mean_per_s", 0.0),
                            "peak_10s_per_s": rate.get(k, {}).get("peak_10s_per_s", 0.0),
                            "within": rate.get(k, {}).get("peak_10s_per_s", 0.0) <= v}
                        for k, v in BUDGETS.items()},
        })
        with open(os.path.join(args.out, f"scale-{n}{'-shares' if shared else ''}-first.log"), "w") as f:
            f.write(runs[0].text())
        time.sleep(2)
    return out


# -- the failed-migration path -------------------------------------------------------------------

FIXTURE = os.path.join(REPO, "tests", "fixtures", "alembic")
FAIL_ENV = {"FERRY_FIXTURE_FAIL": "1"}


def seed_fixture(emu: Emulator, scen: dict[str, str]) -> None:
    """The cluster's database at schema 0002 with the seed rows (as tests/e2e/scenario.py
    does), so the fixture's 0003a commits and its 0003b fails with FERRY_FIXTURE_FAIL=1."""
    import psycopg  # the emulator's venv has it

    url = emu.get("/_emulator/clusters")[scen["db_cluster"]]["url"]
    alembic = os.path.join(os.path.dirname(sys.executable), "alembic")
    env = {k: v for k, v in os.environ.items() if k != "FERRY_FIXTURE_FAIL"}
    env["DATABASE_URL"] = url
    ini = os.path.join(FIXTURE, "alembic.ini")
    subprocess.run([alembic, "-c", ini, "upgrade", "0001_init"], env=env, check=True, stdout=subprocess.DEVNULL)
    with psycopg.connect(url, autocommit=True) as conn, open(os.path.join(FIXTURE, "seed.sql")) as fh:
        conn.execute(fh.read())
    subprocess.run([alembic, "-c", ini, "upgrade", "0002_add_email"], env=env, check=True, stdout=subprocess.DEVNULL)


def _about(call: list[Any]) -> set[str]:
    """The identifiers a Query-protocol RDS call names (empty: it names none, so it lists all)."""
    body = urllib.parse.parse_qs(call[6] if isinstance(call[6], str) else "")
    ids: set[str] = set()
    for key, values in body.items():
        if key in ("DBClusterIdentifier", "DBInstanceIdentifier", "NewDBClusterIdentifier") or (
                key.startswith("Filters.") and ".Values." in key):
            ids.update(values)
    return ids


def _first_describe(calls: list[list[Any]], ops: tuple[str, ...], subjects: set[str], after: float) -> float | None:
    """End of the first describe of `subjects` sent at or after `after` (states are a
    function of time, so its answer carried the change)."""
    for c in calls:
        if c[3] in ops and c[0] >= after:
            about = _about(c)
            if not about or about & subjects:
                return c[1]
    return None


def restore_events(calls: list[list[Any]], cluster: str, timings: dict[str, float]) -> list[dict[str, Any]]:
    """Each state change of the restore: when the emulator made it (the end of the call
    that started it + its timed state; the call's own milliseconds are the error bar) and
    when the tool's first describe after it answered."""
    rds = sorted((c for c in calls if c[2] == "rds"), key=lambda c: c[0])
    events = []
    restored = ""  # the cluster the restore made (a long CreateDBInstance body may lose its cluster id)
    for c in rds:
        body = urllib.parse.parse_qs(c[6] if isinstance(c[6], str) else "")
        ident = (body.get("DBClusterIdentifier") or [""])[0]
        if c[3] == "RestoreDBClusterFromSnapshot":
            restored = ident
            events.append({"what": f"restored cluster {ident} available", "id": ident,
                           "at": c[1] + timings["restore_seconds"], "ops": ("DescribeDBClusters",),
                           "subjects": {ident}})
        elif c[3] == "CreateDBInstance":
            inst = (body.get("DBInstanceIdentifier") or [""])[0]
            events.append({"what": f"instance {inst} available", "id": inst,
                           "at": c[1] + timings["instance_seconds"], "ops": ("DescribeDBInstances",),
                           "subjects": {inst, ident or restored}})
        elif c[3] == "ModifyDBCluster":
            new = (body.get("NewDBClusterIdentifier") or [""])[0]
            if new:
                what = f"{ident} renamed to {new}, available" + (" (back under its name)" if new == cluster else "")
                events.append({"what": what, "id": new, "at": c[1] + timings["rename_seconds"],
                               "ops": ("DescribeDBClusters",), "subjects": {new}, "final": new == cluster})
            else:
                events.append({"what": f"settings of {ident} applied", "id": ident,
                               "at": c[1] + timings["modify_seconds"], "ops": ("DescribeDBClusters",),
                               "subjects": {ident}})
    for e in events:
        seen = _first_describe(rds, e.pop("ops"), e.pop("subjects"), e["at"])
        e["noticed_s"] = None if seen is None else seen - e["at"]
    return events


def analyse_restore(emu: Emulator, tool: str, runs: list[Timed], scen: dict[str, str],
                    timings: dict[str, float]) -> dict[str, Any]:
    start, end = runs[0].start, runs[-1].end
    calls = tool_calls(emu, start, end)
    truth = ground_truth(emu, scen, start, end)
    stopped = truth.get("task_stopped_at")
    res: dict[str, Any] = {
        "tool": tool, "exit_codes": [r.exit_code for r in runs], "wall_s": end - start, "truth": truth,
        "calls": by_operation(calls), "calls_total": len(calls),
        "cpu_s": sum(r.cpu_s for r in runs), "maxrss_mib": max(r.maxrss_mib for r in runs),
    }
    events = restore_events(calls, scen["db_cluster"], timings)
    # Every RDS call the tool made (start, end, operation, body prefix): the events' evidence.
    res["rds_calls"] = [[c[0], c[1], c[3], c[6]] for c in calls if c[2] == "rds"]
    if stopped:
        api = first_call_seeing(calls, "DescribeTasks", truth["task_arn"].rsplit("/", 1)[-1], stopped)
        events.insert(0, {"what": "migration task stopped (exit 1)", "id": truth["task_arn"], "at": stopped,
                          "noticed_s": None if api is None else api - stopped})
        res["failure_at"] = stopped
        restore_calls = [c for c in calls if c[3] == "RestoreDBClusterFromSnapshot"]
        if restore_calls:
            res["failure_to_restore_call_s"] = restore_calls[0][0] - stopped
        final = [e for e in events if e.get("final")]
        if final:
            res["failure_to_back_s"] = final[-1]["at"] - stopped
            # What no tool can avoid: the timed states it waited through, one after the other.
            floor = sum(timings[k] for k in ("restore_seconds", "instance_seconds")) + 2 * timings["rename_seconds"]
            floor += sum(timings["modify_seconds"] for e in events if e["what"].startswith("settings of"))
            res["states_s"] = floor
            res["overhead_s"] = res["failure_to_back_s"] - floor
        res["failure_to_exit_s"] = end - stopped
    for e in events:
        e["at_from_failure_s"] = None if not stopped else e["at"] - stopped
    res["events"] = events
    lags = [e["noticed_s"] for e in events if e["noticed_s"] is not None]
    res["detect_max_s"] = max(lags) if lags else None
    res["detect_mean_s"] = sum(lags) / len(lags) if lags else None
    return res


def restore_path(emu: Emulator, args: argparse.Namespace, root: str, rounds: int, s: float,
                 timings: dict[str, float]) -> dict[str, Any]:
    """`rounds` rounds of: bench/runbook.sh with the failing migration, then at once
    bench/restore.sh; and `ferry deploy` of the same, which restores by itself. Each
    tool on its own fresh cluster and stack, seeded at schema 0002."""
    alembic = [os.path.join(os.path.dirname(sys.executable), "alembic"), "-c",
               os.path.join(FIXTURE, "alembic.ini"), "upgrade", "head"]
    emu.configure(snapshot_seconds=s)
    log(f"restore path: creating {2 * rounds} clusters and stacks")
    scens = make_scenarios(emu, [f"rs{tool}{rep}" for rep in range(1, rounds + 1) for tool in ("b", "f")], alembic)
    for scen in scens:
        seed_fixture(emu, scen)
    emu.configure(**timings)
    env = tool_env(emu.url, os.path.join(root, "home"), os.path.dirname(args.aws))
    environment = json.dumps([{"name": k, "value": v} for k, v in FAIL_ENV.items()])
    each: dict[str, list[dict[str, Any]]] = {"bash": [], "ferry": []}
    try:
        for rep in range(1, rounds + 1):
            sb, sf = scens[2 * (rep - 1)], scens[2 * (rep - 1) + 1]
            log(f"restore path round {rep}/{rounds}: bash runbook, then bash restore")
            deploy = Timed(["bash", os.path.join(HERE, "runbook.sh"), sb["stack"], sb["db_cluster"],
                            json.dumps(alembic), environment], root, env).wait()
            m = re.search(r"Restore from (\S+) if needed", deploy.text())
            if deploy.exit_code != 1 or not m:
                sys.exit(f"bench: the bash runbook did not fail as expected ({deploy.exit_code}):\n{deploy.text()}")
            restore = Timed(["bash", os.path.join(HERE, "restore.sh"), sb["db_cluster"], m.group(1)], root,
                            env).wait()
            time.sleep(1)
            log(f"restore path round {rep}/{rounds}: ferry deploy (restores by itself)")
            project = ferry_project(root, sf, alembic)
            with open(os.path.join(project, "ferry.toml"), "a") as fh:
                fh.write("env = { " + ", ".join(f'{k} = "{v}"' for k, v in FAIL_ENV.items()) + " }\n")
            ferry = Timed([args.ferry, "deploy", "bench"], project, env).wait()
            for name, runs, scen in (("bash", [deploy, restore], sb), ("ferry", [ferry], sf)):
                with open(os.path.join(args.out, f"output-restore-{rep}-{name}.log"), "w") as fh:
                    for run in runs:
                        fh.write("".join(f"{a:.3f} {raw.decode('utf-8', 'replace')}" for a, raw in run.lines))
                each[name].append(analyse_restore(emu, name, runs, scen, timings))
            time.sleep(1)
    finally:
        emu.configure(restore_seconds=0.2, instance_seconds=0.2, rename_seconds=0.2, modify_seconds=0.2)
    out: dict[str, Any] = {"S": s, "timings": timings, "runs": each}
    for name in each:
        rs = each[name]
        out[name] = {k: median([r[k] for r in rs if r.get(k) is not None])
                     for k in ("failure_to_back_s", "failure_to_exit_s", "failure_to_restore_call_s", "overhead_s",
                               "detect_max_s", "detect_mean_s", "cpu_s", "calls_total", "states_s")
                     if any(r.get(k) is not None for r in rs)}
    return out


# -- the local no-op deploy ------------------------------------------------------------------------


def local_noop(args: argparse.Namespace, root: str, reps: int) -> dict[str, Any]:
    """`ferry deploy` of the migration `true` on the quickstart's SQLite against `true`,
    A/B pair by pair after one warm-up of each."""
    src = os.path.join(REPO, "examples", "quickstart")
    d = os.path.join(root, "quickstart")
    shutil.copytree(src, d, ignore=shutil.ignore_patterns(".ferry", "app*.db*"))
    with open(os.path.join(d, "ferry.toml"), "a") as fh:
        fh.write('\n[env.noop]\nmigration = { command = ["true"] }\n')
    env = {k: v for k, v in os.environ.items() if k not in ("FERRY_CONFIG", "GITHUB_ACTIONS")}
    env["HOME"] = os.path.join(root, "home")
    subprocess.run([args.ferry, "db", "exec", "noop", "--create", "--file", "seed.sql"], cwd=d, env=env, check=True,
                   capture_output=True)
    true = shutil.which("true") or "/bin/true"
    cases = {"ferry deploy noop": [args.ferry, "deploy", "noop"], "true": [true]}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for i in range(reps + 1):
        for name, argv in cases.items():
            t0 = time.perf_counter()
            r = subprocess.run(argv, cwd=d, env=env, stdin=subprocess.DEVNULL, capture_output=True)
            took = time.perf_counter() - t0
            if r.returncode != 0:
                sys.exit(f"bench: {name} failed ({r.returncode}):\n{r.stderr.decode()}")
            if i > 0:  # the first of each is the warm-up
                times[name].append(took)
    out: dict[str, Any] = {"runs": reps}
    for name, ts in times.items():
        out[name] = {"median_s": median(ts), "min_s": min(ts), "max_s": max(ts)}
    out["overhead_s"] = out["ferry deploy noop"]["median_s"] - out["true"]["median_s"]
    out["ratio"] = out["ferry deploy noop"]["median_s"] / max(out["true"]["median_s"], 1e-9)
    return out


# -- report ------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    mem_gib = 0.0
    try:
        with open("/proc/meminfo") as f:
            mem_gib = int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1]) / 1024 / 1024
    except (OSError, StopIteration):
        pass
    pretty = platform.platform()
    try:
        with open("/etc/os-release") as f:
            pretty = next((ln.split("=", 1)[1].strip().strip('"') for ln in f if ln.startswith("PRETTY_NAME")), pretty)
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gib": round(mem_gib, 1), "os": pretty,
            "kernel": platform.release()}


def f(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and digits == 0:
        return f"{x:g}"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def report_restore(rp: dict[str, Any]) -> list[str]:
    tm = rp["timings"]
    b, fe = rp["bash"], rp["ferry"]
    rb, rf = rp["runs"]["bash"], rp["runs"]["ferry"]
    lines = [
        f"## The failed-migration path: failure -> database back under its name (S = {rp['S']:g} s; restore "
        f"{tm['restore_seconds']:g} s, instance {tm['instance_seconds']:g} s, rename {tm['rename_seconds']:g} s, "
        f"settings {tm['modify_seconds']:g} s)",
        "",
        f"Median of {len(rf)} round(s). bash: bench/runbook.sh (exit 1, naming the snapshot) and at once "
        "bench/restore.sh; ferry: `ferry deploy` (exit 4, restored). Times from the migration task's stop "
        "(emulator stoppedAt) to the last rename's timed state ending (the database available under its name, "
        "with its instance).",
        "",
        "| | bash + aws CLI | ferry |",
        "| --- | --- | --- |",
        f"| exit codes | {', '.join('/'.join(str(c) for c in r['exit_codes']) for r in rb)} | "
        f"{', '.join('/'.join(str(c) for c in r['exit_codes']) for r in rf)} |",
        f"| failure -> back under its name (s) | {f(b.get('failure_to_back_s'))} | {f(fe.get('failure_to_back_s'))} |",
    ]
    if b.get("failure_to_back_s") and fe.get("failure_to_back_s"):
        lines += [
            f"| ratio ferry / bash | {f(fe['failure_to_back_s'] / b['failure_to_back_s'])} | |",
            f"| speed-up bash / ferry | {f(b['failure_to_back_s'] / fe['failure_to_back_s'])} | |",
        ]
    lines += [
        f"| timed states waited through (s) | {f(b.get('states_s'), 0)} | {f(fe.get('states_s'), 0)} |",
        f"| overhead above them (s) | {f(b.get('overhead_s'))} | {f(fe.get('overhead_s'))} |",
        f"| failure -> restore call (s) | {f(b.get('failure_to_restore_call_s'))} | "
        f"{f(fe.get('failure_to_restore_call_s'))} |",
        f"| failure -> tool exited (s) | {f(b.get('failure_to_exit_s'))} | {f(fe.get('failure_to_exit_s'))} |",
        f"| detection lag mean / max (s) | {f(b.get('detect_mean_s'))} / {f(b.get('detect_max_s'))} | "
        f"{f(fe.get('detect_mean_s'))} / {f(fe.get('detect_max_s'))} |",
        f"| CPU seconds (with children) | {f(b.get('cpu_s'))} | {f(fe.get('cpu_s'))} |",
        f"| API calls | {f(b.get('calls_total'), 0)} | {f(fe.get('calls_total'), 0)} |",
        "",
        "Each state change (s from the failure; detection lag = the end of the tool's first describe sent after "
        "the change):",
        "",
        "| round | tool | state change | at | noticed after |",
        "| --- | --- | --- | --- | --- |",
    ]
    for i, (xb, xf) in enumerate(zip(rb, rf), start=1):
        for name, r in (("bash", xb), ("ferry", xf)):
            for e in r["events"]:
                lines.append(f"| {i} | {name} | {e['what']} | {f(e.get('at_from_failure_s'))} | "
                             f"{f(e.get('noticed_s'))} |")
    lines += ["", "API calls by operation (first round):", "", "| operation | bash + aws CLI | ferry |",
              "| --- | --- | --- |"]
    for op in sorted(set(rb[0]["calls"]) | set(rf[0]["calls"])):
        lines.append(f"| {op} | {f(rb[0]['calls'].get(op, 0), 0)} | {f(rf[0]['calls'].get(op, 0), 0)} |")
    lines.append("")
    return lines


def report_noop(ln: dict[str, Any]) -> list[str]:
    fd, tr = ln["ferry deploy noop"], ln["true"]
    return [
        f"## The local no-op deploy (quickstart SQLite; {ln['runs']} runs each after a warm-up, A/B pair by pair)",
        "",
        "| | median wall (s) | min (s) | max (s) |",
        "| --- | --- | --- | --- |",
        f"| `ferry deploy noop` (migration `true`) | {f(fd['median_s'], 3)} | {f(fd['min_s'], 3)} | "
        f"{f(fd['max_s'], 3)} |",
        f"| `true` | {f(tr['median_s'], 3)} | {f(tr['min_s'], 3)} | {f(tr['max_s'], 3)} |",
        "",
        f"Overhead (median ferry - median `true`): {f(ln['overhead_s'], 3)} s; ratio ferry / `true`: "
        f"{f(ln['ratio'], 1)}.",
        "",
    ]


def report(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        "# ferry vs the bash + aws CLI runbook",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, {m['os']} (kernel {m['kernel']}); "
        f"load average {res['load']['before']:.2f} before, {res['load']['after']:.2f} after. "
        f"{res['versions']['aws']}; {res['versions']['ferry']}. Mode: {res['mode']}.",
        "",
    ]
    for pair in res.get("pairs", []):
        b, fe = pair["bash"], pair["ferry"]
        s, t = pair["S"], pair["T"]
        lines += [
            f"## S/T = {s:g}/{t:g} s (snapshot available after S, task runs T)",
            "",
            f"Median of {b['runs']} round(s) (each: the bash runbook, then ferry, on a fresh cluster and stack); "
            "log lines counted over all rounds. Wall times: bash "
            + ", ".join(f(x, 1) for x in b["wall_each_s"]) + "; ferry " + ", ".join(f(x, 1) for x in fe["wall_each_s"])
            + ".",
            "",
            "| | bash + aws CLI | ferry |",
            "| --- | --- | --- |",
            f"| exit code | {b['exit_code']} | {fe['exit_code']} |",
            f"| wall time (s) | {f(b['wall_s'])} | {f(fe['wall_s'])} |",
            f"| ratio bash / ferry | {f(b['wall_s'] / fe['wall_s'])} | |",
            f"| overhead: wall - S - T (s) | {f(b['overhead_s'])} | {f(fe['overhead_s'])} |",
            f"| start -> snapshot available (S + create call) (s) | {f(b.get('start_to_snapshot_ready_s'))} | "
            f"{f(fe.get('start_to_snapshot_ready_s'))} |",
            f"| snapshot available -> task started (s) | {f(b.get('snapshot_ready_to_task_start_s'))} | "
            f"{f(fe.get('snapshot_ready_to_task_start_s'))} |",
            f"| task ran (emulator startedAt -> stoppedAt) (s) | {f(b.get('task_ran_s'))} | {f(fe.get('task_ran_s'))} |",
            f"| snapshot available -> printed (s) | {f(b.get('snapshot_detect_output_s'))} | "
            f"{f(fe.get('snapshot_detect_output_s'))} |",
            f"| snapshot available -> first API answer saying so (s) | {f(b.get('snapshot_detect_api_s'))} | "
            f"{f(fe.get('snapshot_detect_api_s'))} |",
            f"| task stopped -> printed (s) | {f(b.get('task_detect_output_s'))} | "
            f"{f(fe.get('task_detect_output_s'))} |",
            f"| task stopped -> first API answer saying so (s) | {f(b.get('task_detect_api_s'))} | "
            f"{f(fe.get('task_detect_api_s'))} |",
            f"| task stopped -> tool exited (s) | {f(b.get('after_task_stop_s'))} | {f(fe.get('after_task_stop_s'))} |",
            f"| log lines expected / printed | {b['logs']['expected']} / {b['logs']['printed']} | "
            f"{fe['logs']['expected']} / {fe['logs']['printed']} |",
            f"| log lines lost / duplicated | {b['logs']['lost']} / {b['logs']['duplicated']} | "
            f"{fe['logs']['lost']} / {fe['logs']['duplicated']} |",
            f"| log latency p50 / p95 / max (s) | {f(b['logs']['latency_p50_s'])} / {f(b['logs']['latency_p95_s'])}"
            f" / {f(b['logs']['latency_max_s'])} | {f(fe['logs']['latency_p50_s'])} / "
            f"{f(fe['logs']['latency_p95_s'])} / {f(fe['logs']['latency_max_s'])} |",
            f"| CPU seconds (with children) | {f(b['cpu_s'])} | {f(fe['cpu_s'])} |",
            f"| peak RSS (MiB, largest process) | {f(b['maxrss_mib'], 1)} | {f(fe['maxrss_mib'], 1)} |",
            f"| API calls | {f(b['calls_total'], 0)} | {f(fe['calls_total'], 0)} |",
            "",
            "Each round (s; detection as printed, first API answer in brackets):",
            "",
            "| round | bash wall | ferry wall | ratio | bash: snapshot / task noticed | ferry: snapshot / task noticed "
            "| lines lost bash / ferry |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for i, (rb, rf) in enumerate(zip(pair["runs"]["bash"], pair["runs"]["ferry"]), start=1):
            lines.append(
                f"| {i} | {f(rb['wall_s'], 1)} | {f(rf['wall_s'], 1)} | {f(rb['wall_s'] / rf['wall_s'])} | "
                f"{f(rb.get('snapshot_detect_output_s'))} ({f(rb.get('snapshot_detect_api_s'))}) / "
                f"{f(rb.get('task_detect_output_s'))} ({f(rb.get('task_detect_api_s'))}) | "
                f"{f(rf.get('snapshot_detect_output_s'))} ({f(rf.get('snapshot_detect_api_s'))}) / "
                f"{f(rf.get('task_detect_output_s'))} ({f(rf.get('task_detect_api_s'))}) | "
                f"{rb['logs']['lost']} / {rf['logs']['lost']} |")
        lines += [
            "",
            "API calls by operation:",
            "",
            "| operation | bash + aws CLI | ferry |",
            "| --- | --- | --- |",
        ]
        for op in sorted(set(b["calls"]) | set(fe["calls"])):
            lines.append(f"| {op} | {f(b['calls'].get(op, 0), 0)} | {f(fe['calls'].get(op, 0), 0)} |")
        lines.append("")
    if res.get("restore"):
        lines += report_restore(res["restore"])
    if res.get("local_noop"):
        lines += report_noop(res["local_noop"])
    if res.get("startup"):
        lines += ["## Startup (mean of runs; min-max)", "", "| command | mean (s) | min-max (s) |",
                  "| --- | --- | --- |"]
    for name, st in res.get("startup", {}).items():
        lines.append(f"| `{name}` | {f(st['mean_s'], 3)} | {f(st['min_s'], 3)}-{f(st['max_s'], 3)} |")
    lines.append("")
    if res.get("scale"):
        sc0 = res["scale"][0]
        lines += [
            f"## Scale: N concurrent `ferry deploy` (S/T = {sc0['S']:g}/{sc0['T']:g} s, one cluster, stack and "
            "project each)",
            "",
            "| N | failed | wall min / median / max (s) | snapshot / task detect max (s) | log p95 max (s) | "
            "lines lost / dup | peak RSS max (MiB) | CPU mean (s) | API calls | GetLogEvents mean / peak 10 s "
            "(per s) | RDS mean / peak 10 s (per s) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for sc in res["scale"]:
            g = sc["budgets"]["logs:GetLogEvents"]
            r = sc["budgets"]["rds:*"]
            label = f"{sc['N']} (shares)" if sc.get("shares") else str(sc["N"])
            lines.append(
                f"| {label} | {sc['failed']} | {f(sc['wall_min_s'])} / {f(sc['wall_median_s'])} / "
                f"{f(sc['wall_max_s'])} | {f(sc['snapshot_detect_output_max_s'])} / "
                f"{f(sc['task_detect_output_max_s'])} | {f(sc['log_p95_max_s'])} | {sc['lines_lost']} / "
                f"{sc['lines_duplicated']} | {f(sc['maxrss_max_mib'], 1)} | {f(sc['cpu_mean_s'])} | "
                f"{sc['calls_total']} | {f(g['mean_per_s'], 1)} / {f(g['peak_10s_per_s'], 1)}"
                f"{'' if g['within'] else ' **over 10**'} | {f(r['mean_per_s'], 1)} / {f(r['peak_10s_per_s'], 1)}"
                f"{'' if r['within'] else ' **over 12**'} |")
        for sc in res["scale"]:
            if sc.get("shares"):
                lines.append(f"N = {sc['N']} (shares): each ferry.toml sets `{sc['shares']}`.")
        lines += ["", "Calls per second by operation (mean over the run / busiest 10 s):", "",
                  "| operation | " + " | ".join(f"N={sc['N']}" + (" shares" if sc.get("shares") else "")
                                              for sc in res["scale"]) + " |",
                  "| --- |" + " --- |" * len(res["scale"])]
        ops = sorted({op for sc in res["scale"] for op in sc["rates"]})
        for op in ops:
            cells = []
            for sc in res["scale"]:
                r = sc["rates"].get(op)
                cells.append("-" if r is None else f"{r['mean_per_s']:.2f} / {r['peak_10s_per_s']:.1f}")
            lines.append(f"| {op} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ferry")
    p.add_argument("--aws")
    p.add_argument("--pg-url")
    p.add_argument("--out")
    p.add_argument("--quick", action="store_true",
                   help="S/T 5/10 only, startup x3, scale N = 1, 3, the restore path once, the no-op deploy x10")
    p.add_argument("--only", metavar="PHASES", help="comma-separated phases to run: " + ",".join(PHASES))
    p.add_argument("--report-from", metavar="RESULTS_JSON", help="only render the report of an earlier run")
    args = p.parse_args()
    if args.report_from:
        with open(args.report_from) as fh:
            print(report(json.load(fh)))
        return 0
    if not (args.ferry and args.aws and args.pg_url and args.out):
        p.error("--ferry, --aws, --pg-url and --out are required (unless --report-from)")
    args.ferry = os.path.abspath(args.ferry)
    args.aws = os.path.abspath(args.aws)
    os.makedirs(args.out, exist_ok=True)
    # (S, T, rounds): each round is one bash run and one ferry run.
    # 120/300 once: a round is about 14 minutes (both tools wait out S + T).
    pairs = [(5.0, 10.0, 1)] if args.quick else [(5.0, 10.0, 3), (30.0, 60.0, 3), (120.0, 300.0, 1)]
    # (N, shares): with shares, each ferry's api_budget is 1/N of the account's budgets.
    ns, scale_st = (([(1, False), (3, False), (3, True)], (5.0, 10.0)) if args.quick
                    else ([(1, False), (10, False), (50, False), (50, True)], (10.0, 30.0)))
    reps = 3 if args.quick else 10
    restore_rounds, noop_reps = (1, 10) if args.quick else (3, 20)
    only = set(PHASES) if not args.only else set(args.only.split(","))
    if only - set(PHASES):
        p.error(f"--only: unknown phase(s) {', '.join(sorted(only - set(PHASES)))}; known: {', '.join(PHASES)}")

    root = tempfile.mkdtemp(prefix="ferry-bench-")
    os.makedirs(os.path.join(root, "home"))
    # The migration task: the system's python3 (the task runs as a host process), unbuffered.
    logger = [shutil.which("python3") or "python3", "-u", os.path.join(HERE, "logger.py")]
    emu = Emulator(sys.executable, args.pg_url, root)
    load_before = os.getloadavg()[0]
    try:
        emu.configure(task_start_seconds=0, cluster_seconds=0.2, instance_seconds=0.2, snapshot_quota=1000)
        env = tool_env(emu.url, os.path.join(root, "home"), os.path.dirname(args.aws))
        versions = {
            "aws": " ".join(subprocess.run([args.aws, "--version"], env=env, capture_output=True, text=True,
                                           check=False).stdout.split()
                        + subprocess.run([args.aws, "--version"], env=env, capture_output=True, text=True,
                                         check=False).stderr.split()),
            "ferry": subprocess.run([args.ferry, "--version"], capture_output=True, text=True).stdout.strip(),
        }
        results: dict[str, Any] = {"mode": "quick" if args.quick else "full", "machine": machine(),
                                   "versions": versions, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if "pairs" in only:
            results["pairs"] = [side_by_side(emu, args, root, s, t, n, logger) for s, t, n in pairs]
        if "restore" in only:
            results["restore"] = restore_path(emu, args, root, restore_rounds, 5.0, RESTORE_TIMINGS)
        if "noop" in only:
            log("local no-op deploy")
            results["local_noop"] = local_noop(args, root, noop_reps)
        if "startup" in only:
            log("startup")
            results["startup"] = startup(emu, args, root, logger, reps)
        if "scale" in only:
            results["scale"] = scale(emu, args, root, ns, scale_st[0], scale_st[1], logger)
        results["load"] = {"before": load_before, "after": os.getloadavg()[0]}
    finally:
        emu.stop()
        shutil.rmtree(root, ignore_errors=True)
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump(results, fh, indent=1, sort_keys=True)
    text = report(results)
    with open(os.path.join(args.out, "report.md"), "w") as fh:
        fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
