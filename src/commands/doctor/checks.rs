//! The account's side of `doctor`: what the instances need (key pair, AMI, instance type,
//! vCPU quota), whether launch configurations are still offered, and the caller's IAM
//! permissions.

// Checks that an account or endpoint may not answer get one attempt: `unknown` is an answer.
use super::{line, DoctorLine, Verdict};
use crate::aws::{describe_error, error_code, no_retry, Aws};
use crate::resources::ami::ECS_AMI_PARAMETER;
use crate::state::InstanceSettings;

/// EC2 "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", in vCPUs.
const STANDARD_VCPU_QUOTA: &str = "L-1216C47A";

pub(super) async fn key_pair(aws: &Aws, instance: &InstanceSettings) -> Option<DoctorLine> {
    let key = instance.key_pair.as_deref()?;
    Some(
        match aws.ec2.describe_key_pairs().key_names(key).send().await {
            Ok(out) if !out.key_pairs().is_empty() => line("key pair", Verdict::Ok, key, None),
            Ok(_) => line(
                "key pair",
                Verdict::Problem,
                format!("{key} does not exist"),
                Some("create or import it, or leave --key-pair out"),
            ),
            Err(e) if error_code(&e) == Some("InvalidKeyPair.NotFound") => line(
                "key pair",
                Verdict::Problem,
                format!("{key} does not exist in {}", aws.region),
                Some("create or import it, or leave --key-pair out"),
            ),
            Err(e) => line("key pair", Verdict::Unknown, describe_error(&e), None),
        },
    )
}

pub(super) async fn ami(aws: &Aws, instance: &InstanceSettings) -> DoctorLine {
    let id = match &instance.ami {
        Some(id) => id.clone(),
        None => match aws.ssm.get_parameter().name(ECS_AMI_PARAMETER).send().await {
            Ok(out) => match out.parameter().and_then(|p| p.value()) {
                Some(v) => v.to_owned(),
                None => {
                    return line(
                        "ECS-optimized AMI",
                        Verdict::Problem,
                        "the SSM parameter has no value",
                        Some("pass --ami AMI_ID"),
                    )
                }
            },
            Err(e) => {
                return line(
                    "ECS-optimized AMI",
                    Verdict::Problem,
                    format!("{ECS_AMI_PARAMETER}: {}", describe_error(&e)),
                    Some("pass --ami AMI_ID"),
                )
            }
        },
    };
    match aws.ec2.describe_images().image_ids(&id).send().await {
        Ok(out) if !out.images().is_empty() => line(
            "ECS-optimized AMI",
            Verdict::Ok,
            format!("{id} {}", out.images()[0].name().unwrap_or("")),
            None,
        ),
        Ok(_) => line(
            "ECS-optimized AMI",
            Verdict::Problem,
            format!("{id} not found"),
            Some("pass another --ami"),
        ),
        Err(e) => line(
            "ECS-optimized AMI",
            Verdict::Problem,
            format!("{id}: {}", describe_error(&e)),
            Some("pass another --ami"),
        ),
    }
}

/// Whether the type is offered in the AZ, and its vCPUs.
pub(super) async fn instance_type(
    aws: &Aws,
    instance_type: &str,
    az: Option<&str>,
) -> (DoctorLine, Option<i32>) {
    use aws_sdk_ec2::types::{InstanceType, LocationType};
    let vcpus = aws
        .ec2
        .describe_instance_types()
        .instance_types(InstanceType::from(instance_type))
        .send()
        .await
        .ok()
        .and_then(|o| {
            o.instance_types()
                .first()
                .and_then(|t| t.v_cpu_info())
                .and_then(|v| v.default_v_cpus())
        });
    let Some(az) = az else {
        return (
            line(
                "instance type",
                Verdict::Unknown,
                format!("{instance_type}: no availability zone to check"),
                None,
            ),
            vcpus,
        );
    };
    let offered = aws
        .ec2
        .describe_instance_type_offerings()
        .location_type(LocationType::AvailabilityZone)
        .filters(crate::aws::ec2_filter("location", &[az]))
        .filters(crate::aws::ec2_filter("instance-type", &[instance_type]))
        .send()
        .await;
    let l = match offered {
        Ok(out) if !out.instance_type_offerings().is_empty() => line(
            "instance type",
            Verdict::Ok,
            format!(
                "{instance_type} offered in {az}{}",
                vcpus.map(|v| format!(", {v} vCPUs")).unwrap_or_default()
            ),
            None,
        ),
        Ok(_) => line(
            "instance type",
            Verdict::Problem,
            format!("{instance_type} is not offered in {az}"),
            Some("pick another --instance-type or --availability-zone"),
        ),
        Err(e) => line("instance type", Verdict::Unknown, describe_error(&e), None),
    };
    (l, vcpus)
}

pub(super) async fn vcpu_quota(aws: &Aws) -> Result<f64, String> {
    match aws
        .quotas
        .get_service_quota()
        .service_code("ec2")
        .quota_code(STANDARD_VCPU_QUOTA)
        .customize()
        .config_override(no_retry!(aws_sdk_servicequotas))
        .send()
        .await
    {
        Ok(out) => out
            .quota()
            .and_then(|q| q.value())
            .ok_or_else(|| "Service Quotas returned no value".to_owned()),
        Err(e) => Err(format!("Service Quotas cannot say: {}", describe_error(&e))),
    }
}

pub(super) async fn launch_configurations(aws: &Aws) -> DoctorLine {
    let limits = aws
        .autoscaling
        .describe_account_limits()
        .customize()
        .config_override(no_retry!(aws_sdk_autoscaling))
        .send()
        .await;
    match limits {
        Ok(out) => match out.max_number_of_launch_configurations() {
            Some(0) => line(
                "launch configurations",
                Verdict::Ok,
                "not available to this account; l5d-ecs will use a launch template",
                None,
            ),
            Some(n) => line(
                "launch configurations",
                Verdict::Ok,
                format!(
                    "limit {n}, {} in use (accounts created since late 2024 are refused anyway; l5d-ecs then uses a launch template)",
                    out.number_of_launch_configurations().unwrap_or(0)
                ),
                None,
            ),
            None => line("launch configurations", Verdict::Unknown, "the account limits do not say", None),
        },
        Err(e) => line("launch configurations", Verdict::Unknown, describe_error(&e), None),
    }
}

/// The calls `up` and `down` make, for the policy simulator.
const ACTIONS: [&str; 13] = [
    "ec2:RunInstances",
    "ec2:CreateSecurityGroup",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:CreateLaunchTemplate",
    "autoscaling:CreateAutoScalingGroup",
    "autoscaling:CreateLaunchConfiguration",
    "ecs:CreateCluster",
    "ecs:RegisterTaskDefinition",
    "ecs:CreateService",
    "iam:PutRolePolicy",
    "iam:PassRole",
    // ECS's service-linked role, made beside the cluster on an account that lacks it.
    "iam:CreateServiceLinkedRole",
    "logs:CreateLogGroup",
];

pub(super) async fn permissions(aws: &Aws, caller_arn: Option<&str>) -> DoctorLine {
    let Some(arn) = caller_arn else {
        return line(
            "IAM permissions",
            Verdict::Unknown,
            "no caller identity to check",
            None,
        );
    };
    // SimulatePrincipalPolicy takes only an IAM user, group or role ARN: an assumed role,
    // the root user or a federated user is refused with InvalidInput.
    let simulable = arn.split(':').nth(2) == Some("iam")
        && arn
            .rsplit(':')
            .next()
            .is_some_and(|r| r.starts_with("user/") || r.starts_with("role/"));
    if !simulable {
        return line(
            "IAM permissions",
            Verdict::Unknown,
            format!(
                "the policy simulator cannot check {arn} (only an IAM user or role; not an \
                 assumed role, the root user or a federated user)"
            ),
            None,
        );
    }
    let result = aws
        .iam
        .simulate_principal_policy()
        .policy_source_arn(arn)
        .set_action_names(Some(ACTIONS.iter().map(|a| (*a).to_owned()).collect()))
        .customize()
        .config_override(no_retry!(aws_sdk_iam))
        .send()
        .await;
    match result {
        Ok(out) => {
            let denied: Vec<&str> = out
                .evaluation_results()
                .iter()
                .filter(|r| r.eval_decision().as_str() != "allowed")
                .map(|r| r.eval_action_name())
                .collect();
            if denied.is_empty() {
                line(
                    "IAM permissions",
                    Verdict::Ok,
                    format!("{} actions allowed", ACTIONS.len()),
                    None,
                )
            } else {
                line(
                    "IAM permissions",
                    Verdict::Problem,
                    format!("denied: {}", denied.join(", ")),
                    Some("grant these actions to your IAM identity"),
                )
            }
        }
        Err(e) => line(
            "IAM permissions",
            Verdict::Unknown,
            format!(
                "the policy simulator cannot say: {}",
                describe_error(&e).lines().next().unwrap_or_default()
            ),
            None,
        ),
    }
}
