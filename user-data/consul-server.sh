#!/bin/bash
# Consul server for the l5d-ecs stack "{{STACK}}": one consul agent in server mode,
# found by the nodes' consul agents through its Name tag ({{CONSUL_SERVER_TAG}}).
set -euo pipefail

usermod -a -G docker ec2-user

# Instance metadata through IMDSv2: the instance requires a session token.
IMDS=http://169.254.169.254/latest
TOKEN=$(curl -sf -X PUT "$IMDS/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
imds() { curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" "$IMDS/meta-data/$1"; }
EC2_INSTANCE_IP_ADDRESS=$(imds local-ipv4)
EC2_INSTANCE_ID=$(imds instance-id)

mkdir -p /opt/consul/data /opt/consul/config

docker run -d --restart=always --net=host \
  -v /opt/consul/data:/consul/data -v /opt/consul/config:/consul/config \
  -v /var/run/docker.sock:/var/run/docker.sock \
  -h "$EC2_INSTANCE_ID" --name consul-server -e CONSUL_ALLOW_PRIVILEGED_PORTS=1 \
  -l service_name=consul-server {{CONSUL_IMAGE}} agent -server \
  -bootstrap-expect 1 -advertise "$EC2_INSTANCE_IP_ADDRESS" -client 0.0.0.0 -ui
