//! IAM is eventually consistent: a call that AWS refuses because it does not see something
//! made moments ago is sent again until it does.

use std::future::Future;
use std::time::Duration;

use anyhow::Result;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::ProvideErrorKind;

use super::create::{classify, CreateError};
use super::errors::{describe_error, HttpStatus};
use super::poll::{poll_with, Backoff, Poll};
use crate::output::Output;

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
    /// EventBridge Scheduler and a role made moments ago for it.
    SchedulerRole,
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
            // CreateSchedule: "The execution role you provide must allow AWS EventBridge
            // Scheduler to assume the role."
            "ValidationException"
                if lower.contains("execution role") && lower.contains("assume") =>
            {
                Some(Self::SchedulerRole)
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
            Self::SchedulerRole => "EventBridge Scheduler cannot assume the new role yet",
        }
    }
}

/// Sends `call` until AWS stops refusing it for something it does not see yet
/// ([`NotPropagated`]), polling with [`Backoff::IAM`] for at most [`PROPAGATION_TIMEOUT`]
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
        Backoff::IAM,
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
    E: ProvideErrorMetadata + ProvideErrorKind + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HttpStatus,
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, SdkError<E, R>>>,
{
    match when_propagated(out, what, call).await {
        Ok(result) => result.map_err(classify),
        Err(timed_out) => Err(CreateError::fatal(timed_out)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
