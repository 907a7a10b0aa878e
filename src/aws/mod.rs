//! The AWS SDK clients, built once from aws-config, and the helpers every step uses to read
//! AWS errors ([`errors`]), to create at most once ([`create`]) and to wait ([`poll`],
//! [`propagation`]).

pub mod bulk;
pub mod create;
pub mod errors;
pub mod operations;
pub mod poll;
pub mod propagation;
pub mod reach;

use anyhow::{anyhow, Result};
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};

pub(crate) use bulk::adaptive_retry;
pub(crate) use create::no_retry;
pub use create::{classify, create_once, CreateError};
pub use errors::{describe_error, done_if_gone, error_code, AwsResultExt};
pub use poll::{format_duration, poll, poll_with, Backoff, Poll, TimedOut};
pub use propagation::{create_when_propagated, when_propagated, NotPropagated};
pub use reach::Notice;

use crate::options::GlobalArgs;
use crate::stack::usage;

/// More attempts than the SDK's default three: at a 20% throttling rate three attempts fail
/// about one call in a hundred. The SDK keeps its exponential backoff with jitter.
pub(crate) const MAX_ATTEMPTS: u32 = 8;

pub struct Aws {
    pub region: String,
    pub ec2: aws_sdk_ec2::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub iam: aws_sdk_iam::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub sts: aws_sdk_sts::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub quotas: aws_sdk_servicequotas::Client,
    /// The consul server's schedule of `up --expires-in`.
    pub scheduler: aws_sdk_scheduler::Client,
    /// The state's bucket, when the state is in S3 (`--state s3://…`).
    pub s3: aws_sdk_s3::Client,
}

impl Aws {
    /// The clients for the region and endpoint the flags and the environment give; `notice`
    /// hears of calls that cannot connect and are tried again.
    pub async fn connect(global: &GlobalArgs, notice: Option<Notice>) -> Result<Self> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
        if let Some(region) = &global.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(profile) = &global.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &global.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        let region = config.region().map(|r| r.to_string()).ok_or_else(|| {
            usage("no AWS region: pass --region, set AWS_REGION, or give the profile a region")
        })?;
        let explicit_endpoint = global.endpoint_url.is_some()
            || std::env::var_os("AWS_ENDPOINT_URL").is_some_and(|v| !v.is_empty());
        let reach = reach::ReachInterceptor::new(&region, explicit_endpoint, notice);
        // Every client logs each call it makes (shown with -v), and names the endpoint it
        // cannot reach.
        macro_rules! client {
            ($service:ident) => {
                $service::Client::from_conf(
                    $service::config::Builder::from(&config)
                        .interceptor(CallLog)
                        .interceptor(reach.clone())
                        .retry_classifier(reach::UnreachableRetry)
                        .build(),
                )
            };
        }
        Ok(Self {
            region,
            ec2: client!(aws_sdk_ec2),
            ecs: client!(aws_sdk_ecs),
            iam: client!(aws_sdk_iam),
            autoscaling: client!(aws_sdk_autoscaling),
            ssm: client!(aws_sdk_ssm),
            sts: client!(aws_sdk_sts),
            logs: client!(aws_sdk_cloudwatchlogs),
            quotas: client!(aws_sdk_servicequotas),
            scheduler: client!(aws_sdk_scheduler),
            // A custom endpoint (an emulator, a VPC endpoint by IP) has no bucket subdomains.
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&config)
                    .force_path_style(explicit_endpoint)
                    .interceptor(CallLog)
                    .interceptor(reach.clone())
                    .retry_classifier(reach::UnreachableRetry)
                    .build(),
            ),
        })
    }

    /// EC2 and Auto Scaling clients for another region (`list --all-regions`).
    pub fn ec2_and_autoscaling_in(
        &self,
        region: &str,
    ) -> (aws_sdk_ec2::Client, aws_sdk_autoscaling::Client) {
        let region = Region::new(region.to_owned());
        (
            aws_sdk_ec2::Client::from_conf(
                self.ec2
                    .config()
                    .to_builder()
                    .region(region.clone())
                    .build(),
            ),
            aws_sdk_autoscaling::Client::from_conf(
                self.autoscaling
                    .config()
                    .to_builder()
                    .region(region)
                    .build(),
            ),
        )
    }

    /// The S3 client for a bucket in another region than the stack's.
    pub fn s3_in(&self, region: &str) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            self.s3
                .config()
                .to_builder()
                .region(Region::new(region.to_owned()))
                .build(),
        )
    }

    /// `aws`, `aws-cn` or `aws-us-gov`, for the ARNs of AWS managed policies.
    pub fn partition(&self) -> &'static str {
        partition_of(&self.region)
    }

    pub async fn account_id(&self) -> Result<String> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .aws("looking up the account of the current credentials (sts:GetCallerIdentity)")?;
        out.account()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("sts:GetCallerIdentity returned no account id"))
    }
}

/// The partition of a region: `aws`, `aws-cn` or `aws-us-gov`.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Logs every attempt of every AWS call: service, operation, and the HTTP status it got.
#[derive(Debug)]
struct CallLog;

impl aws_smithy_runtime_api::client::interceptors::Intercept for CallLog {
    fn name(&self) -> &'static str {
        "l5d-ecs call log"
    }

    /// Under `L5D_ECS_STRICT_OPERATIONS`, a call the operation list does not grant the
    /// running command fails before it goes out.
    fn read_before_serialization(
        &self,
        _: &aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> std::result::Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let refusal = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .and_then(|m| operations::strict_refusal(m.service(), m.name()));
        match refusal {
            Some(why) => Err(why.into()),
            None => Ok(()),
        }
    }

    fn read_after_attempt(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef<'_>,
        _runtime_components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> std::result::Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let (service, operation) = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map_or(("?", "?"), |m| (m.service(), m.name()));
        match context.response() {
            Some(response) => tracing::info!(
                target: "l5d_ecs::aws_call",
                "{service} {operation} -> HTTP {}",
                response.status().as_u16()
            ),
            None => {
                tracing::info!(target: "l5d_ecs::aws_call", "{service} {operation} -> no response")
            }
        }
        Ok(())
    }
}

pub fn ec2_filter(name: &str, values: &[&str]) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| (*v).to_owned()).collect()))
        .build()
}
