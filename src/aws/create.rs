//! Creates that happen at most once: the SDK's retry off for the create call, and a look-up
//! after any failure that may hide a success.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use aws_runtime::retries::classifiers::AwsErrorCodeClassifier;
use aws_smithy_runtime::client::retries::classifiers::{
    run_classifiers_on_ctx, HttpStatusCodeClassifier, ModeledAsRetryableClassifier,
    TransientErrorClassifier,
};
use aws_smithy_runtime_api::client::interceptors::context::{Error, Input, InterceptorContext};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, OrchestratorError};
use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, SharedRetryClassifier};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::ProvideErrorKind;

use super::errors::{describe_error, error_code, HttpStatus};
use super::poll::{format_duration, poll_with, Backoff, Poll, TimedOut};

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

/// Reads a failed create: does it exist already, and may it have been made anyway, or be
/// worth sending again (the SDK's own retry classifiers say so, see [`sdk_would_retry`])?
pub fn classify<E, R>(err: SdkError<E, R>) -> CreateError
where
    E: ProvideErrorMetadata + ProvideErrorKind + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    let message = describe_error(&err);
    let code = error_code(&err).unwrap_or_default();
    let exists = code.contains("AlreadyExists")
        || code.contains("Duplicate")
        || code == "EntityAlreadyExists";
    CreateError {
        message,
        transient: sdk_would_retry(err),
        exists,
    }
}

/// Whether the SDK would retry this error if its retries were on: the classifiers that every
/// SDK operation runs, in the SDK's order, on a context holding the same error and the
/// response's status. That is throttling (AWS's list of throttling codes), transient errors
/// (timeouts, lost or broken responses, I/O errors), HTTP 500/502/503/504, and errors the
/// service model marks retryable.
fn sdk_would_retry<E, R>(err: SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata + ProvideErrorKind + std::error::Error + Send + Sync + 'static,
    R: HttpStatus,
{
    let status = err
        .raw_response()
        .and_then(|r| StatusCode::try_from(r.status_code()).ok());
    let error = match err {
        SdkError::ServiceError(e) => OrchestratorError::operation(Error::erase(e.into_err())),
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) | SdkError::DispatchFailure(_) => {
            let timeout = matches!(err, SdkError::TimeoutError(_));
            let response = matches!(err, SdkError::ResponseError(_));
            let Ok(source) = err.into_source() else {
                return false;
            };
            if timeout {
                OrchestratorError::timeout(source)
            } else if response {
                OrchestratorError::response(source)
            } else {
                match source.downcast::<ConnectorError>() {
                    Ok(connector) => OrchestratorError::connector(*connector),
                    Err(_) => return false,
                }
            }
        }
        // A request that could not be built: the SDK does not retry it either.
        _ => return false,
    };
    let mut ctx = InterceptorContext::new(Input::doesnt_matter());
    if let Some(status) = status {
        ctx.set_response(HttpResponse::new(status, SdkBody::empty()));
    }
    ctx.set_output_or_error(Err(error));
    let mut classifiers = [
        SharedRetryClassifier::new(HttpStatusCodeClassifier::default()),
        SharedRetryClassifier::new(ModeledAsRetryableClassifier::<E>::new()),
        SharedRetryClassifier::new(AwsErrorCodeClassifier::<E>::new()),
        SharedRetryClassifier::new(TransientErrorClassifier::<E>::new()),
    ];
    // Lower priorities run first; later ones may override them, as in the SDK.
    classifiers.sort_by_key(|c| c.priority());
    run_classifiers_on_ctx(classifiers.into_iter(), &ctx).should_retry()
}

/// How long [`create_once`] keeps trying a create that fails in a way that may go again, and
/// how it spaces the tries.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
const CREATE_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(200),
    max: Duration::from_secs(5),
};

/// Creates something at most once, even when responses are lost: the create call runs with
/// the SDK's retry off, and after any error that may hide a success (or says the thing exists)
/// `lookup` looks for it before another try. Tries go through [`poll_with`] for at most
/// [`CREATE_TIMEOUT`].
pub async fn create_once<T, C, CF, L, LF>(what: &str, create: C, lookup: L) -> Result<T>
where
    C: FnMut() -> CF,
    CF: Future<Output = std::result::Result<T, CreateError>>,
    L: FnMut() -> LF,
    LF: Future<Output = Result<Option<T>>>,
{
    create_within(what, CREATE_TIMEOUT, create, lookup).await
}

async fn create_within<T, C, CF, L, LF>(
    what: &str,
    timeout: Duration,
    mut create: C,
    lookup: L,
) -> Result<T>
where
    C: FnMut() -> CF,
    CF: Future<Output = std::result::Result<T, CreateError>>,
    L: FnMut() -> LF,
    LF: Future<Output = Result<Option<T>>>,
{
    // Each try's future calls `lookup`, so it is shared; it is held only while called.
    let lookup = Mutex::new(lookup);
    let lookup = &lookup;
    let mut attempt = 0u32;
    let created = poll_with(what, timeout, CREATE_BACKOFF, None, || {
        attempt += 1;
        let attempt = attempt;
        let sent = create();
        async move {
            let e = match sent.await {
                Ok(v) => return Ok(Poll::Ready(v)),
                Err(e) if !e.transient && !e.exists => bail!("{what}: {}", e.message),
                Err(e) => e,
            };
            tracing::debug!(what, attempt, error = %e.message, "create failed; looking before another try");
            let looked = (lookup.lock().unwrap_or_else(PoisonError::into_inner))();
            if let Some(found) = looked.await? {
                return Ok(Poll::Ready(found));
            }
            if e.exists {
                bail!(
                    "{what}: AWS says it exists ({}) but it cannot be found",
                    e.message
                );
            }
            Ok(Poll::Pending(e.message))
        }
    })
    .await;
    created.map_err(|err| match err.downcast::<TimedOut>() {
        Ok(t) => anyhow!(
            "{what}: gave up after {} attempts in {}: {}",
            t.looks,
            format_duration(t.timeout),
            t.last
        ),
        Err(err) => err,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use aws_sdk_ecs::operation::create_service::CreateServiceError;
    use aws_smithy_types::error::ErrorMetadata;

    type Sdk = SdkError<CreateServiceError, HttpResponse>;

    fn reply(status: u16, code: Option<&str>) -> Sdk {
        let mut meta = ErrorMetadata::builder().message("m");
        if let Some(code) = code {
            meta = meta.code(code);
        }
        SdkError::service_error(
            CreateServiceError::generic(meta.build()),
            HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty()),
        )
    }

    fn transient(err: Sdk) -> bool {
        classify(err).transient
    }

    #[test]
    fn throttling_and_server_errors_may_go_again() {
        // As the test chaos injects them: each protocol's throttling error, and a bare 503.
        assert!(transient(reply(503, Some("RequestLimitExceeded"))));
        assert!(transient(reply(400, Some("Throttling"))));
        assert!(transient(reply(400, Some("ThrottlingException"))));
        assert!(transient(reply(400, Some("RequestTimeout"))));
        assert!(transient(reply(503, None)));
        assert!(transient(reply(500, Some("InternalFailure"))));
        assert!(transient(reply(500, Some("ServerException"))));
    }

    #[test]
    fn refusals_are_final_and_duplicates_exist() {
        assert!(!transient(reply(400, Some("InvalidParameterException"))));
        assert!(!transient(reply(403, Some("AccessDeniedException"))));
        assert!(!transient(reply(400, None)));
        let dup = classify(reply(400, Some("InvalidGroup.Duplicate")));
        assert!(dup.exists && !dup.transient, "{dup:?}");
        let exists = classify(reply(409, Some("EntityAlreadyExists")));
        assert!(exists.exists, "{exists:?}");
        assert!(
            exists.message.contains("EntityAlreadyExists: m"),
            "{exists:?}"
        );
    }

    #[test]
    fn lost_responses_and_timeouts_may_go_again() {
        let io = Sdk::dispatch_failure(ConnectorError::io("connection reset".into()));
        assert!(transient(io));
        let timeout = Sdk::dispatch_failure(ConnectorError::timeout("read timeout".into()));
        assert!(transient(timeout));
        assert!(transient(Sdk::timeout_error("operation timeout")));
        let broken = Sdk::response_error(
            "unexpected end of body",
            HttpResponse::new(StatusCode::try_from(200).unwrap(), SdkBody::empty()),
        );
        assert!(transient(broken));
        let user = Sdk::dispatch_failure(ConnectorError::user("bad request".into()));
        assert!(!transient(user));
        assert!(!transient(Sdk::construction_failure("no region")));
    }

    fn failure(transient: bool, exists: bool) -> CreateError {
        CreateError {
            message: "AWS said no".into(),
            transient,
            exists,
        }
    }

    /// Runs a create whose tries fail as `fails` says, then succeed; the look-up finds the
    /// resource after `found_after` looks (never if `None`). Returns the outcome, the number
    /// of creates sent and of looks.
    async fn run(
        fails: &[CreateError],
        found_after: Option<usize>,
        timeout: Duration,
    ) -> (Result<&'static str>, usize, usize) {
        let (creates, looks) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let result = create_within(
            "creating x",
            timeout,
            || {
                let n = creates.fetch_add(1, Ordering::SeqCst);
                let outcome = match fails.get(n) {
                    Some(e) => Err(failure(e.transient, e.exists)),
                    None => Ok("created"),
                };
                async move { outcome }
            },
            || {
                let n = looks.fetch_add(1, Ordering::SeqCst) + 1;
                async move { Ok((found_after == Some(n)).then_some("found")) }
            },
        )
        .await;
        (result, creates.into_inner(), looks.into_inner())
    }

    const LONG: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn a_create_that_may_have_gone_through_is_looked_for_before_another_try() {
        let (result, creates, looks) = run(&[failure(true, false)], Some(1), LONG).await;
        assert_eq!((result.unwrap(), creates, looks), ("found", 1, 1));
        let (result, creates, looks) =
            run(&[failure(true, false), failure(true, false)], None, LONG).await;
        assert_eq!((result.unwrap(), creates, looks), ("created", 3, 2));
    }

    #[tokio::test]
    async fn a_final_refusal_or_an_existing_thing_that_cannot_be_found_fails_at_once() {
        let (result, creates, looks) = run(&[failure(false, false)], None, LONG).await;
        assert_eq!(result.unwrap_err().to_string(), "creating x: AWS said no");
        assert_eq!((creates, looks), (1, 0));
        let (result, creates, looks) = run(&[failure(false, true)], None, LONG).await;
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("exists") && err.contains("cannot be found"),
            "{err}"
        );
        assert_eq!((creates, looks), (1, 1));
    }

    #[tokio::test]
    async fn tries_that_keep_failing_give_up_at_the_timeout_saying_why() {
        let fails: Vec<CreateError> = (0..1000).map(|_| failure(true, false)).collect();
        let (result, creates, _) = run(&fails, None, Duration::from_millis(300)).await;
        let err = result.unwrap_err().to_string();
        assert_eq!(
            err,
            format!("creating x: gave up after {creates} attempts in 300ms: AWS said no")
        );
        assert!(creates >= 2, "{err}");
    }
}
