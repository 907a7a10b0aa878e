#!/usr/bin/env bash
# The guide's `up` commands (../shared/seed/, "Running in ECS"), run with the aws CLI, with
# only the edits needed to run them here:
#   - endpoint, region and credentials come from the environment (AWS_ENDPOINT_URL, ...);
#   - the AMI is read from SSM (the guide's fixed ami-7d664a1d is gone): one more call;
#   - no --key-name (the guide says to leave it out to go without ssh; there is no key pair);
#   - the availability zone is moto's (passed in), not us-west-1a;
#   - the files it names are the project's templates rendered for the stack (bench.py render),
#     in FILES_DIR; the task definition families carry the stack prefix.
#
#   guide.sh FILES_DIR AVAILABILITY_ZONE
set -euo pipefail

FILES=$1
AZ=$2
cd "$FILES"

AMI=$(aws ssm get-parameter --name /aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id | jq -r .Parameter.Value)

GROUP_ID=$(aws ec2 create-security-group --group-name l5d-demo-sg --description "Linkerd Demo" | jq -r .GroupId)
aws ec2 authorize-security-group-ingress --group-id $GROUP_ID \
  --ip-permissions \
  FromPort=22,IpProtocol=tcp,ToPort=22,IpRanges=[{CidrIp="0.0.0.0/0"}] \
  FromPort=4140,IpProtocol=tcp,ToPort=4140,IpRanges=[{CidrIp="0.0.0.0/0"}] \
  FromPort=9990,IpProtocol=tcp,ToPort=9990,IpRanges=[{CidrIp="0.0.0.0/0"}] \
  FromPort=3000,IpProtocol=tcp,ToPort=3000,IpRanges=[{CidrIp="0.0.0.0/0"}] \
  FromPort=8500,IpProtocol=tcp,ToPort=8500,IpRanges=[{CidrIp="0.0.0.0/0"}] \
  IpProtocol=-1,UserIdGroupPairs=[{GroupId=$GROUP_ID}]

aws ec2 run-instances --image-id $AMI \
  --instance-type m4.xlarge \
  --user-data file://consul-server-user-data.txt \
  --placement AvailabilityZone=$AZ \
  --tag-specifications "ResourceType=instance,Tags=[{Key=Name,Value=l5d-demo-consul-server}]" \
  --security-group-ids $GROUP_ID

aws ecs create-cluster --cluster-name l5d-demo

aws iam put-role-policy --role-name ecsInstanceRole --policy-name l5dDemoPolicy --policy-document file://ecs-role-policy.json

aws ecs register-task-definition --cli-input-json file://linkerd-task-definition.json
aws ecs register-task-definition --cli-input-json file://linkerd-viz-task-definition.json
aws ecs register-task-definition --cli-input-json file://consul-agent-task-definition.json
aws ecs register-task-definition --cli-input-json file://consul-registrator-task-definition.json
aws ecs register-task-definition --cli-input-json file://hello-world-task-definition.json

aws autoscaling create-launch-configuration \
  --launch-configuration-name l5d-demo-lc \
  --image-id $AMI \
  --instance-type m4.xlarge \
  --user-data file://ecs-user-data.txt \
  --iam-instance-profile ecsInstanceRole \
  --security-groups $GROUP_ID

aws autoscaling create-auto-scaling-group \
  --auto-scaling-group-name l5d-demo-asg \
  --launch-configuration-name l5d-demo-lc \
  --min-size 1 --max-size 3 --desired-capacity 2 \
  --tags ResourceId=l5d-demo-asg,ResourceType=auto-scaling-group,Key=Name,Value=l5d-demo-ecs,PropagateAtLaunch=true \
  --availability-zones $AZ
