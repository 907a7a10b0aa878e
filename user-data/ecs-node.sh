#!/bin/bash
# Double-brace placeholders are filled in by l5d-ecs (src/templates.rs) before the script
# ever runs; unrendered, shellcheck would take their braces for shell syntax:
# shellcheck disable=SC1083
# ECS node of the l5d-ecs stack "{{STACK}}". This script only joins the cluster and writes the
# configuration that the daemon services (linkerd, consul-agent, consul-registrator) mount;
# ECS starts those containers itself, on every node, through DAEMON services.
set -euo pipefail

# First, so that a node whose script fails below still lands in the stack's cluster, where
# `status` shows it and `down` removes it: without ECS_CLUSTER the agent would join, and create,
# a cluster named "default" that no stack owns.
mkdir -p {{ROOT}}/etc/ecs
echo ECS_CLUSTER={{CLUSTER}} >> {{ROOT}}/etc/ecs/ecs.config

usermod -a -G docker ec2-user

# Instance metadata through IMDSv2: the instance requires a session token. A refused or empty
# answer stops the script here; config written with an empty address would only fail later,
# in the containers, far from the cause.
IMDS={{IMDS}}/latest
TOKEN=$(curl -sSf --retry 3 --retry-connrefused -X PUT "$IMDS/api/token" \
  -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
imds() {
  local value
  value=$(curl -sSf --retry 3 --retry-connrefused -H "X-aws-ec2-metadata-token: $TOKEN" \
    "$IMDS/meta-data/$1") || return
  [[ -n $value ]] || { echo "instance metadata $1 is empty" >&2; return 1; }
  printf '%s\n' "$value"
}
EC2_INSTANCE_IP_ADDRESS=$(imds local-ipv4)
EC2_INSTANCE_ID=$(imds instance-id)

# consul-registrator: registers every container with a published port in the local consul agent.
mkdir -p {{ROOT}}/opt/consul-registrator/bin
cat << SCRIPT > {{ROOT}}/opt/consul-registrator/bin/start.sh
#!/bin/sh
exec /bin/registrator -ip ${EC2_INSTANCE_IP_ADDRESS} -retry-attempts -1 consul://${EC2_INSTANCE_IP_ADDRESS}:8500
SCRIPT
chmod a+x {{ROOT}}/opt/consul-registrator/bin/start.sh

# consul-agent: joins the consul server through EC2 cloud auto-join on its Name tag. Its DNS
# interface is off: linkerd, registrator and linkerd-viz all use the HTTP API (8500).
mkdir -p {{ROOT}}/opt/consul/data {{ROOT}}/opt/consul/config
cat << CONFIG > {{ROOT}}/opt/consul/config/consul-agent.json
{
  "advertise_addr": "${EC2_INSTANCE_IP_ADDRESS}",
  "client_addr": "0.0.0.0",
  "node_name": "${EC2_INSTANCE_ID}",
  "ports": { "dns": -1 },
  "retry_join": ["provider=aws tag_key=Name tag_value={{CONSUL_SERVER_TAG}}"]
}
CONFIG

# linkerd: outgoing router on 4140 hands every request to the incoming router (4141) of the
# node that runs the destination; names resolve through the local consul agent.
mkdir -p {{ROOT}}/etc/linkerd
cat << CONFIG > {{ROOT}}/etc/linkerd/linkerd.yaml
admin:
  ip: 0.0.0.0
  port: 9990

namers:
- kind: io.l5d.consul
  host: ${EC2_INSTANCE_IP_ADDRESS}
  port: 8500

telemetry:
- kind: io.l5d.prometheus
- kind: io.l5d.recentRequests
  sampleRate: 0.25

routers:
- protocol: http
  label: outgoing
  servers:
  - ip: 0.0.0.0
    port: 4140
  dtab: |
    /svc => /#/io.l5d.consul/dc1;
  interpreter:
    kind: default
    transformers:
    - kind: io.l5d.port
      port: 4141
- protocol: http
  label: incoming
  servers:
  - ip: 0.0.0.0
    port: 4141
  dtab: |
    /svc => /#/io.l5d.consul/dc1;
  interpreter:
    kind: default
    transformers:
    - kind: io.l5d.specificHost
      host: ${EC2_INSTANCE_IP_ADDRESS}
CONFIG
