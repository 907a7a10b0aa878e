#!/usr/bin/env python3
"""Stand-in ECS agent for an AWS emulator (moto), which has none.

On a real node the ECS agent registers the instance as a container instance of the cluster
named in /etc/ecs/ecs.config. Here: every running EC2 instance tagged Name=<node-tag> that is
not registered yet is registered with
`ecs.register_container_instance(cluster=..., instanceIdentityDocument={"instanceId": id})`.

    ecs_agent.py --endpoint http://127.0.0.1:5000 --region us-west-1 \
        --cluster l5d-demo --node-tag l5d-demo-ecs [--watch 120]

Without --watch it registers what is there once and exits. With --watch SECONDS it keeps
looking every 0.5 s for that long (so it can run beside `l5d-ecs up` while the cluster and the
auto scaling group appear), then exits 0. It exits early and cleanly on SIGTERM / SIGINT.
Credentials come from the environment (fake ones for the emulator); with none set it uses
test/test. It only ever talks to --endpoint.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

POLL_SECONDS = 0.5


def clients(endpoint, region):
    session = boto3.session.Session(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        aws_session_token=os.environ.get("AWS_SESSION_TOKEN") or None,
        region_name=region,
    )
    config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30)
    return (
        session.client("ec2", endpoint_url=endpoint, config=config),
        session.client("ecs", endpoint_url=endpoint, config=config),
    )


def cluster_active(ecs, cluster):
    out = ecs.describe_clusters(clusters=[cluster])
    return any(c.get("status") == "ACTIVE" for c in out.get("clusters", []))


def registered_instances(ecs, cluster):
    ids = set()
    arns = []
    for page in ecs.get_paginator("list_container_instances").paginate(cluster=cluster):
        arns.extend(page.get("containerInstanceArns", []))
    for i in range(0, len(arns), 100):
        out = ecs.describe_container_instances(cluster=cluster, containerInstances=arns[i : i + 100])
        for ci in out.get("containerInstances", []):
            if ci.get("ec2InstanceId"):
                ids.add(ci["ec2InstanceId"])
    return ids


def running_nodes(ec2, node_tag):
    ids = []
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": "tag:Name", "Values": [node_tag]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )
    for page in pages:
        for reservation in page.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                ids.append(instance["InstanceId"])
    return sorted(ids)


def register_new(ec2, ecs, cluster, node_tag):
    """Registers the running nodes not registered yet; returns their ids."""
    if not cluster_active(ecs, cluster):
        return []
    already = registered_instances(ecs, cluster)
    done = []
    for instance_id in running_nodes(ec2, node_tag):
        if instance_id in already:
            continue
        ecs.register_container_instance(
            cluster=cluster,
            instanceIdentityDocument=json.dumps({"instanceId": instance_id}),
        )
        print(f"ecs-agent: {instance_id} joined cluster {cluster}", flush=True)
        done.append(instance_id)
    return done


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", required=True, help="emulator URL, e.g. http://127.0.0.1:5000")
    p.add_argument("--region", required=True)
    p.add_argument("--cluster", required=True)
    p.add_argument("--node-tag", required=True, help="value of the Name tag of the nodes")
    p.add_argument("--watch", type=float, default=0.0, metavar="SECONDS", help="keep registering new nodes this long")
    args = p.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    ec2, ecs = clients(args.endpoint, args.region)
    deadline = time.monotonic() + args.watch
    joined = []
    while True:
        try:
            joined.extend(register_new(ec2, ecs, args.cluster, args.node_tag))
        except (ClientError, BotoCoreError) as e:
            # The cluster or the instances may be half made while `up` runs: look again.
            if args.watch <= 0:
                print(f"ecs-agent: {e}", file=sys.stderr)
                return 1
        if args.watch <= 0 or time.monotonic() >= deadline or stop.wait(POLL_SECONDS):
            break
    print(f"ecs-agent: {len(joined)} node(s) registered", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
