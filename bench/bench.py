#!/usr/bin/env python3
"""Helpers of bench/up.sh (run with bench/.venv's python, which has boto3).

    bench.py reset   MOTO_URL                  clear all of moto's state
    bench.py fresh   MOTO_URL ROOT             reset + warm + role, in one process
    bench.py fresh-norole MOTO_URL             reset + warm, no instance role
    bench.py warm    MOTO_URL                  one call of each service the benchmark uses
    bench.py role    MOTO_URL                  ecsInstanceRole + its instance profile, managed
                                               policy attached (as the ECS console makes them)
    bench.py az      MOTO_URL                  the AZ of the default subnet l5d-ecs would pick
    bench.py render  ROOT OUTDIR STACK         the project's templates, rendered for the guide
    bench.py run     --label L --out F.json --control URL [--cwd D] -- CMD...
                                               runs CMD once: wall time, exit code, and every
                                               AWS call the proxy saw meanwhile
    bench.py loop    -n N --out F.json -- CMD...   start-up timing without hyperfine
    bench.py report  OUTDIR RESULTS_MD         writes the results page from OUTDIR/*.json

  The rows on the AWS rules layer (tests/awsrules/serve: moto behind a real account's rules):
    bench.py rules-fresh RULES_URL ROOT [--norole] [--delays JSON]
                                               reset (World's delays back to their defaults),
                                               ECS tasks pinned RUNNING, delays set, warm, the
                                               instance role (unless --norole), violations
                                               cleared
    bench.py agent   RULES_URL STACK N [--timeout S]
                                               the stand-in ECS agent: waits for the N running
                                               instances of STACK's ASG, registers each as a
                                               container instance of cluster STACK, then waits
                                               until every DAEMON service has a RUNNING task on
                                               each of them (the rules layer's scheduler)
    bench.py events  RULES_URL OUT.json        the rules layer's events and settings, saved
  `run` also takes --nodes N (kept in the result), --rules URL (the rules layer's violations
  during the run, and its clock) and --timeout S (the run is killed after S seconds, rc 124).
"""

import functools
import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request

REGION = "us-west-1"
ROLE = "ecsInstanceRole"
MANAGED = "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
APPS = ["linkerd", "linkerd-viz", "consul-agent", "consul-registrator", "hello-world"]
CONSUL_IMAGE = "hashicorp/consul:1.20.2"

READ_PREFIXES = ("Describe", "List", "Get")


def is_read(op):
    return op.startswith(READ_PREFIXES)


def http(method, url, body=None, timeout=30):
    req = urllib.request.Request(url, data=body, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def client(service, endpoint):
    import boto3

    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


# --------------------------------------------------------------------------------- moto set-up


def cmd_reset(moto):
    http("POST", moto.rstrip("/") + "/moto-api/reset", b"")


def cmd_warm(moto):
    """One call of each service (a fresh or reset moto builds each region's backend lazily:
    the first EC2 call takes about a second)."""
    client("ec2", moto).describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])
    client("ec2", moto).describe_images(Owners=["amazon"], MaxResults=5)
    client("ecs", moto).list_clusters()
    client("iam", moto).list_roles()
    client("autoscaling", moto).describe_auto_scaling_groups()
    client("ssm", moto).get_parameter(Name=AMI_PARAMETER)
    client("sts", moto).get_caller_identity()
    client("logs", moto).describe_log_groups()


def cmd_role(moto, root):
    iam = client("iam", moto)
    with open(os.path.join(root, "policies", "ec2-trust.json")) as f:
        trust = f.read()
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=trust)
    iam.attach_role_policy(RoleName=ROLE, PolicyArn=MANAGED)
    iam.create_instance_profile(InstanceProfileName=ROLE)
    iam.add_role_to_instance_profile(InstanceProfileName=ROLE, RoleName=ROLE)


def cmd_az(moto):
    subnets = client("ec2", moto).describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}]
    )["Subnets"]
    print(sorted(s["AvailabilityZone"] for s in subnets)[0])


def cmd_render(root, outdir, stack):
    """The files the guide's commands name, made from the project's templates."""
    os.makedirs(outdir, exist_ok=True)
    for app in APPS:
        with open(os.path.join(root, "task-definitions", f"{app}.json")) as f:
            td = json.load(f)
        td["family"] = f"{stack}-{td['family']}"
        with open(os.path.join(outdir, f"{app}-task-definition.json"), "w") as f:
            json.dump(td, f, indent=2)
    values = {
        "STACK": stack,
        "CLUSTER": stack,
        "CONSUL_SERVER_TAG": f"{stack}-consul-server",
        "CONSUL_IMAGE": CONSUL_IMAGE,
        # What an instance boots on (the renderer's BootHost::EC2): the real root and IMDS.
        "ROOT": "",
        "IMDS": "http://169.254.169.254",
    }
    for src, dst in [("consul-server.sh", "consul-server-user-data.txt"), ("ecs-node.sh", "ecs-user-data.txt")]:
        with open(os.path.join(root, "user-data", src)) as f:
            text = f.read()
        for k, v in values.items():
            text = text.replace("{{" + k + "}}", v)
        if "{{" in text:
            sys.exit(f"bench.py render: placeholder left in {src}")
        with open(os.path.join(outdir, dst), "w") as f:
            f.write(text)
    with open(os.path.join(root, "policies", "node-policy.json")) as f:
        policy = f.read()
    with open(os.path.join(outdir, "ecs-role-policy.json"), "w") as f:
        f.write(policy)


# ------------------------------------------------------------------------ the AWS rules layer


def rules_get(rules, path):
    return json.loads(http("GET", rules.rstrip("/") + path))


def rules_post(rules, path, doc=None):
    return json.loads(http("POST", rules.rstrip("/") + path, json.dumps(doc or {}).encode()))


def rules_violations(rules, clear=False):
    if clear:
        return rules_post(rules, "/_rules/violations/clear")["violations"]
    return rules_get(rules, "/_rules/violations")["violations"]


def cmd_rules_fresh(args):
    """rules-fresh RULES_URL ROOT [--norole] [--delays JSON]"""
    rules, root = args[0], args[1]
    rest = args[2:]
    norole = "--norole" in rest
    delays = json.loads(rest[rest.index("--delays") + 1]) if "--delays" in rest else {}
    cmd_reset(rules)  # the rules layer forgets its World too: default delays, no events
    # moto would move a task on by one state at every DescribeTasks (to STOPPED soon); ECS
    # keeps a healthy task RUNNING, as the integration tests pin it
    http("POST", rules.rstrip("/") + "/moto-api/state-manager/set-transition",
         json.dumps({"model_name": "ecs::task",
                     "transition": {"progression": "manual", "times": 1000000}}).encode())
    if delays:
        rules_post(rules, "/_rules/config", {"delays": delays})
    cmd_warm(rules)
    if not norole:
        cmd_role(rules, root)
    broke = rules_violations(rules, clear=True)
    for v in broke:
        print(f"bench.py rules-fresh: set-up broke rule {v.get('rule')} with "
              f"{v.get('service')}:{v.get('operation')}: {v.get('message')}", file=sys.stderr)
    return 1 if broke else 0


def _all_tasks(ecs, cluster):
    arns, token = [], None
    while True:
        kw = {"cluster": cluster, "desiredStatus": "RUNNING", "maxResults": 100}
        if token:
            kw["nextToken"] = token
        page = ecs.list_tasks(**kw)
        arns += page.get("taskArns", [])
        token = page.get("nextToken")
        if not token:
            break
    tasks = []
    for i in range(0, len(arns), 100):
        tasks += ecs.describe_tasks(cluster=cluster, tasks=arns[i:i + 100]).get("tasks", [])
    return tasks


def cmd_agent(args):
    """agent RULES_URL STACK N [--timeout S]: plays the ECS agent of the stack's N nodes (moto
    has none), as tests/e2e/support/mod.rs register_container_instances does: every running
    instance of the ASG `<STACK>-asg` is registered as a container instance of cluster STACK
    with an instanceIdentityDocument naming it; then waits for the rules layer's DAEMON
    scheduler to run one task of every DAEMON service on each. Straight to the rules layer
    (not through the proxy), untimed. Polls every 0.2 s; fails after the timeout, saying what
    it was waiting for."""
    rules, stack, n = args[0], args[1], int(args[2])
    timeout = float(args[args.index("--timeout") + 1]) if "--timeout" in args else 600.0
    asg, ec2, ecs = client("autoscaling", rules), client("ec2", rules), client("ecs", rules)
    t0 = time.monotonic()
    deadline = t0 + timeout
    waiting = "?"

    def give_up():
        sys.exit(f"bench.py agent: after {time.monotonic() - t0:.0f} s still waiting for {waiting}")

    # 1. the ASG's N instances, running
    while True:
        groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[f"{stack}-asg"])["AutoScalingGroups"]
        ids = [i["InstanceId"] for g in groups for i in g.get("Instances", [])]
        running = []
        for i in range(0, len(ids), 100):
            for r in ec2.describe_instances(InstanceIds=ids[i:i + 100])["Reservations"]:
                running += [x["InstanceId"] for x in r["Instances"] if x["State"]["Name"] == "running"]
        if len(running) >= n:
            break
        waiting = f"{n} running instances in ASG {stack}-asg ({len(running)} of {len(ids)} running)"
        if time.monotonic() > deadline:
            give_up()
        time.sleep(0.2)
    t_instances = time.monotonic()

    # 2. register those not registered yet
    def registered():
        arns, token = [], None
        while True:
            kw = {"cluster": stack, "maxResults": 100}
            if token:
                kw["nextToken"] = token
            page = ecs.list_container_instances(**kw)
            arns += page.get("containerInstanceArns", [])
            token = page.get("nextToken")
            if not token:
                break
        out = {}
        for i in range(0, len(arns), 100):
            for ci in ecs.describe_container_instances(cluster=stack, containerInstances=arns[i:i + 100])[
                    "containerInstances"]:
                if ci.get("status") == "ACTIVE":
                    out[ci["ec2InstanceId"]] = ci["containerInstanceArn"]
        return out

    have = registered()
    for iid in sorted(running):
        if iid not in have:
            ecs.register_container_instance(cluster=stack,
                                            instanceIdentityDocument=json.dumps({"instanceId": iid}))
    have = registered()
    mine = {have[i] for i in running if i in have}
    if len(mine) < n:
        sys.exit(f"bench.py agent: only {len(mine)} of {n} instances are ACTIVE container instances")
    t_registered = time.monotonic()

    # 3. the scheduler's daemon tasks, one per DAEMON service per node
    while True:
        names = []
        token = None
        while True:
            page = ecs.list_services(cluster=stack, **({"nextToken": token} if token else {}))
            names += page.get("serviceArns", [])
            token = page.get("nextToken")
            if not token:
                break
        daemons = []
        for i in range(0, len(names), 10):
            for svc in ecs.describe_services(cluster=stack, services=names[i:i + 10])["services"]:
                if svc.get("schedulingStrategy") == "DAEMON" and svc.get("status") == "ACTIVE":
                    daemons.append(svc["serviceName"])
        placed = {}
        for t in _all_tasks(ecs, stack):
            if t.get("lastStatus") == "RUNNING" and t.get("containerInstanceArn") in mine:
                placed.setdefault(t.get("group"), set()).add(t["containerInstanceArn"])
        short = {d: n - len(placed.get(f"service:{d}", set()) & mine) for d in daemons}
        if daemons and not any(short.values()):
            break
        waiting = ("DAEMON services in cluster " + stack if not daemons else
                   "a RUNNING task of each DAEMON service on each of the " + str(n) + " nodes (missing: "
                   + ", ".join(f"{d} on {k}" for d, k in sorted(short.items()) if k) + ")")
        if time.monotonic() > deadline:
            give_up()
        time.sleep(0.2)
    t_daemons = time.monotonic()
    print(f"  agent: {n} nodes running after {t_instances - t0:.1f} s, registered after "
          f"{t_registered - t0:.1f} s, {len(daemons)} daemons ({', '.join(sorted(daemons))}) on every "
          f"node after {t_daemons - t0:.1f} s", file=sys.stderr)
    return 0


def cmd_events(rules, out):
    doc = {"events": rules_get(rules, "/_rules/events")["events"],
           "config": rules_get(rules, "/_rules/config")["config"],
           "now_wall": time.time()}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)


# ------------------------------------------------------------------------------------ timing


def proxy_calls(control):
    return json.loads(http("GET", control.rstrip("/") + "/calls"))


def cmd_run(args):
    """bench.py run --label L --out F --control URL [--log PREFIX] -- CMD..."""
    sep = args.index("--")
    opts, cmd = args[:sep], args[sep + 1 :]
    o = dict(zip(opts[::2], opts[1::2]))
    control = o["--control"]
    rules = o.get("--rules")
    timeout = float(o["--timeout"]) if "--timeout" in o else None
    http("POST", control.rstrip("/") + "/reset", b"")
    if rules:
        rules_violations(rules, clear=True)  # what set-up did is not this run's
    log = o.get("--log", o["--out"][: -len(".json")])
    timed_out = False
    with open(log + ".stdout", "wb") as out, open(log + ".stderr", "wb") as err:
        t0w = time.time()
        t0 = time.monotonic()
        try:
            rc = subprocess.call(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=timeout)
        except subprocess.TimeoutExpired:  # subprocess.call has killed it
            rc, timed_out = 124, True
        t1 = time.monotonic()
        t1w = time.time()
    seen = proxy_calls(control)
    result = {
        "label": o["--label"],
        "latency_ms": float(o.get("--latency", seen["latency_ms"])),
        "repeat": int(o.get("--repeat", 1)),
        "cmd": cmd,
        "rc": rc,
        "t0": t0,
        "t1": t1,
        "wall": t1 - t0,
        # the same moments on the wall clock, which the rules layer's events use
        "t0_wall": t0w,
        "t1_wall": t1w,
        "calls": seen["calls"],
    }
    if timed_out:
        result["timed_out"] = timeout
    if "--nodes" in o:
        result["nodes"] = int(o["--nodes"])
    if rules:
        result["violations"] = rules_violations(rules, clear=True)
    with open(o["--out"], "w") as f:
        json.dump(result, f, indent=1)
    nodes = f"  {result['nodes']:2d} nodes" if "nodes" in result else ""
    broke = f"  {len(result['violations'])} rule violation(s)" if result.get("violations") else ""
    print(
        f"  {o['--label']:<14} {result['latency_ms']:>5.0f} ms/call{nodes}  {result['wall']:7.3f} s  "
        f"{len(result['calls']):3d} calls  rc={rc}{' (timed out)' if timed_out else ''}{broke}",
        file=sys.stderr,
    )
    return 0 if rc == 0 else 1


def cmd_loop(args):
    sep = args.index("--")
    opts, cmd = args[:sep], args[sep + 1 :]
    o = dict(zip(opts[::2], opts[1::2]))
    n = int(o["-n"])
    times, codes = [], []
    for _ in range(n):
        t0 = time.monotonic()
        codes.append(subprocess.call(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        times.append(time.monotonic() - t0)
    result = {"results": [{"command": " ".join(cmd), "mean": statistics.mean(times),
                           "stddev": statistics.stdev(times), "min": min(times),
                           "max": max(times), "times": times, "exit_codes": codes,
                           "tool": "loop"}]}
    with open(o["--out"], "w") as f:
        json.dump(result, f)


# ---------------------------------------------------------------------------------- analysis

EPS = 0.002  # a call that started within 2 ms of another's end is taken to have waited for it


def rounds(calls):
    """Observed depth of each call: 1 + the depth of the deepest call that had ended before it
    started. With a per-call latency this is the number of round trips on the longest chain
    of calls that ran one after another."""
    done = [c for c in calls if c.get("end") is not None]
    done.sort(key=lambda c: c["start"])
    depth = {}
    pred = {}
    for c in done:
        cands = [d for d in done if d is not c and d["end"] <= c["start"] + EPS]
        # the deepest call that had answered; among those, one of the same service (a step's
        # calls go to one service), then the one that answered last
        who = max(cands, key=lambda d: (depth.get(d["seq"], 0), d["service"] == c["service"], d["end"]),
                  default=None)
        depth[c["seq"]] = (depth.get(who["seq"], 0) if who else 0) + 1
        pred[c["seq"]] = who
    return depth, pred


def summary(run):
    calls = run["calls"]
    depth, pred = rounds(calls)
    mutating = [c["op"] for c in calls if not is_read(c["op"])]
    first = min((c["start"] for c in calls), default=run["t1"])
    last = max((c["end"] or c["start"] for c in calls), default=run["t0"])
    by_round = {}
    for c in sorted(calls, key=lambda c: c["start"]):
        by_round.setdefault(depth.get(c["seq"], 0), []).append(c)
    # the chain that ends with the last call to finish
    chain = []
    if calls:
        c = max((c for c in calls if c.get("end") is not None), key=lambda c: c["end"], default=None)
        while c is not None:
            chain.append(c)
            c = pred.get(c["seq"])
        chain.reverse()
    return {
        "n": len(calls),
        "reads": len(calls) - len(mutating),
        "mutating": mutating,
        "depth": max(depth.values(), default=0),
        "by_round": by_round,
        "chain": chain,
        "before_first_call": first - run["t0"],
        "after_last_call": run["t1"] - last,
        "errors": [c for c in calls if (c.get("status") or 0) >= 400],
    }


# ------------------------------------------------------------------------------------ report

FLOOR_ROUNDS = {"up-cold": 4, "up-warm": 1, "guide-cli": 4, "sequential": 4, "down": None,
                "up-cold-norole": 4}
LABELS = [
    ("up-cold", "`l5d-ecs up --no-wait`, cold"),
    ("up-warm", "`l5d-ecs up --no-wait`, warm"),
    ("up-cold-norole", "`l5d-ecs up --no-wait`, cold, no instance role yet"),
    ("down", "`l5d-ecs down --yes`"),
    ("guide-cli", "guide's commands, `aws` CLI"),
    ("sequential", "same calls, one boto3 process"),
]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_s(x):
    return f"{x:.3f}"


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:
        return ""


def rounds_table(w, r, s):
    w("| round | starts (ms after launch) | calls |")
    w("|---|---|---|")
    for d, cs_ in sorted(s["by_round"].items()):
        t = sorted((c["start"] - r["t0"]) * 1000 for c in cs_)
        ops = {}
        for c in cs_:
            ops[c["op"]] = ops.get(c["op"], 0) + 1
        names = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in ops.items())
        w(f"| {d} | {t[0]:.0f}-{t[-1]:.0f} | {names} |")
    w("")


# ----------------------------------------------------------------- the rules layer's rows

SCALE_OPS = [
    ("status", "`l5d-ecs status`", True),
    ("deploy", "`l5d-ecs deploy hello-world --count N`", True),
    ("status-again", "`l5d-ecs status`, with the N app tasks", False),
    ("down", "`l5d-ecs down --yes`", True),
]
SCALE_LIMIT = 1.5  # each of status, deploy, down at the largest size within 1.5x the smallest


def load_runs(outdir, sub):
    runs = []
    for path in sorted(glob.glob(os.path.join(outdir, sub, "*.json"))):
        if os.path.basename(path).startswith("events-"):
            continue
        with open(path) as f:
            r = json.load(f)
        r["_file"] = os.path.relpath(path, os.path.dirname(outdir))
        runs.append(r)
    return runs


def op_counts(run):
    ops = {}
    for c in run["calls"]:
        ops[c["op"]] = ops.get(c["op"], 0) + 1
    return ops


def median_run(rs):
    m = med([r["wall"] for r in rs])
    return min(rs, key=lambda r: abs(r["wall"] - m))


def emulator_excess(run, s):
    """Seconds the emulator itself took on the run's critical path: for each call of the chain
    that ended last, how much longer than the proxy's latency it took to answer. moto answers
    one call at a time and slowly for big answers (DescribeInstances of 60 instances takes
    ~0.3 s), which real AWS would not add; wall minus this is what the tool would take if
    each call cost exactly the latency."""
    lat = run["latency_ms"] / 1000
    return sum(max(0.0, (c["end"] - c["start"]) - lat) for c in s["chain"])


def scale_analysis(outdir, meta):
    """(targets, page lines) of the scale row, or ([], []) when it did not run."""
    runs = load_runs(outdir, "scale")
    if not runs:
        return [], []
    lat = runs[0]["latency_ms"]
    by = {}
    for r in runs:
        by.setdefault((r["label"], r["nodes"]), []).append(r)
    sizes = sorted({r["nodes"] for r in runs})
    small, large = sizes[0], sizes[-1]

    @functools.lru_cache(maxsize=None)
    def st(label, n):
        rs = by.get((label, n))
        if not rs:
            return None
        sums = [summary(r) for r in rs]
        net = [r["wall"] - emulator_excess(r, x) for r, x in zip(rs, sums)]
        return {"runs": rs, "walls": [r["wall"] for r in rs], "wall": med([r["wall"] for r in rs]),
                "net": med(net),
                "calls": med([x["n"] for x in sums]), "calls_all": sorted({x["n"] for x in sums}),
                "depth": med([x["depth"] for x in sums]), "ok": all(r["rc"] == 0 for r in rs),
                "violations": [v for r in rs for v in r.get("violations", [])]}

    targets = []
    for label, title, is_target in SCALE_OPS:
        a, b = st(label, small), st(label, large)
        if not is_target:
            continue
        if a and b and small != large:
            ratio = b["wall"] / a["wall"]
            net = b["net"] / a["net"] if a["net"] > 0 else float("nan")
            targets.append((f"{title.replace(' --count N', f' --count {large}')} at {large} nodes within "
                            f"{SCALE_LIMIT}x of its time at {small} nodes ({lat:.0f} ms per call, rules "
                            "layer; judged less the emulator's own time, see Scale)",
                            f"{fmt_s(b['net'])} s vs {fmt_s(a['net'])} s = {net:.2f}x less the emulator's "
                            f"own time on the critical path; wall {fmt_s(b['wall'])} s vs "
                            f"{fmt_s(a['wall'])} s = {ratio:.2f}x; rounds {b['depth']:g} vs {a['depth']:g}"
                            + ("" if a["ok"] and b["ok"] else " (a run **failed**)"),
                            a["ok"] and b["ok"] and net <= SCALE_LIMIT and b["depth"] <= a["depth"] + 1))
        else:
            targets.append((f"{title} at {large} nodes within {SCALE_LIMIT}x of its time at {small} nodes",
                            "not measured (a size or the command's runs are missing)", False))

    L = []
    w = L.append
    delays = meta.get("scale_delays") or {}
    w(f"## Scale: `status`, `deploy`, `down` at {' and '.join(str(n) for n in sizes)} nodes "
      f"({lat:.0f} ms per call, rules layer)")
    w("")
    w("On the AWS rules layer (`tests/awsrules/serve`), whose DAEMON scheduler keeps one task of each "
      "daemon service on every ACTIVE container instance, so the daemons really run on each node. "
      "Set-up, untimed, for each size and run: reset, warm, `ecsInstanceRole` present, "
      "`up --no-wait --min 1 --desired N --max N` straight to the rules layer, one container "
      "instance registered per running instance of the ASG (`bench.py agent`, boto3, as the "
      "integration tests' stand-in ECS agent does), then a poll until every daemon service has a "
      "RUNNING task on each of the N nodes. Timed through the proxy: `status`, `deploy hello-world "
      "--count N` (which waits until the N tasks are RUNNING: ECS tasks are pinned RUNNING, so "
      "that is one look), `status` again, `down --yes`. Consistency delays of the rules layer "
      "during this row: " + (", ".join(f"{k} {v:g} s" for k, v in sorted(delays.items())) or "its defaults")
      + " (so fixed waits do not hide per-node costs).")
    w("")
    w(f"| command | nodes | wall s (median) | each run, s | AWS calls | observed rounds | "
      f"wall {large}/{small} | calls {large}/{small} | less emulator time, s | its {large}/{small} |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for label, title, _ in SCALE_OPS:
        base = st(label, small)
        for n in sizes:
            x = st(label, n)
            if not x:
                continue
            fail = "" if x["ok"] else " (**failed**: see bench/out/scale)"
            ratio = calls_ratio = net_ratio = "-"
            if n == large and base and n != small:
                ratio = f"{x['wall'] / base['wall']:.2f}x"
                calls_ratio = f"{x['calls'] / base['calls']:.1f}x" if base["calls"] else "-"
                net_ratio = f"{x['net'] / base['net']:.2f}x" if base["net"] > 0 else "-"
            w(f"| {title}{fail} | {n} | {fmt_s(x['wall'])} | {', '.join(fmt_s(v) for v in sorted(x['walls']))} | "
              f"{'/'.join(str(c) for c in x['calls_all'])} | {x['depth']:g} | {ratio} | {calls_ratio} | "
              f"{fmt_s(x['net'])} | {net_ratio} |")
    w("")
    w("Less emulator time: the wall time minus how much longer than the latency each call on the "
      "critical path (the chain of calls that ended last) took to be answered. The rules layer "
      "answers one call at a time (moto is not thread-safe), and moto's serializer is slow on big "
      "answers: timed inside the rules layer on 2026-12-02 (moto 5.2.5), a `DescribeInstances` "
      "of 61 instances took ~40 ms, a `DescribeTasks` of 100 tasks ~30-45 ms, a "
      "`DescribeContainerInstances` of 60 ~45 ms, two to three times that on a slower day of "
      "the same machine, and the ~20 calls of a round queue behind each other. Real AWS answers "
      "in about the same time whatever the size and serves calls side by side, so this column "
      "estimates the tool's own time at the given latency. The targets are judged on it (and on "
      "the rounds: at most one more at the largest size). Both ratios are in the table.")
    w("")
    broke = [(label, n, v) for label, _, _ in SCALE_OPS for n in sizes
             for v in (st(label, n) or {"violations": []})["violations"]]
    if broke:
        w("Calls the rules layer says AWS would have refused: "
          + "; ".join(f"{label} at {n} nodes: rule {v.get('rule')} ({v.get('service')}:{v.get('operation')})"
                      for label, n, v in broke) + ".")
    else:
        w("No call of these runs broke a rule of the rules layer.")
    w("")

    # per-item calls: each operation's count at the largest size, beside the smallest's
    w(f"### Calls made at {large} nodes (the median run of each command; in brackets, at {small} nodes)")
    w("")
    cols = [(label, title) for label, title, _ in SCALE_OPS if st(label, large)]
    counts_l = {label: op_counts(median_run(st(label, large)["runs"])) for label, _ in cols}
    counts_s = {label: op_counts(median_run(st(label, small)["runs"])) if st(label, small) else {}
                for label, _ in cols}
    ops = sorted({op for c in counts_l.values() for op in c},
                 key=lambda op: (-max(counts_l[label].get(op, 0) for label, _ in cols), op))
    w("| operation | " + " | ".join(label for label, _ in cols) + " |")
    w("|---|" + "---|" * len(cols))
    for op in ops:
        cells = []
        for label, _ in cols:
            nl, ns = counts_l[label].get(op, 0), counts_s[label].get(op, 0)
            cell = "" if nl == 0 and ns == 0 else f"{nl} ({ns})"
            if nl > max(ns, 1) * 3 and nl >= large / 2:
                cell = f"**{cell}**"  # grows with the nodes: a call per node or per task
            cells.append(cell)
        w(f"| {op} | " + " | ".join(cells) + " |")
    w("")
    w(f"In bold: operations made at least {large // 2} times at {large} nodes and over 3x as often "
      f"as at {small}: calls per node or per task, not per batch.")
    w("")
    # the longest chain of the slowest command at the largest size
    worst = max(cols, key=lambda c: st(c[0], large)["wall"] / ((st(c[0], small) or {"wall": 0})["wall"] or 1))
    r = median_run(st(worst[0], large)["runs"])
    sr = summary(r)
    w(f"Rounds of {worst[1]} at {large} nodes (the command that grew most; median run, "
      f"{fmt_s(r['wall'])} s, {sr['n']} calls in {sr['depth']} rounds):")
    w("")
    rounds_table(w, r, sr)
    return targets, L


# the waits of the overshoot row: rule -> the key of its delay in the rules layer's settings
WAIT_DELAY_KEY = {
    "instance_profile": "instance_profile",
    "service_linked_role": "service_linked_role",
    "eni_release": "eni_release",
    "asg_delete": "asg_delete",
    "service_drain": "service_drain",
    "cluster_container_instances": "container_instance_deregister",
}
WAIT_WHAT = {
    "instance_profile": "new instance profile known to Auto Scaling / EC2",
    "service_linked_role": "ECS service-linked role assumable",
    "eni_release": "terminated instances' network interfaces gone (security group deletable)",
    "asg_delete": "ASG deleted (its launch configuration deletable)",
    "service_drain": "deleted services drained (cluster deletable)",
    "cluster_container_instances": "container instances deregistered (cluster deletable)",
}
# A wait the tool may sit out by reading, with no refused call (so no "accepted" event): from
# the proxy's log, the call that starts the delay and the call the wait guards; the latency
# both were held for cancels out.
WAIT_BY_READING = {
    "asg_delete": (["DeleteAutoScalingGroup"], ["DeleteLaunchConfiguration"]),
    "instance_profile": (["CreateInstanceProfile", "AddRoleToInstanceProfile"], ["CreateLaunchConfiguration"]),
}


def wait_limit(wait):
    return max(1.0, 0.1 * wait)


def overshoot_analysis(outdir, meta):
    runs = load_runs(outdir, "overshoot")
    if not runs:
        return [], []
    lat = runs[0]["latency_ms"]
    reps = sorted({r["repeat"] for r in runs})
    configured = meta.get("wait_delays") or {}
    rows = []  # one per wait seen
    walls = []
    for rep in reps:
        rs = {r["label"]: r for r in runs if r["repeat"] == rep}
        walls.append((rep, rs))
        path = os.path.join(outdir, "overshoot", f"events-{rep}.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            doc = json.load(f)
        delays = doc.get("config", {}).get("delays", {})

        def which(at):
            for label, r in rs.items():
                if r.get("t0_wall", 0) <= at <= r.get("t1_wall", 0):
                    return label
            return "?"

        seen_rules = set()
        for e in doc["events"]:
            if e["kind"] != "accepted":
                continue
            key = WAIT_DELAY_KEY.get(e["rule"])
            delay = delays.get(key) if key else None
            ready, first = e.get("ready_at"), e.get("first_refused_at")
            label = which(e["at"])
            seen_rules.add((label, e["rule"]))
            rows.append({
                "rep": rep, "cmd": label, "rule": e["rule"], "op": e["operation"],
                "resource": e.get("resource", ""), "how": "refused, retried",
                # the wait from the moment it started (what started it: the profile made, the
                # group's deletion accepted, the last instance terminated) is the delay itself:
                # the rules layer's ready_at is that moment + the delay
                "wait": delay if delay is not None else ((ready - first) if ready and first else None),
                "from_first_refusal": (ready - first) if ready and first else None,
                "refusals": e.get("refusals"), "overshoot": e.get("overshoot"),
            })
        # waits sat out by reading (no refusal, so no event): from the proxy's log
        for rule, (causes, guarded) in WAIT_BY_READING.items():
            delay = delays.get(WAIT_DELAY_KEY[rule])
            for label, r in rs.items():
                if (label, rule) in seen_rules or not delay:
                    continue
                calls = sorted((c for c in r["calls"] if (c.get("status") or 0) < 400 and c.get("end")),
                               key=lambda c: c["start"])
                cause = [c for c in calls if c["op"] in causes]
                if not cause:
                    continue
                after = [c for c in calls if c["op"] in guarded and c["start"] > cause[-1]["start"]]
                if not after:
                    continue
                c0, c1 = cause[-1], after[0]
                if c1["start"] - c0["start"] < delay * 0.5:
                    continue  # the guarded call did not wait for this delay (e.g. no new profile)
                rows.append({
                    "rep": rep, "cmd": label, "rule": rule, "op": c1["op"], "resource": "",
                    "how": f"read until ready (from the proxy's log: {c0['op']} to {c1['op']})",
                    "wait": delay, "from_first_refusal": None, "refusals": 0,
                    "overshoot": c1["start"] - c0["start"] - delay,
                })

    targets = []
    for rule in sorted(configured):
        mine = [x for x in rows if x["rule"] == rule and x["overshoot"] is not None]
        if not mine:
            targets.append((f"overshoot of the {rule} wait ({configured[rule]:g} s) <= max(1 s, 10% of the wait)",
                            "not measured: no wait of this kind was seen", False))
            continue
        worst = max(mine, key=lambda x: x["overshoot"] - wait_limit(x["wait"] or 0))
        runs_n = len({x["rep"] for x in mine})
        targets.append((f"overshoot of the {rule} wait ({configured[rule]:g} s) <= max(1 s, 10% of the wait) "
                        f"({lat:.0f} ms per call, rules layer)",
                        f"worst {worst['overshoot']:.3f} s (limit {wait_limit(worst['wait'] or 0):.1f} s), "
                        f"{len(mine)} wait(s) in {runs_n} run(s)",
                        all(x["overshoot"] <= wait_limit(x["wait"] or 0) for x in mine)))

    L = []
    w = L.append
    w(f"## Waits: how long after AWS was ready each wait ended ({lat:.0f} ms per call, rules layer)")
    w("")
    w("The rules layer with delays " + ", ".join(f"{k} {v:g} s" for k, v in sorted(configured.items()))
      + " (the others at its defaults), on an account without `ecsInstanceRole`: a cold "
      "`up --no-wait` (creates the role and its instance profile, then must wait until Auto "
      "Scaling knows the profile before `CreateLaunchConfiguration` is accepted), then `down --yes` "
      "(waits for the ASG's deletion before its launch configuration can go, and for the "
      "terminated instances' network interfaces before the security group can go). "
      "Overshoot: when the tool's call that ended the wait reached the rules layer minus when AWS "
      "would first have accepted it (the rules layer's `accepted` event: `at - ready_at`; a wait "
      "sat out by reading, with no refused call, from the proxy's log: the guarded call's start "
      "minus the start of the call that began the delay, minus the delay). Wait: from the moment "
      "it started (profile made, deletion accepted, last instance terminated) to ready, which is "
      "the delay itself; the limit is max(1 s, 10% of it). Each call is held "
      f"{lat:.0f} ms by the proxy before it reaches the rules layer, so a retry sent the moment "
      f"AWS is ready still overshoots by about {lat / 1000:.1f} s.")
    w("")
    w("| run | command | wait | how | call that ended it | refusals | wait s | first refusal to ready, s "
      "| overshoot s | limit s | |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for x in sorted(rows, key=lambda x: (x["rep"], x["cmd"] != "up", x["rule"], x["resource"])):
        ok = x["overshoot"] is not None and x["overshoot"] <= wait_limit(x["wait"] or 0)
        fr = f"{x['from_first_refusal']:.3f}" if x["from_first_refusal"] is not None else "-"
        wt = f"{x['wait']:g}" if x["wait"] is not None else "?"
        ov = f"{x['overshoot']:.3f}" if x["overshoot"] is not None else "?"
        w(f"| {x['rep']} | {x['cmd']} | {x['rule']}: {WAIT_WHAT.get(x['rule'], '')} | {x['how']} | "
          f"{x['op']} {x['resource']} | {x['refusals']} | {wt} | {fr} | {ov} | "
          f"{wait_limit(x['wait'] or 0):.1f} | {'met' if ok else '**not met**'} |")
    w("")
    w("Worst per kind of wait:")
    w("")
    w("| wait | waits seen | worst overshoot s | its wait s | limit s | |")
    w("|---|---|---|---|---|---|")
    for rule in sorted({x["rule"] for x in rows} | set(configured)):
        mine = [x for x in rows if x["rule"] == rule and x["overshoot"] is not None]
        if not mine:
            w(f"| {rule} | 0 | - | - | - | not measured |")
            continue
        worst = max(mine, key=lambda x: x["overshoot"] - wait_limit(x["wait"] or 0))
        ok = all(x["overshoot"] <= wait_limit(x["wait"] or 0) for x in mine)
        w(f"| {rule}{'' if rule in configured else ' (default delay)'} | {len(mine)} | {worst['overshoot']:.3f} | "
          f"{worst['wait']:g} | {wait_limit(worst['wait'] or 0):.1f} | {'met' if ok else '**not met**'} |")
    w("")
    w("The runs: " + "; ".join(
        f"run {rep}: " + ", ".join(
            f"`{label}` {fmt_s(r['wall'])} s, {len(r['calls'])} calls"
            + ("" if r["rc"] == 0 else f" (**failed**, rc {r['rc']}: see {r['_file'][:-5]}.stderr)")
            + (f", {len(r['violations'])} rule violation(s)" if r.get("violations") else "")
            for label, r in sorted(rs.items(), key=lambda kv: kv[0] != "up"))
        for rep, rs in walls) + ".")
    w("")
    return targets, L


def cmd_report(outdir, results_md):
    runs = []
    for path in sorted(glob.glob(os.path.join(outdir, "runs", "*.json"))):
        with open(path) as f:
            runs.append(json.load(f))
    with open(os.path.join(outdir, "meta.json")) as f:
        meta = json.load(f)
    latencies = sorted({r["latency_ms"] for r in runs})
    table = {}
    for r in runs:
        table.setdefault((r["latency_ms"], r["label"]), []).append(r)

    def stats(lat, label):
        rs = table.get((lat, label), [])
        if not rs:
            return None
        walls = [r["wall"] for r in rs]
        sums = [summary(r) for r in rs]
        return {
            "runs": rs,
            "walls": walls,
            "wall": med(walls),
            "calls": med([s["n"] for s in sums]),
            "calls_all": sorted({s["n"] for s in sums}),
            "depth": med([s["depth"] for s in sums]),
            "mutating": sorted({m for s in sums for m in s["mutating"]}),
            "ok": all(r["rc"] == 0 for r in rs),
            "sums": sums,
        }

    samples = []
    spath = os.path.join(outdir, "samples.txt")
    if os.path.exists(spath):
        with open(spath) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2:
                    samples.append((float(parts[1]), [p.rsplit(":", 1) for p in parts[2:] if ":" in p]))
    activity = ""
    if samples:
        loads = sorted(l for l, _ in samples)
        seen = {}
        for _, procs in samples:
            for name, pct in procs:
                seen.setdefault(name, []).append(float(pct))
        top_procs = sorted(seen.items(), key=lambda kv: -sum(kv[1]))[:6]
        activity = (f"sampled every ~10 s during the timed runs ({len(samples)} samples): 1-minute load "
                    f"{loads[0]:.2f} min / {statistics.median(loads):.2f} median / {loads[-1]:.2f} max; "
                    "other processes over 10% CPU: "
                    + (", ".join(f"{n} in {len(v)} samples (mean {statistics.mean(v):.0f}%)" for n, v in top_procs)
                       or "none")
                    + " (the benchmark's own moto, proxy and tools are left out)")

    scale_targets, scale_lines = scale_analysis(outdir, meta)
    wait_targets, wait_lines = overshoot_analysis(outdir, meta)
    rows_run = meta.get("rows") or ["up", "startup"]

    L = []
    w = L.append
    w("# Benchmark: `l5d-ecs`")
    w("")
    w("Generated by `bench/up.sh`; do not edit by hand (the script rewrites this page whole).")
    w("")
    w("Rows: `up` (cold and warm `up`, `down`, against the guide's own commands), `startup` "
      "(binary start-up), `scale` (`status`, `deploy`, `down` at 2 and 60 nodes), `overshoot` "
      f"(how long after AWS is ready each wait ends). This run: {', '.join(rows_run)}.")
    w("")
    w(f"- date: {meta['date']}")
    w(f"- machine: {meta['machine']}")
    w(f"- load while measuring: {meta['load']}")
    w(f"- what else the machine was doing: {activity or meta.get('busy', 'not sampled')}")
    w(f"- moto {meta['moto']} (server mode, loopback, `MOTO_IAM_LOAD_MANAGED_POLICIES=true`); "
      f"aws CLI {meta['awscli']}; boto3 {meta['boto3']}; {meta['rustc']}")
    build = meta.get("build", "release build")
    if build == "release build":
        w(f"- l5d-ecs: release build of {meta['commit']}")
    else:
        w(f"- l5d-ecs: {build}; source tree at {meta['commit']}")
    if meta.get("binary_bytes"):
        b = meta["binary_bytes"]
        w(f"- binary size: {b:,} bytes ({b / 1048576:.2f} MiB)"
          + ("" if build == "release build" else " (**not** the release binary)"))
    w(f"- {meta['repeats']} runs of each measurement (per latency, per size); the tables give "
      "the median (and the spread of the runs)")
    w("")

    # ---- targets
    w("## Targets")
    w("")
    w("The `up` row's targets are at 200 ms per call, on moto; the `scale` and `overshoot` rows' "
      "on the AWS rules layer, at the latency they name.")
    w("")
    targets = []
    cold, warm = stats(200.0, "up-cold"), stats(200.0, "up-warm")
    seq, cli = stats(200.0, "sequential"), stats(200.0, "guide-cli")
    if cold:
        floor = 4 * 0.2
        targets.append(("cold `up --no-wait` within 1.3x of the floor (4 x 200 ms = 0.8 s)",
                        f"{fmt_s(cold['wall'])} s = {cold['wall'] / floor:.2f}x floor",
                        cold["ok"] and cold["wall"] <= 1.3 * floor))
    if cold and seq:
        targets.append(("cold `up` at least 3x faster than the sequential boto3 script",
                        f"{seq['wall'] / cold['wall']:.2f}x ({fmt_s(seq['wall'])} s vs {fmt_s(cold['wall'])} s)",
                        cold["ok"] and seq["wall"] >= 3 * cold["wall"]))
    if cold and cli:
        targets.append(("cold `up` at least 6x faster than the guide's `aws` CLI commands",
                        f"{cli['wall'] / cold['wall']:.2f}x ({fmt_s(cli['wall'])} s vs {fmt_s(cold['wall'])} s)",
                        cold["ok"] and cli["wall"] >= 6 * cold["wall"]))
    if warm:
        max_calls = max(s["n"] for s in warm["sums"])
        targets.append(("warm `up` at most 20 calls", f"{max_calls} calls (worst run)", max_calls <= 20))
        targets.append(("warm `up`: reads only",
                        "mutating: " + (", ".join(warm["mutating"]) if warm["mutating"] else "none"),
                        not warm["mutating"]))
        worst = max(warm["walls"])
        targets.append(("warm `up` in at most 0.5 s", f"{fmt_s(warm['wall'])} s (worst run {fmt_s(worst)} s)",
                        warm["ok"] and warm["wall"] <= 0.5))
    targets += scale_targets + wait_targets
    w("| target | measured | |")
    w("|---|---|---|")
    for name, measured, ok in targets:
        w(f"| {name} | {measured} | {'met' if ok else '**not met**'} |")
    w("")

    # ---- per latency
    for lat in latencies:
        w(f"## {lat:.0f} ms per call")
        w("")
        if lat > 0:
            w(f"Critical-path floor: 4 round trips x {lat:.0f} ms = {4 * lat / 1000:.3f} s for a cold `up` "
              f"(role present); 1 round trip = {lat / 1000:.3f} s for a warm one.")
        else:
            w("No injected latency: the floor is 0, so no ratio, and rounds are not told apart; this "
              "table shows the tools' own cost (process start-up, moto's few ms per call).")
        w("")
        w("| run | wall s (median) | each run, s | AWS calls | of them mutating | observed rounds | wall / floor |")
        w("|---|---|---|---|---|---|---|")
        for label, title in LABELS:
            s = stats(lat, label)
            if not s:
                continue
            fr = FLOOR_ROUNDS[label]
            ratio = f"{s['wall'] / (fr * lat / 1000):.2f}x" if fr and lat > 0 else "-"
            nmut = med([len(x["mutating"]) for x in s["sums"]])
            calls = "/".join(str(c) for c in s["calls_all"])
            spread = ", ".join(fmt_s(x) for x in sorted(s["walls"]))
            fail = "" if s["ok"] else " (**failed**: see bench/out)"
            depth = f"{s['depth']:g}" if lat > 0 else "-"
            w(f"| {title}{fail} | {fmt_s(s['wall'])} | {spread} | {calls} | {nmut:g} | {depth} | {ratio} |")
        w("")

    # ---- where the time goes
    top = max(latencies) if latencies else 0
    cs = stats(top, "up-cold")
    if cs and top > 0:
        r = min(cs["runs"], key=lambda r: abs(r["wall"] - cs["wall"]))
        s = summary(r)
        w(f"## Where a cold `up` spends its time ({top:.0f} ms per call, the median run)")
        w("")
        w(f"Wall {fmt_s(r['wall'])} s; {s['n']} calls in {s['depth']} rounds (a round: calls that "
          f"started only after a call of the round before had answered). "
          f"{s['before_first_call'] * 1000:.0f} ms from the process start to its first call, "
          f"{s['after_last_call'] * 1000:.0f} ms from the last answer to exit.")
        w("")
        rounds_table(w, r, s)
        first_round = s["by_round"].get(1, [])
        if first_round:
            a = (min(c["end"] for c in first_round) - r["t0"]) * 1000
            b = (max(c["end"] for c in first_round) - r["t0"]) * 1000
            w(f"The {len(first_round)} calls of round 1 answered between {a:.0f} and {b:.0f} ms: moto "
              "serves concurrent calls more or less one at a time, so the last of a wide round comes "
              f"back up to {b - a:.0f} ms after the first (real AWS would not add this).")
            w("")
        w("The chain that ended last, as the log shows it (each call started after the one before it "
          "had answered; where several calls of the round before could have held it up, the one of "
          "the same service, else the last to answer, is shown):")
        w("")
        w(" -> ".join(f"{c['op']} ({(c['start'] - r['t0']) * 1000:.0f}-{(c['end'] - r['t0']) * 1000:.0f} ms)"
                      for c in s["chain"]))
        w("")
        sg = [c for c in r["calls"] if c["op"] == "CreateSecurityGroup"]
        if sg:
            dep, _ = rounds(r["calls"])
            w(f"Rounds before `CreateSecurityGroup`: {dep[sg[0]['seq']] - 1}.")
            w("")
        def at(op, edge):
            cs_ = [c for c in r["calls"] if c["op"] == op]
            return (min(c[edge] for c in cs_) - r["t0"]) * 1000 if cs_ else None
        sg_end, rp_end = at("CreateSecurityGroup", "end"), at("PutRolePolicy", "end")
        lc_start, asg_end = at("CreateLaunchConfiguration", "start"), at("CreateAutoScalingGroup", "end")
        if None not in (sg_end, lc_start):
            w(f"`CreateLaunchConfiguration` started at {lc_start:.0f} ms: `CreateSecurityGroup` had "
              f"answered at {sg_end:.0f} ms"
              + (f", `PutRolePolicy` (the role-policy step, which the launch configuration waits for) "
                 f"at {rp_end:.0f} ms." if rp_end is not None else "."))
            w("")
        if asg_end is not None:
            w(f"The issue's chain (look-ups, security group, launch configuration, ASG) ended when "
              f"`CreateAutoScalingGroup` answered, at {asg_end:.0f} ms = "
              f"{asg_end / (4 * top):.2f}x the floor; the process exited at {r['wall'] * 1000:.0f} ms.")
            w("")
        dep, _ = rounds(r["calls"])
        acct = [c for c in r["calls"] if c["op"] == "GetCallerIdentity"]
        if acct:
            d = dep.get(acct[0]["seq"])
            beside = sum(1 for c in r["calls"] if dep.get(c["seq"]) == d) - 1
            w(f"The account check (`GetCallerIdentity`) ran in round {d}, beside {beside} other call(s).")
            w("")
        # same operation several times in a row on the chain: independent calls made in series
        runs_ = []
        for c in s["chain"]:
            if runs_ and runs_[-1][0] == c["op"]:
                runs_[-1][1] += 1
            else:
                runs_.append([c["op"], 1])
        for op, k in runs_:
            if k > 1:
                w(f"On that chain, `{op}` was made {k} times one after another ({k - 1} round(s) "
                  f"more than if they had been made at once).")
                w("")
        extra = s["depth"] - 4
        if extra > 0:
            tail = s["chain"][-1]["op"] if s["chain"] else "?"
            w(f"That is {s['depth']} rounds against the floor's 4: {extra} round(s) more "
              f"({extra * top / 1000:.1f} s at {top:.0f} ms per call)"
              + ("." if tail == "CreateAutoScalingGroup" else
                 f", on the chain above, which ends with `{tail}`, not with the ASG.")
              )
            w("")
        base, norole = stats(top, "up-cold"), stats(top, "up-cold-norole")
        if base and norole:
            rr = min(norole["runs"], key=lambda x: abs(x["wall"] - norole["wall"]))
            ss = summary(rr)
            iam = [c for c in sorted(rr["calls"], key=lambda c: c["start"]) if c["service"] == "iam" and not is_read(c["op"])]
            dep2, _ = rounds(rr["calls"])
            w(f"Without the instance role (a new account), a cold `up` took {fmt_s(norole['wall'])} s "
              f"({norole['wall'] - base['wall']:+.3f} s, {ss['depth']} rounds, {ss['n']} calls); its IAM "
              "writes, in the rounds they ran: "
              + ", ".join(f"{c['op']} (round {dep2[c['seq']]})" for c in iam) + ".")
            w("")

    # ---- warm up calls
    ws = (stats(top, "up-warm") or stats(latencies[0], "up-warm")) if latencies else None
    if ws:
        r = ws["runs"][0]
        w(f"## Every call of a warm `up` ({r['latency_ms']:.0f} ms per call, first run)")
        w("")
        w("| # | service | operation | kind |")
        w("|---|---|---|---|")
        for i, c in enumerate(sorted(r["calls"], key=lambda c: c["start"]), 1):
            w(f"| {i} | {c['service']} | {c['op']} | {'read' if is_read(c['op']) else '**mutating**'} |")
        w("")

    # ---- down, the other tools' calls
    ds = stats(top, "down")
    if ds and top > 0:
        r = min(ds["runs"], key=lambda x: abs(x["wall"] - ds["wall"]))
        w(f"## Where `down --yes` spends its time ({top:.0f} ms per call, the median run)")
        w("")
        sd = summary(r)
        w(f"Wall {fmt_s(r['wall'])} s; {sd['n']} calls in {sd['depth']} rounds.")
        w("")
        rounds_table(w, r, sd)
    if ds:
        r = ds["runs"][0]
        ops = {}
        for c in r["calls"]:
            ops[c["op"]] = ops.get(c["op"], 0) + 1
        w(f"`down --yes` made these calls ({r['latency_ms']:.0f} ms per call, first run): "
          + ", ".join(f"{k} x{v}" if v > 1 else k for k, v in ops.items()) + ".")
        w("")
    gs = stats(top, "guide-cli")
    if gs:
        r = gs["runs"][0]
        w("The guide's commands, as run (one `aws` process each): "
          + ", ".join(c["op"] for c in sorted(r["calls"], key=lambda c: c["start"])) + ".")
        w("")

    # ---- the rules layer's rows
    L.extend(scale_lines)
    L.extend(wait_lines)

    # ---- start-up
    startups = sorted(glob.glob(os.path.join(outdir, "startup-*.json")))
    if startups:
        w("## Binary start-up")
        w("")
        w("| command | exit code | mean ms | sd ms | min ms | runs | tool |")
        w("|---|---|---|---|---|---|---|")
    for path in startups:
        with open(path) as f:
            res = json.load(f)["results"][0]
        n = len(res.get("times", [])) or "?"
        codes = "/".join(str(c) for c in sorted(set(res.get("exit_codes") or []))) or "?"
        w(f"| `{res['command'].replace(meta['binary'], 'l5d-ecs')}` | {codes} | {res['mean'] * 1000:.1f} | "
          f"{res['stddev'] * 1000:.1f} | {res['min'] * 1000:.1f} | {n} | {res.get('tool', 'hyperfine')} |")
    if startups:
        w("")

    # ---- method
    w("## How it was measured")
    w("")
    w("- moto runs on loopback; every tool talks to it through `bench/latency_proxy.py`, which "
      "holds each call for the stated latency before forwarding it (concurrent calls wait "
      "concurrently) and logs service, operation and start/end times. moto itself answers in a "
      "few ms per call.")
    w("- Before each run: `POST /moto-api/reset`, one call of each service straight to moto "
      "(the first call of a fresh backend takes about a second), and `ecsInstanceRole` with its "
      "instance profile and `AmazonEC2ContainerServiceforEC2Role` created straight in moto, so the "
      "role is present as the issue assumes. None of this goes through the proxy or is timed.")
    w("- `l5d-ecs` (release build): `up --allow-cidr 203.0.113.7/32 --no-wait` on a fresh account "
      "(cold), the same again (warm), then `down --yes`, with a temp `--state` file and "
      "`AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-west-1 "
      "AWS_ENDPOINT_URL=<proxy> AWS_EC2_METADATA_DISABLED=true`. Besides, one cold `up` on a reset "
      "moto without `ecsInstanceRole`, to show what creating the role costs.")
    w("- The guide's `up` commands (`bench/guide.sh`): security group + ingress, run-instances "
      "(consul server), create-cluster, put-role-policy, five register-task-definition, "
      "create-launch-configuration, create-auto-scaling-group, with the `aws` CLI v1; edits: the "
      "endpoint and region from the environment, the AMI read from the SSM parameter "
      "`/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id` (one more call, as "
      "l5d-ecs makes), no key pair (the guide allows leaving it out), moto's availability zone, "
      "the task definition families prefixed with the stack; the files it names are the "
      "project's templates rendered for stack `l5d-demo` (`bench.py render`).")
    w("- `bench/sequential.py`: the same calls, one after another, from one Python process with "
      "boto3: the fastest a sequential tool could be.")
    w("- Wall time: from just before the process is started to its exit, so it includes the "
      "process's own start-up (Python's, for the aws CLI and boto3). The ratio to the floor uses "
      "4 round trips for every cold `up` (the issue's chain: look-ups, security group, launch "
      "configuration, ASG) and 1 for a warm `up`; `down` has no floor here.")
    w("- Observed rounds: the depth of the longest chain of calls in which each call started "
      "only after the one before it had answered (from the proxy's log).")
    w("- Start-up: `hyperfine` (Debian package) when present, else a loop in `bench.py`.")
    w("- The `scale` and `overshoot` rows run on the AWS rules layer (`tests/awsrules/serve`: moto "
      "behind what a real account does that moto does not: eventual consistency delays, deletions "
      "that take time, ECS's DAEMON scheduler), with its own proxy in front; after a reset, ECS "
      "tasks are pinned RUNNING (moto's state manager), as the integration tests do. Calls a run "
      "made that AWS would refuse (the rules layer's violations) are recorded with the run.")
    w("- Observed rounds of the `scale` row: as above; calls to the same service that run one "
      "after another (per-node or per-task calls made in series) each add a round.")
    w("")
    w("## Reproduce")
    w("")
    w("```sh")
    w("bench/up.sh                      # everything: venv, jq, release build, moto, rules layer, proxies, runs, this page")
    w("BENCH_REPEATS=5 BENCH_LATENCIES='0 50 200' bench/up.sh")
    w("BENCH_MAX_LOAD=1.0 BENCH_LOAD_WAIT=600 bench/up.sh   # wait for a quiet machine first")
    w("BENCH_ROWS=scale,overshoot BENCH_REPEATS=1 bench/up.sh   # only the rules layer's rows")
    w("BENCH_BIN=target/debug/l5d-ecs BENCH_ROWS=scale bench/up.sh   # another binary; no build")
    w("BENCH_SCALE_NODES='2 20 60' BENCH_RULES_LATENCY=200 BENCH_ROWS=scale bench/up.sh")
    w("```")
    w("")
    w("Raw data (every run's call log, stdout and stderr) is left in `bench/out/` (not committed).")
    w("")
    with open(results_md, "w") as f:
        f.write("\n".join(L))
    # a short text summary for the terminal
    for name, measured, ok in targets:
        print(f"{'MET    ' if ok else 'NOT MET'}  {name}: {measured}")
    return 0


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "reset":
        cmd_reset(args[0])
    elif cmd == "fresh":
        cmd_reset(args[0])
        cmd_warm(args[0])
        cmd_role(args[0], args[1])
    elif cmd == "fresh-norole":
        cmd_reset(args[0])
        cmd_warm(args[0])
    elif cmd == "warm":
        cmd_warm(args[0])
    elif cmd == "role":
        cmd_role(args[0], args[1])
    elif cmd == "az":
        cmd_az(args[0])
    elif cmd == "render":
        cmd_render(*args)
    elif cmd == "run":
        sys.exit(cmd_run(args))
    elif cmd == "loop":
        cmd_loop(args)
    elif cmd == "rules-fresh":
        sys.exit(cmd_rules_fresh(args))
    elif cmd == "agent":
        sys.exit(cmd_agent(args))
    elif cmd == "events":
        cmd_events(*args)
    elif cmd == "report":
        sys.exit(cmd_report(*args))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
