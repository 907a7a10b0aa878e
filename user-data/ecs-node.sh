#!/bin/bash
# ECS node of the l5d-ecs stack "{{STACK}}". This script only joins the cluster and writes the
# configuration that the daemon services (linkerd, consul-agent, consul-registrator) mount;
# ECS starts those containers itself, on every node, through DAEMON services.
set -euo pipefail

echo ECS_CLUSTER={{CLUSTER}} >> /etc/ecs/ecs.config

usermod -a -G docker ec2-user

# Instance metadata through IMDSv2: the instance requires a session token.
IMDS=http://169.254.169.254/latest
TOKEN=$(curl -sf -X PUT "$IMDS/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
imds() { curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" "$IMDS/meta-data/$1"; }
EC2_INSTANCE_IP_ADDRESS=$(imds local-ipv4)
EC2_INSTANCE_ID=$(imds instance-id)

# consul-registrator: registers every container with a published port in the local consul agent.
mkdir -p /opt/consul-registrator/bin
cat << SCRIPT > /opt/consul-registrator/bin/start.sh
#!/bin/sh
exec /bin/registrator -ip ${EC2_INSTANCE_IP_ADDRESS} -retry-attempts -1 consul://${EC2_INSTANCE_IP_ADDRESS}:8500
SCRIPT
chmod a+x /opt/consul-registrator/bin/start.sh

# consul-agent: joins the consul server through EC2 cloud auto-join on its Name tag.
mkdir -p /opt/consul/data /opt/consul/config
cat << CONFIG > /opt/consul/config/consul-agent.json
{
  "advertise_addr": "${EC2_INSTANCE_IP_ADDRESS}",
  "client_addr": "0.0.0.0",
  "node_name": "${EC2_INSTANCE_ID}",
  "retry_join": ["provider=aws tag_key=Name tag_value={{CONSUL_SERVER_TAG}}"]
}
CONFIG

# linkerd: outgoing router on 4140 hands every request to the incoming router (4141) of the
# node that runs the destination; names resolve through the local consul agent.
mkdir -p /etc/linkerd
cat << CONFIG > /etc/linkerd/linkerd.yaml
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
