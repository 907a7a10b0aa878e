#!/bin/bash
# Double-brace placeholders are filled in by l5d-ecs (src/templates.rs) before the script
# ever runs; unrendered, shellcheck would take their braces for shell syntax:
# shellcheck disable=SC1083
# Consul server for the l5d-ecs stack "{{STACK}}": one consul agent in server mode,
# found by the nodes' consul agents through its Name tag ({{CONSUL_SERVER_TAG}}).
set -euo pipefail

usermod -a -G docker ec2-user

# Instance metadata through IMDSv2: the instance requires a session token. A refused or empty
# answer stops the script here rather than starting a server that advertises no address.
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

mkdir -p {{ROOT}}/opt/consul/data {{ROOT}}/opt/consul/config

# Host network, so consul's ports are the host's: 8300 (server RPC), 8301 and 8302 (gossip, tcp
# and udp), 8500 (HTTP API and UI). Its DNS interface is off: nothing in the mesh resolves
# names through consul, and a DNS port is one more thing listening on the host.
docker run -d --restart=always --net=host \
  -v {{ROOT}}/opt/consul/data:/consul/data -v {{ROOT}}/opt/consul/config:/consul/config \
  -v /var/run/docker.sock:/var/run/docker.sock \
  -h "$EC2_INSTANCE_ID" --name consul-server \
  -l service_name=consul-server {{CONSUL_IMAGE}} agent -server \
  -bootstrap-expect 1 -advertise "$EC2_INSTANCE_IP_ADDRESS" -client 0.0.0.0 -ui -dns-port=-1
