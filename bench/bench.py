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
"""

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


# ------------------------------------------------------------------------------------ timing


def proxy_calls(control):
    return json.loads(http("GET", control.rstrip("/") + "/calls"))


def cmd_run(args):
    """bench.py run --label L --out F --control URL [--log PREFIX] -- CMD..."""
    sep = args.index("--")
    opts, cmd = args[:sep], args[sep + 1 :]
    o = dict(zip(opts[::2], opts[1::2]))
    control = o["--control"]
    http("POST", control.rstrip("/") + "/reset", b"")
    log = o.get("--log", o["--out"][: -len(".json")])
    with open(log + ".stdout", "wb") as out, open(log + ".stderr", "wb") as err:
        t0 = time.monotonic()
        rc = subprocess.call(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        t1 = time.monotonic()
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
        "calls": seen["calls"],
    }
    with open(o["--out"], "w") as f:
        json.dump(result, f, indent=1)
    print(
        f"  {o['--label']:<14} {result['latency_ms']:>5.0f} ms/call  {result['wall']:7.3f} s  "
        f"{len(result['calls']):3d} calls  rc={rc}",
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

    L = []
    w = L.append
    w("# Benchmark: `l5d-ecs up` against the guide's own commands")
    w("")
    w("Generated by `bench/up.sh`; do not edit by hand (the script rewrites this page whole).")
    w("")
    w(f"- date: {meta['date']}")
    w(f"- machine: {meta['machine']}")
    w(f"- load while measuring: {meta['load']}")
    w(f"- what else the machine was doing: {activity or meta.get('busy', 'not sampled')}")
    w(f"- moto {meta['moto']} (server mode, loopback, `MOTO_IAM_LOAD_MANAGED_POLICIES=true`); "
      f"aws CLI {meta['awscli']}; boto3 {meta['boto3']}; {meta['rustc']}")
    w(f"- l5d-ecs: release build of {meta['commit']}")
    w(f"- {meta['repeats']} runs of each measurement per latency; the tables give the median "
      "(and the spread of the runs)")
    w("")

    # ---- targets
    w("## Targets (at 200 ms per call)")
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

    # ---- start-up
    w("## Binary start-up")
    w("")
    w("| command | exit code | mean ms | sd ms | min ms | runs | tool |")
    w("|---|---|---|---|---|---|---|")
    for path in sorted(glob.glob(os.path.join(outdir, "startup-*.json"))):
        with open(path) as f:
            res = json.load(f)["results"][0]
        n = len(res.get("times", [])) or "?"
        codes = "/".join(str(c) for c in sorted(set(res.get("exit_codes") or []))) or "?"
        w(f"| `{res['command'].replace(meta['binary'], 'l5d-ecs')}` | {codes} | {res['mean'] * 1000:.1f} | "
          f"{res['stddev'] * 1000:.1f} | {res['min'] * 1000:.1f} | {n} | {res.get('tool', 'hyperfine')} |")
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
    w("")
    w("## Reproduce")
    w("")
    w("```sh")
    w("bench/up.sh                      # everything: venv, jq, release build, moto, proxy, runs, this page")
    w("BENCH_REPEATS=5 BENCH_LATENCIES='0 50 200' bench/up.sh")
    w("BENCH_MAX_LOAD=1.0 BENCH_LOAD_WAIT=600 bench/up.sh   # wait for a quiet machine first")
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
    elif cmd == "report":
        sys.exit(cmd_report(*args))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
