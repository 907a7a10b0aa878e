//! Creates that happen at most once: the SDK's retry off for the create call, and a look-up
//! after any failure that may hide a success.

use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, Result};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::errors::{describe_error, error_code, HttpStatus};
use super::poll::jitter;

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
