//! Reading the errors of AWS calls: the code, one readable line with what to do about it, and
//! "already gone" as success for deletes.

use std::fmt::Display;

use anyhow::{anyhow, Result};
use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::reach::Unreachable;

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

/// One line naming what failed: the AWS error code and message where there is one, else the
/// chain of the transport error and its sources; for the failures people meet most, a second line says
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
        _ => {
            if let Some(u) = std::error::Error::source(err).and_then(Unreachable::find) {
                return format!("{u}\n  what to do: {}", u.advice());
            }
            (None, error_chain(err))
        }
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

/// The message of `err` and of each of its sources, joined by ": " (what
/// `DisplayErrorContext` prints before the Debug dump that it adds for nobody reading a
/// terminal). A link that adds nothing is left out: one whose text the link before it already
/// contains, and the bare "other" of a connector error of no known kind.
fn error_chain<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    causes(err.to_string(), std::error::Error::source(err)).join(": ")
}

/// `first`, then the message of each cause from `next` on, each once: a link whose text the
/// link before it already contains is left out, and so is the bare "other" of a connector
/// error of no known kind.
pub(super) fn causes(
    first: String,
    mut next: Option<&(dyn std::error::Error + 'static)>,
) -> Vec<String> {
    let mut links = vec![first];
    while let Some(e) = next {
        next = e.source();
        if e.downcast_ref::<ConnectorError>()
            .is_some_and(ConnectorError::is_other)
        {
            continue;
        }
        let text = e.to_string();
        let text = text.trim();
        if !text.is_empty() && !links.last().is_some_and(|l| l.contains(text)) {
            links.push(text.to_owned());
        }
    }
    links
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

/// The HTTP status of a raw response, whatever the SDK's response type.
pub trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_smithy_runtime_api::client::orchestrator::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
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
    }

    type Sdk = SdkError<aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError, ()>;

    #[test]
    fn transport_errors_read_as_their_chain_of_causes_without_the_debug_dump() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Sdk::dispatch_failure(ConnectorError::io(refused.into()));
        assert_eq!(error_chain(&err), "dispatch failure: io error: refused");
        // The connector's "other" says nothing: left out.
        let err = Sdk::dispatch_failure(ConnectorError::other("no auth scheme".into(), None));
        assert_eq!(error_chain(&err), "dispatch failure: no auth scheme");
        assert_eq!(
            error_chain(&Sdk::timeout_error("after 3s")),
            "request has timed out: after 3s"
        );
        // A cause that repeats the message before it is said once.
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "connect failed: {}", self.0)
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let inner = std::io::Error::other("dns error");
        let err = Sdk::dispatch_failure(ConnectorError::io(Box::new(Outer(inner))));
        assert_eq!(
            error_chain(&err),
            "dispatch failure: io error: connect failed: dns error"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_names_its_cause_in_one_line() {
        // Port 1 on loopback: nothing listens there, the connect is refused at once.
        let config = aws_sdk_sts::config::Builder::new()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-west-1"))
            .endpoint_url("http://127.0.0.1:1")
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                "AKID", "secret", None, None, "test",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        let err = aws_sdk_sts::Client::from_conf(config)
            .get_caller_identity()
            .send()
            .await
            .unwrap_err();
        let text = describe_error(&err);
        assert!(text.starts_with("dispatch failure: io error: "), "{text}");
        assert!(text.contains("Connection refused"), "{text}");
        assert!(
            !text.contains("DispatchFailure") && !text.contains('\n'),
            "{text}"
        );
    }
}
