//! The AWS SDK clients, built once from aws-config, and the helpers every step uses to read
//! AWS errors and to wait.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::options::GlobalArgs;
use crate::output::Output;
use crate::stack::usage;

/// More attempts than the SDK's default three: at a 20% throttling rate three attempts fail
/// about one call in a hundred. The SDK keeps its exponential backoff with jitter.
const MAX_ATTEMPTS: u32 = 8;

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
}

impl Aws {
    pub async fn connect(global: &GlobalArgs) -> Result<Self> {
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
        // Every client logs each call it makes (shown with -v).
        macro_rules! client {
            ($service:ident) => {
                $service::Client::from_conf(
                    $service::config::Builder::from(&config)
                        .interceptor(CallLog)
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
        })
    }

    /// `aws`, `aws-cn` or `aws-us-gov`, for the ARNs of AWS managed policies.
    pub fn partition(&self) -> &'static str {
        if self.region.starts_with("cn-") {
            "aws-cn"
        } else if self.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
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

/// The AWS error code of a failed call, such as `InvalidGroup.NotFound`.
pub fn error_code<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

/// Logs every attempt of every AWS call: service, operation, and the HTTP status it got.
#[derive(Debug)]
struct CallLog;

impl aws_smithy_runtime_api::client::interceptors::Intercept for CallLog {
    fn name(&self) -> &'static str {
        "l5d-ecs call log"
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

/// One line naming what failed: the AWS error code and message where there is one, else the
/// whole chain of the transport error; for the failures people meet most, a second line says
/// what to do.
pub fn describe_error<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    let (code, text) = match err {
        SdkError::ServiceError(e) => match (e.err().code(), e.err().message()) {
            (Some(code), Some(message)) => (Some(code), format!("{code}: {message}")),
            (Some(code), None) => (Some(code), code.to_owned()),
            _ => (
                None,
                format!(
                    "HTTP {} with no AWS error in the reply",
                    e.raw().status_code()
                ),
            ),
        },
        _ => (
            None,
            without_debug_dump(&DisplayErrorContext(err).to_string()),
        ),
    };
    match advice(code, &text) {
        Some(what_to_do)
            if text.contains("CredentialsNotLoaded") || text.contains("credential provider") =>
        {
            format!("no AWS credentials\n  what to do: {what_to_do}")
        }
        Some(what_to_do) => format!("{text}\n  what to do: {what_to_do}"),
        None => text,
    }
}

/// `DisplayErrorContext` ends with the error's Debug form, which helps nobody reading a
/// terminal: keep the readable chain before it.
fn without_debug_dump(text: &str) -> String {
    const DUMPS: [&str; 5] = [
        " (DispatchFailure(",
        " (TimeoutError(",
        " (ResponseError(",
        " (ConstructionFailure(",
        " (ServiceError(",
    ];
    let cut = DUMPS
        .iter()
        .filter_map(|d| text.find(d))
        .min()
        .unwrap_or(text.len());
    text[..cut].to_owned()
}

/// What a person can do about the common AWS failures.
pub fn advice(code: Option<&str>, text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    if lower.contains("no credentials")
        || lower.contains("credentials provider")
        || lower.contains("credential provider was not enabled")
        || lower.contains("failed to load credentials")
    {
        return Some(
            "no AWS credentials were found: set AWS_PROFILE or pass --profile, run `aws \
             configure` or `aws sso login`, or export AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY"
                .to_owned(),
        );
    }
    match code? {
        "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" | "TokenRefreshRequired" => {
            Some("your AWS session has expired: refresh it (`aws sso login`, or new temporary credentials) and run again".to_owned())
        }
        "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" | "UnauthorizedException" => {
            // An IAM action looks like `ec2:RunInstances`: a service, a colon, a capitalised name.
            let action = text
                .split_whitespace()
                .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != ':'))
                .find(|w| {
                    w.split_once(':').is_some_and(|(service, name)| {
                        !service.is_empty()
                            && service.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                            && name.starts_with(|c: char| c.is_ascii_uppercase())
                            && name.chars().all(|c| c.is_ascii_alphanumeric())
                    })
                })
                .map(str::to_owned);
            Some(match action {
                Some(a) => format!("your AWS identity lacks the permission {a}: grant it (or use a role that has it), then run again"),
                None => "your AWS identity lacks a permission this call needs: grant it, then run again".to_owned(),
            })
        }
        "VcpuLimitExceeded" | "InstanceLimitExceeded" => Some(
            "the account's on-demand vCPU quota is too small: ask for more in Service Quotas \
             (EC2, Running On-Demand Standard instances), or use a smaller --instance-type or \
             --max"
                .to_owned(),
        ),
        "Unsupported" | "InsufficientInstanceCapacity" => Some(
            "that instance type is not offered (or has no capacity) in this availability zone: \
             pick another --availability-zone or --instance-type"
                .to_owned(),
        ),
        "UnsupportedOperation" if lower.contains("launch configuration") => Some(
            "this account cannot create launch configurations: run with --launch-template".to_owned(),
        ),
        _ => None,
    }
}

pub trait AwsResultExt<T> {
    /// Turns an SDK error into an error that says what was being done and what AWS answered.
    fn aws(self, what: impl Display) -> Result<T>;
}

impl<T, E, R> AwsResultExt<T> for std::result::Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    fn aws(self, what: impl Display) -> Result<T> {
        self.map_err(|e| anyhow!("{what}: {}", describe_error(&e)))
    }
}

/// A delete (or detach, or remove) whose target is already gone counts as done: a retry after
/// a lost response, or someone else, got there first.
pub fn done_if_gone<T, E, R>(
    result: std::result::Result<T, SdkError<E, R>>,
    gone_codes: &[&str],
    what: impl Display,
) -> Result<()>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) if error_code(&e).is_some_and(|c| gone_codes.contains(&c)) => Ok(()),
        Err(e) => Err(anyhow!("{what}: {}", describe_error(&e))),
    }
}

/// The outcome of one look at something being waited for.
pub enum Poll<T> {
    Ready(T),
    /// Not yet, and why (shown if the wait times out).
    Pending(String),
}

/// How a poll spaces its looks: from `first`, growing by half each time up to `max`, each
/// with jitter.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// For waits of seconds to minutes: nodes joining, deletions AWS refuses while something
    /// lets go.
    pub const DEFAULT: Backoff = Backoff {
        first: Duration::from_millis(500),
        max: Duration::from_secs(10),
    };
    /// For what usually clears within seconds (a new IAM entity reaching other services): a
    /// long interval would add its own length to every `up` on a fresh account.
    pub const SHORT: Backoff = Backoff {
        first: Duration::from_millis(200),
        max: Duration::from_secs(2),
    };
}

/// Polls `check` until it is ready, with [`Backoff::DEFAULT`], failing after `timeout` with a
/// message that says what was waited for and what was last seen.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>>>,
{
    poll_with(what, timeout, Backoff::DEFAULT, None, check).await
}

/// As [`poll`], with the given backoff; with `report`, the first time `check` is not ready a
/// progress line says what is waited for and why, so a wait of seconds is never silent.
pub async fn poll_with<T, F, Fut>(
    what: &str,
    timeout: Duration,
    backoff: Backoff,
    report: Option<&Output>,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = backoff.first;
    let mut reported = false;
    loop {
        let last = match check().await? {
            Poll::Ready(value) => return Ok(value),
            Poll::Pending(why) => why,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(anyhow!(
                "timed out after {} waiting for {what} (last seen: {last})",
                format_duration(timeout)
            ));
        }
        match report {
            Some(out) if !reported => {
                out.progress(format!(
                    "waiting up to {} for {what}: {last}",
                    format_duration(timeout)
                ));
                reported = true;
            }
            _ => tracing::debug!(what, last, "waiting"),
        }
        let sleep = jitter(delay).min(deadline - now);
        tokio::time::sleep(sleep).await;
        delay = (delay * 3 / 2).min(backoff.max);
    }
}

/// How long AWS may take to make a new IAM entity usable by other services. Seconds as a rule;
/// the bound is generous because a timeout here fails the whole `up`.
pub const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(120);

/// Something made moments ago that another service does not see yet. IAM is eventually
/// consistent: EC2 and Auto Scaling refuse a new instance profile, and ECS a new
/// service-linked role, for some seconds after they were created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotPropagated {
    InstanceProfile,
    EcsServiceLinkedRole,
}

impl NotPropagated {
    /// Reads a refusal as "not propagated yet", or `None` for any other error.
    pub fn from_error(code: Option<&str>, message: &str) -> Option<Self> {
        let lower = message.to_ascii_lowercase();
        match code? {
            // CreateLaunchConfiguration: "Invalid IamInstanceProfile: <name>";
            // Create/UpdateAutoScalingGroup with a launch template: "... Value (<name>) for
            // parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name";
            // RunInstances (InvalidParameterValue) says the same.
            "ValidationError" | "InvalidParameterValue"
                if lower.contains("invalid iaminstanceprofile")
                    || lower.contains("invalid iam instance profile")
                    || (lower.contains("iaminstanceprofile") && lower.contains("is invalid")) =>
            {
                Some(Self::InstanceProfile)
            }
            "InvalidParameterException"
                if lower.contains("unable to assume the service linked role") =>
            {
                Some(Self::EcsServiceLinkedRole)
            }
            _ => None,
        }
    }

    pub fn from_sdk<E, R>(err: &SdkError<E, R>) -> Option<Self>
    where
        E: ProvideErrorMetadata,
    {
        match err {
            SdkError::ServiceError(e) => Self::from_error(e.err().code(), e.err().message()?),
            _ => None,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::InstanceProfile => "the new IAM instance profile is not visible to EC2 yet",
            Self::EcsServiceLinkedRole => "ECS cannot use its service-linked role yet",
        }
    }
}

/// Sends `call` until AWS stops refusing it for something it does not see yet
/// ([`NotPropagated`]), polling with [`Backoff::SHORT`] for at most [`PROPAGATION_TIMEOUT`]
/// and saying what it waits for. Any other outcome of the call is returned as it is; the
/// outer error is the timeout.
pub async fn when_propagated<T, E, R, F, Fut>(
    out: &Output,
    what: &str,
    mut call: F,
) -> Result<std::result::Result<T, SdkError<E, R>>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HttpStatus,
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, SdkError<E, R>>>,
{
    poll_with(
        &format!("AWS to accept {what}"),
        PROPAGATION_TIMEOUT,
        Backoff::SHORT,
        Some(out),
        || {
            let sent = call();
            async move {
                let result = sent.await;
                if let Err(e) = &result {
                    if let Some(kind) = NotPropagated::from_sdk(e) {
                        return Ok(Poll::Pending(format!(
                            "{}: {}",
                            kind.what(),
                            describe_error(e)
                        )));
                    }
                }
                Ok(Poll::Ready(result))
            }
        },
    )
    .await
}

/// [`when_propagated`] for a create inside [`create_once`]: the outcome as a [`CreateError`].
pub async fn create_when_propagated<T, E, R, F, Fut>(
    out: &Output,
    what: &str,
    call: F,
) -> std::result::Result<T, CreateError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HttpStatus,
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, SdkError<E, R>>>,
{
    match when_propagated(out, what, call).await {
        Ok(result) => result.map_err(classify),
        Err(timed_out) => Err(CreateError::fatal(timed_out)),
    }
}

/// Between 50% and 100% of `d`, so that concurrent waiters do not poll in lock step.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let fraction = 0.5 + f64::from(nanos % 1000) / 2000.0;
    d.mul_f64(fraction)
}

pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 && secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs >= 60 && secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else if secs > 0 {
        format!("{secs}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

pub fn ec2_filter(name: &str, values: &[&str]) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| (*v).to_owned()).collect()))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_failures_say_what_to_do() {
        let denied = advice(
            Some("UnauthorizedOperation"),
            "UnauthorizedOperation: You are not authorized to perform this operation. User: \
             arn:aws:iam::1:user/x is not authorized to perform: ec2:RunInstances on resource",
        )
        .unwrap();
        assert!(denied.contains("ec2:RunInstances"), "{denied}");
        assert!(advice(Some("VcpuLimitExceeded"), "x")
            .unwrap()
            .contains("Service Quotas"));
        assert!(advice(Some("ExpiredToken"), "x")
            .unwrap()
            .contains("expired"));
        assert!(
            advice(None, "dispatch failure: no credentials in the chain")
                .unwrap()
                .contains("AWS_PROFILE")
        );
        assert!(advice(Some("InvalidGroup.NotFound"), "x").is_none());
        assert_eq!(
            without_debug_dump(
                "dispatch failure: io error: refused (DispatchFailure(DispatchFailure { x }))"
            ),
            "dispatch failure: io error: refused"
        );
    }

    #[tokio::test]
    async fn poll_times_out_naming_what_it_waited_for() {
        let err = poll("the thing", Duration::from_millis(50), || async {
            Ok(Poll::<()>::Pending("still pending".into()))
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("the thing") && err.contains("still pending"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn poll_returns_when_ready() {
        let mut n = 0;
        let v = poll("n to reach 2", Duration::from_secs(5), || {
            n += 1;
            let n = n;
            async move {
                Ok(if n >= 2 {
                    Poll::Ready(n)
                } else {
                    Poll::Pending(format!("n={n}"))
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(v, 2);
    }

    #[test]
    fn refusals_for_what_iam_has_not_propagated_yet_are_recognised() {
        let profile = [
            (
                "ValidationError",
                "Invalid IamInstanceProfile: ecsInstanceRole",
            ),
            (
                "ValidationError",
                "You must use a valid fully-formed launch template. Value (ecsInstanceRole) for \
                 parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name",
            ),
            (
                "InvalidParameterValue",
                "Value (ecsInstanceRole) for parameter iamInstanceProfile.name is invalid. \
                 Invalid IAM Instance Profile name",
            ),
        ];
        for (code, message) in profile {
            assert_eq!(
                NotPropagated::from_error(Some(code), message),
                Some(NotPropagated::InstanceProfile),
                "{code}: {message}"
            );
        }
        assert_eq!(
            NotPropagated::from_error(
                Some("InvalidParameterException"),
                "Unable to assume the service linked role. Please verify that the ECS service \
                 linked role exists."
            ),
            Some(NotPropagated::EcsServiceLinkedRole)
        );
        for (code, message) in [
            ("ValidationError", "Launch configuration name not found"),
            (
                "InvalidParameterException",
                "Unable to assume role arn:aws:iam::1:role/x",
            ),
            ("AccessDenied", "Invalid IamInstanceProfile: x"),
        ] {
            assert_eq!(
                NotPropagated::from_error(Some(code), message),
                None,
                "{message}"
            );
        }
        assert_eq!(
            NotPropagated::from_error(None, "Invalid IamInstanceProfile"),
            None
        );
    }

    #[test]
    fn durations_format_with_units() {
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
    }
}

/// Per-call config that turns the SDK's automatic retry off, for creates the server does not
/// deduplicate: a retry after a lost response would make a second one.
macro_rules! no_retry {
    ($service:ident) => {
        $service::config::Builder::default()
            .retry_config(aws_config::retry::RetryConfig::disabled())
    };
}
pub(crate) use no_retry;

/// Why a create call failed, as far as deciding what to do next goes.
#[derive(Debug)]
pub struct CreateError {
    pub message: String,
    /// The call may have been made on the server (lost response, timeout, 5xx) or was
    /// throttled: look, then maybe try again.
    pub transient: bool,
    /// The server says it exists already: look it up.
    pub exists: bool,
}

impl CreateError {
    /// A failure that no look-up or retry can mend.
    pub fn fatal(err: anyhow::Error) -> Self {
        Self {
            message: format!("{err:#}"),
            transient: false,
            exists: false,
        }
    }
}

pub fn classify<E, R>(err: SdkError<E, R>) -> CreateError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    let message = describe_error(&err);
    let code = error_code(&err).unwrap_or_default().to_owned();
    let exists = code.contains("AlreadyExists")
        || code.contains("Duplicate")
        || code == "EntityAlreadyExists";
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(e) => {
            e.raw().status_code() >= 500
                || matches!(
                    code.as_str(),
                    "Throttling"
                        | "ThrottlingException"
                        | "RequestLimitExceeded"
                        | "TooManyRequestsException"
                        | "RequestThrottled"
                        | "ServiceUnavailable"
                        | "InternalFailure"
                )
        }
        _ => false,
    };
    CreateError {
        message,
        transient,
        exists,
    }
}

/// The HTTP status of a raw response, whatever the SDK's response type.
pub trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_smithy_runtime_api::client::orchestrator::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Creates something at most once, even when responses are lost: the create call runs with
/// the SDK's retry off, and after any error that may hide a success (or says the thing exists)
/// `lookup` looks for it before another try.
pub async fn create_once<T, C, CF, L, LF>(what: &str, mut create: C, mut lookup: L) -> Result<T>
where
    C: FnMut() -> CF,
    CF: Future<Output = std::result::Result<T, CreateError>>,
    L: FnMut() -> LF,
    LF: Future<Output = Result<Option<T>>>,
{
    const ATTEMPTS: u32 = 8;
    let mut delay = Duration::from_millis(200);
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match create().await {
            Ok(v) => return Ok(v),
            Err(e) if !e.transient && !e.exists => return Err(anyhow!("{what}: {}", e.message)),
            Err(e) => {
                tracing::debug!(what, attempt, error = %e.message, "create failed; looking before another try");
                if let Some(found) = lookup().await? {
                    return Ok(found);
                }
                if e.exists {
                    return Err(anyhow!(
                        "{what}: AWS says it exists ({}) but it cannot be found",
                        e.message
                    ));
                }
                last = e.message;
            }
        }
        tokio::time::sleep(jitter(delay)).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    Err(anyhow!("{what}: gave up after {ATTEMPTS} attempts: {last}"))
}
