//! Every AWS operation the tool calls, what it is called for, and what it may touch: the one
//! list `l5d-ecs iam-policy` writes the IAM policy from. With `L5D_ECS_STRICT_OPERATIONS` set
//! (the tests set it), a call that is not in the list for the running command fails, so the
//! list, and the policy, cannot fall behind the code.

use std::sync::OnceLock;

use serde_json::{json, Value};

/// What a command uses AWS for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Looking at the stack: every command that calls AWS.
    Read,
    /// Creating and repairing it: `up` and its steps.
    Make,
    /// Deleting it: `down`.
    Remove,
    /// Starting and stopping the demo apps: `deploy`, `undeploy`.
    Run,
    /// `doctor`'s checks of the account.
    Check,
    /// Keeping the state and its lock in S3 (`--state s3://…`): every command that reads or
    /// writes the state.
    State,
}

/// What an operation may be granted on, as narrow as the API allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Any resource: the API has no resource-level permission for it.
    Any,
    Cluster,
    Service,
    Task,
    TaskDefinition,
    LogGroup,
    AutoScalingGroup,
    LaunchConfiguration,
    Role,
    InstanceProfile,
    EcsServiceLinkedRole,
    AmiParameter,
    /// The consul server's schedule of `up --expires-in`.
    Schedule,
    /// The bucket of an S3 state.
    StateBucket,
    /// An S3 state's object and those beside it (`.lock`, `.backup`).
    StateObjects,
}

/// One operation: its IAM action (`service:Name`, the SDK's operation name), why it is
/// called, on what, and the actions AWS also checks when it is called (tags, PassRole).
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub action: &'static str,
    pub uses: &'static [Use],
    pub scope: Scope,
    pub implies: &'static [(&'static str, Scope)],
}

const fn op(action: &'static str, uses: &'static [Use], scope: Scope) -> Operation {
    Operation {
        action,
        uses,
        scope,
        implies: &[],
    }
}

const fn op_implying(
    action: &'static str,
    uses: &'static [Use],
    scope: Scope,
    implies: &'static [(&'static str, Scope)],
) -> Operation {
    Operation {
        action,
        uses,
        scope,
        implies,
    }
}

use Scope::*;
use Use::*;

const READ: &[Use] = &[Read];
const MAKE: &[Use] = &[Make];
const REMOVE: &[Use] = &[Remove];
const MAKE_REMOVE: &[Use] = &[Make, Remove];
const RUN: &[Use] = &[Run];
const RUN_REMOVE: &[Use] = &[Run, Remove];
const CHECK: &[Use] = &[Check];
const READ_CHECK: &[Use] = &[Read, Check];
const STATE: &[Use] = &[State];
const READ_STATE: &[Use] = &[Read, State];

/// Every operation the tool calls, by service.
pub const OPERATIONS: &[Operation] = &[
    // The caller names itself in the S3 lock it takes.
    op("sts:GetCallerIdentity", READ_STATE, Any),
    // S3: the state, its lock and backup.
    // ListObjectsV2 is granted by s3:ListBucket, which GetObject also needs to answer 404 rather
    // than 403 for a state not written yet.
    op("s3:ListBucket", STATE, StateBucket),
    op("s3:GetObject", STATE, StateObjects),
    op("s3:PutObject", STATE, StateObjects),
    op("s3:DeleteObject", STATE, StateObjects),
    // EC2: describe calls have no resource-level permissions.
    op("ec2:DescribeSubnets", READ, Any),
    op("ec2:DescribeSecurityGroups", READ, Any),
    op("ec2:DescribeInstances", READ, Any),
    op("ec2:DescribeInstanceTypeOfferings", READ_CHECK, Any),
    op("ec2:DescribeInstanceTypes", READ_CHECK, Any),
    op("ec2:DescribeKeyPairs", READ_CHECK, Any),
    op("ec2:DescribeImages", CHECK, Any),
    op("ec2:DescribeLaunchTemplates", READ, Any),
    op("ec2:DescribeLaunchTemplateVersions", READ, Any),
    // `list --all-regions`: the regions the account has enabled.
    op("ec2:DescribeRegions", READ, Any),
    op_implying(
        "ec2:CreateSecurityGroup",
        MAKE,
        Any,
        &[("ec2:CreateTags", Any)],
    ),
    op("ec2:AuthorizeSecurityGroupIngress", MAKE, Any),
    op("ec2:DeleteSecurityGroup", REMOVE, Any),
    op_implying(
        "ec2:RunInstances",
        MAKE,
        Any,
        &[("ec2:CreateTags", Any), ("iam:PassRole", Role)],
    ),
    op("ec2:TerminateInstances", REMOVE, Any),
    op_implying(
        "ec2:CreateLaunchTemplate",
        MAKE,
        Any,
        &[("ec2:CreateTags", Any), ("iam:PassRole", Role)],
    ),
    op_implying(
        "ec2:CreateLaunchTemplateVersion",
        MAKE,
        Any,
        &[("iam:PassRole", Role)],
    ),
    op("ec2:DeleteLaunchTemplate", REMOVE, Any),
    // ECS
    op("ecs:DescribeClusters", READ, Cluster),
    op_implying(
        "ecs:CreateCluster",
        MAKE,
        Cluster,
        &[("ecs:TagResource", Cluster)],
    ),
    op("ecs:DeleteCluster", REMOVE, Cluster),
    op("ecs:ListContainerInstances", READ, Cluster),
    op("ecs:DescribeContainerInstances", READ, Any),
    op("ecs:DeregisterContainerInstance", REMOVE, Cluster),
    op("ecs:DescribeTaskDefinition", READ, Any),
    op("ecs:ListTaskDefinitions", READ, Any),
    op_implying(
        "ecs:RegisterTaskDefinition",
        MAKE,
        Any,
        &[("ecs:TagResource", TaskDefinition)],
    ),
    op("ecs:DeregisterTaskDefinition", REMOVE, Any),
    op("ecs:DescribeServices", READ, Service),
    op_implying(
        "ecs:CreateService",
        MAKE,
        Service,
        &[("ecs:TagResource", Service)],
    ),
    op("ecs:UpdateService", MAKE_REMOVE, Service),
    op("ecs:DeleteService", REMOVE, Service),
    op("ecs:ListTasks", READ, Any),
    op("ecs:DescribeTasks", READ, Task),
    op_implying(
        "ecs:RunTask",
        RUN,
        TaskDefinition,
        &[("ecs:TagResource", Task)],
    ),
    op("ecs:StopTask", RUN_REMOVE, Task),
    // IAM: the shared instance role and its profile, and ECS's service-linked role.
    op("iam:GetRole", READ, Role),
    op("iam:GetRolePolicy", READ, Role),
    op("iam:ListRolePolicies", READ, Role),
    op("iam:ListAttachedRolePolicies", READ, Role),
    op("iam:GetInstanceProfile", READ, InstanceProfile),
    op_implying("iam:CreateRole", MAKE, Role, &[("iam:TagRole", Role)]),
    op("iam:PutRolePolicy", MAKE, Role),
    op("iam:AttachRolePolicy", MAKE, Role),
    op_implying(
        "iam:CreateInstanceProfile",
        MAKE,
        InstanceProfile,
        &[("iam:TagInstanceProfile", InstanceProfile)],
    ),
    op("iam:AddRoleToInstanceProfile", MAKE, InstanceProfile),
    op("iam:CreateServiceLinkedRole", MAKE, EcsServiceLinkedRole),
    op("iam:DeleteRolePolicy", MAKE_REMOVE, Role),
    op("iam:DetachRolePolicy", REMOVE, Role),
    op("iam:DeleteRole", MAKE_REMOVE, Role),
    op("iam:RemoveRoleFromInstanceProfile", REMOVE, InstanceProfile),
    op("iam:DeleteInstanceProfile", REMOVE, InstanceProfile),
    op("iam:SimulatePrincipalPolicy", CHECK, Any),
    // Auto Scaling
    op("autoscaling:DescribeAutoScalingGroups", READ, Any),
    op("autoscaling:DescribeLaunchConfigurations", READ, Any),
    op("autoscaling:DescribeTags", READ, Any),
    op("autoscaling:DescribeAccountLimits", CHECK, Any),
    op_implying(
        "autoscaling:CreateLaunchConfiguration",
        MAKE,
        LaunchConfiguration,
        &[("iam:PassRole", Role)],
    ),
    op(
        "autoscaling:DeleteLaunchConfiguration",
        MAKE_REMOVE,
        LaunchConfiguration,
    ),
    op_implying(
        "autoscaling:CreateAutoScalingGroup",
        MAKE,
        AutoScalingGroup,
        &[
            ("autoscaling:CreateOrUpdateTags", AutoScalingGroup),
            ("iam:PassRole", Role),
            ("ec2:RunInstances", Any),
        ],
    ),
    op(
        "autoscaling:UpdateAutoScalingGroup",
        MAKE_REMOVE,
        AutoScalingGroup,
    ),
    op(
        "autoscaling:DeleteAutoScalingGroup",
        REMOVE,
        AutoScalingGroup,
    ),
    // `up --expires-in`: the ASG to 0/0/0 at the deadline...
    op(
        "autoscaling:PutScheduledUpdateGroupAction",
        MAKE,
        AutoScalingGroup,
    ),
    op("autoscaling:DescribeScheduledActions", READ, Any),
    op(
        "autoscaling:DeleteScheduledAction",
        MAKE_REMOVE,
        AutoScalingGroup,
    ),
    // ... and the consul server terminated by an EventBridge Scheduler schedule.
    op("scheduler:GetSchedule", READ, Schedule),
    op_implying(
        "scheduler:CreateSchedule",
        MAKE,
        Schedule,
        &[("iam:PassRole", Role)],
    ),
    op_implying(
        "scheduler:UpdateSchedule",
        MAKE,
        Schedule,
        &[("iam:PassRole", Role)],
    ),
    op("scheduler:DeleteSchedule", MAKE_REMOVE, Schedule),
    // CloudWatch Logs
    op("logs:DescribeLogGroups", READ, Any),
    op_implying(
        "logs:CreateLogGroup",
        MAKE,
        LogGroup,
        &[("logs:TagResource", LogGroup)],
    ),
    op("logs:PutRetentionPolicy", MAKE, LogGroup),
    op("logs:DeleteLogGroup", REMOVE, LogGroup),
    op("logs:FilterLogEvents", READ, LogGroup),
    // SSM: the public parameter of the ECS-optimized AMI.
    op("ssm:GetParameter", READ_CHECK, AmiParameter),
    op("servicequotas:GetServiceQuota", CHECK, Any),
];

/// What each command uses AWS for (nothing: it makes no AWS call).
pub fn uses_of(command: &str) -> &'static [Use] {
    match command {
        "up" | "security-group" | "consul-server" | "cluster" | "role-policy"
        | "register-tasks" | "log-group" | "launch-config" | "asg" | "daemons" => {
            &[Read, Make, State]
        }
        "down" => &[Read, Remove, State],
        "deploy" | "undeploy" => &[Read, Run, State],
        "doctor" => &[Read, Check, State],
        "plan" | "status" | "list" | "verify" | "load" | "logs" | "dashboard" | "tunnel" => {
            &[Read, State]
        }
        "state" | "unlock" => &[State],
        _ => &[],
    }
}

/// The IAM prefix of an SDK service, by the name the SDK gives it.
pub fn iam_prefix(sdk_service: &str) -> Option<&'static str> {
    Some(match sdk_service {
        "EC2" => "ec2",
        "ECS" => "ecs",
        "IAM" => "iam",
        "Auto Scaling" => "autoscaling",
        "SSM" => "ssm",
        "STS" => "sts",
        "CloudWatch Logs" => "logs",
        "Service Quotas" => "servicequotas",
        "S3" => "s3",
        "Scheduler" => "scheduler",
        _ => return None,
    })
}

/// The IAM action that grants an SDK operation: `prefix:Operation`, but for S3's listing,
/// which s3:ListBucket grants.
pub fn iam_action(sdk_service: &str, operation: &str) -> String {
    match (sdk_service, operation) {
        ("S3", "ListObjectsV2") => "s3:ListBucket".to_owned(),
        _ => format!(
            "{}:{operation}",
            iam_prefix(sdk_service).unwrap_or(sdk_service)
        ),
    }
}

/// Whether `command` may call `action` (`service:Operation`) by the list.
pub fn listed_for(command: &str, action: &str) -> bool {
    let uses = uses_of(command);
    OPERATIONS
        .iter()
        .any(|o| o.action == action && o.uses.iter().any(|u| uses.contains(u)))
}

static COMMAND: OnceLock<&'static str> = OnceLock::new();

/// The command this process runs, for the strict check of its calls.
pub fn set_command(command: &'static str) {
    let _ = COMMAND.set(command);
}

/// The environment variable that makes an unlisted call fail (the tests set it).
pub const STRICT_ENV: &str = "L5D_ECS_STRICT_OPERATIONS";

/// Under [`STRICT_ENV`], why a call must not go out; `None` when it may.
pub fn strict_refusal(sdk_service: &str, operation: &str) -> Option<String> {
    std::env::var_os(STRICT_ENV).filter(|v| !v.is_empty())?;
    let command = COMMAND.get().copied().unwrap_or("?");
    let action = iam_action(sdk_service, operation);
    (!listed_for(command, &action)).then(|| {
        format!(
            "`{command}` called {action}, which src/aws/operations.rs does not list for it: \
             add it there, so that `l5d-ecs iam-policy` grants it"
        )
    })
}

/// Where the policy's resources point: the stack's names in one region (or any).
pub struct Target<'a> {
    pub stack: &'a str,
    pub region: &'a str,
    pub partition: &'a str,
    pub instance_role: &'a str,
    /// The S3 state's bucket and key, if the state is in S3 (else any bucket).
    pub state: Option<(&'a str, &'a str)>,
}

impl Target<'_> {
    /// The ARNs a scope stands for.
    pub fn arns(&self, scope: Scope) -> Vec<String> {
        let (p, r, s) = (self.partition, self.region, self.stack);
        let role = self.instance_role;
        match scope {
            Any => vec!["*".to_owned()],
            Cluster => vec![format!("arn:{p}:ecs:{r}:*:cluster/{s}")],
            Service => vec![format!("arn:{p}:ecs:{r}:*:service/{s}/*")],
            Task => vec![format!("arn:{p}:ecs:{r}:*:task/{s}/*")],
            TaskDefinition => vec![format!("arn:{p}:ecs:{r}:*:task-definition/{s}-*:*")],
            LogGroup => vec![
                format!("arn:{p}:logs:{r}:*:log-group:/l5d-ecs/{s}"),
                format!("arn:{p}:logs:{r}:*:log-group:/l5d-ecs/{s}:*"),
            ],
            AutoScalingGroup => vec![format!(
                "arn:{p}:autoscaling:{r}:*:autoScalingGroup:*:autoScalingGroupName/{s}-asg"
            )],
            LaunchConfiguration => vec![format!(
                "arn:{p}:autoscaling:{r}:*:launchConfiguration:*:launchConfigurationName/{s}-lc"
            )],
            // The instance role, and the role of the consul server's expiry schedule.
            Role => vec![
                format!("arn:{p}:iam::*:role/{role}"),
                format!("arn:{p}:iam::*:role/{s}-expiry"),
            ],
            Schedule => vec![format!(
                "arn:{p}:scheduler:{r}:*:schedule/default/{s}-consul-expiry"
            )],
            InstanceProfile => vec![format!("arn:{p}:iam::*:instance-profile/{role}")],
            EcsServiceLinkedRole => vec![format!(
                "arn:{p}:iam::*:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"
            )],
            AmiParameter => vec![format!("arn:{p}:ssm:{r}::parameter/aws/service/ecs/*")],
            StateBucket => vec![format!("arn:{p}:s3:::{}", self.state.map_or("*", |s| s.0))],
            StateObjects => vec![match self.state {
                Some((bucket, key)) => format!("arn:{p}:s3:::{bucket}/{key}*"),
                None => format!("arn:{p}:s3:::*/*"),
            }],
        }
    }
}

/// The IAM policy document for `commands` (all of them when empty): one statement per
/// service and scope, actions sorted; with `any_resource`, every statement on `*`.
pub fn policy(commands: &[&str], target: &Target<'_>, any_resource: bool) -> Value {
    let mut uses: Vec<Use> = Vec::new();
    let all = [Read, Make, Remove, Run, Check, State];
    if commands.is_empty() {
        uses.extend(all);
    } else {
        for c in commands {
            uses.extend(uses_of(c).iter().copied());
        }
    }
    let mut grants: std::collections::BTreeMap<(String, Scope), std::collections::BTreeSet<&str>> =
        Default::default();
    for o in OPERATIONS
        .iter()
        .filter(|o| o.uses.iter().any(|u| uses.contains(u)))
    {
        for (action, scope) in std::iter::once((o.action, o.scope)).chain(o.implies.iter().copied())
        {
            let scope = if any_resource { Any } else { scope };
            let service = action.split(':').next().unwrap_or(action).to_owned();
            grants.entry((service, scope)).or_default().insert(action);
        }
    }
    let statements: Vec<Value> = grants
        .into_iter()
        .map(|((service, scope), actions)| {
            let sid = format!("{}{scope:?}", capitalised(&service));
            let arns = target.arns(scope);
            let resource = if arns.len() == 1 {
                json!(arns[0])
            } else {
                json!(arns)
            };
            json!({
                "Sid": sid,
                "Effect": "Allow",
                "Action": actions.into_iter().collect::<Vec<_>>(),
                "Resource": resource,
            })
        })
        .collect();
    json!({ "Version": "2012-10-17", "Statement": statements })
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target<'static> {
        Target {
            stack: "l5d-demo",
            region: "us-east-1",
            partition: "aws",
            instance_role: "ecsInstanceRole",
            state: None,
        }
    }

    #[test]
    fn every_action_is_a_service_and_a_capitalised_name() {
        for o in OPERATIONS {
            let actions = std::iter::once(o.action).chain(o.implies.iter().map(|(a, _)| *a));
            for a in actions {
                let (service, name) = a.split_once(':').unwrap_or_else(|| panic!("{a}"));
                assert!(
                    [
                        "ec2",
                        "ecs",
                        "iam",
                        "autoscaling",
                        "ssm",
                        "sts",
                        "logs",
                        "servicequotas",
                        "s3",
                        "scheduler"
                    ]
                    .contains(&service),
                    "{a}"
                );
                assert!(name.starts_with(|c: char| c.is_ascii_uppercase()), "{a}");
                assert!(name.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
            }
            assert!(!o.uses.is_empty(), "{} is used for nothing", o.action);
        }
        let mut names: Vec<&str> = OPERATIONS.iter().map(|o| o.action).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "an operation is listed twice");
    }

    #[test]
    fn scoped_arns_have_the_formats_aws_documents() {
        let t = target();
        let arn = |s| t.arns(s).join(" ");
        assert_eq!(arn(Cluster), "arn:aws:ecs:us-east-1:*:cluster/l5d-demo");
        assert_eq!(arn(Service), "arn:aws:ecs:us-east-1:*:service/l5d-demo/*");
        assert_eq!(arn(Task), "arn:aws:ecs:us-east-1:*:task/l5d-demo/*");
        assert_eq!(
            arn(TaskDefinition),
            "arn:aws:ecs:us-east-1:*:task-definition/l5d-demo-*:*"
        );
        assert_eq!(
            arn(LogGroup),
            "arn:aws:logs:us-east-1:*:log-group:/l5d-ecs/l5d-demo \
             arn:aws:logs:us-east-1:*:log-group:/l5d-ecs/l5d-demo:*"
        );
        assert_eq!(
            arn(AutoScalingGroup),
            "arn:aws:autoscaling:us-east-1:*:autoScalingGroup:*:autoScalingGroupName/l5d-demo-asg"
        );
        assert_eq!(
            arn(LaunchConfiguration),
            "arn:aws:autoscaling:us-east-1:*:launchConfiguration:*:\
             launchConfigurationName/l5d-demo-lc"
        );
        assert_eq!(
            arn(Role),
            "arn:aws:iam::*:role/ecsInstanceRole arn:aws:iam::*:role/l5d-demo-expiry"
        );
        assert_eq!(
            arn(Schedule),
            "arn:aws:scheduler:us-east-1:*:schedule/default/l5d-demo-consul-expiry"
        );
        assert_eq!(
            arn(InstanceProfile),
            "arn:aws:iam::*:instance-profile/ecsInstanceRole"
        );
        assert_eq!(
            arn(EcsServiceLinkedRole),
            "arn:aws:iam::*:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"
        );
        assert_eq!(
            arn(AmiParameter),
            "arn:aws:ssm:us-east-1::parameter/aws/service/ecs/*"
        );
        assert_eq!(arn(StateBucket), "arn:aws:s3:::*");
        assert_eq!(arn(StateObjects), "arn:aws:s3:::*/*");
        let in_s3 = Target {
            state: Some(("team-state", "demo/l5d-demo.json")),
            ..target()
        };
        assert_eq!(in_s3.arns(StateBucket), ["arn:aws:s3:::team-state"]);
        assert_eq!(
            in_s3.arns(StateObjects),
            ["arn:aws:s3:::team-state/demo/l5d-demo.json*"]
        );
        // Every ARN: arn:partition:service:region:account:resource, six parts at least.
        for scope in [
            Cluster,
            Service,
            Task,
            TaskDefinition,
            LogGroup,
            Role,
            AmiParameter,
            Schedule,
            StateBucket,
            StateObjects,
        ] {
            for a in t.arns(scope) {
                assert!(a.splitn(6, ':').count() == 6, "{a}");
            }
        }
    }

    #[test]
    fn the_policy_of_a_command_grants_what_it_calls_and_no_deletes_to_up() {
        let p = policy(&["up"], &target(), false);
        let actions: Vec<String> = p["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["Action"].as_array().unwrap().clone())
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        assert!(actions.contains(&"ec2:RunInstances".to_owned()));
        assert!(actions.contains(&"iam:PassRole".to_owned()));
        assert!(!actions.contains(&"ec2:TerminateInstances".to_owned()));
        assert!(!actions.contains(&"ecs:DeleteCluster".to_owned()));
        let all = policy(&[], &target(), true);
        for s in all["Statement"].as_array().unwrap() {
            assert_eq!(s["Resource"], "*");
        }
        assert!(listed_for("down", "ec2:TerminateInstances"));
        assert!(!listed_for("status", "ec2:TerminateInstances"));
    }
}
