//! Calls that cannot reach AWS: a refused connection, a name that does not resolve, a TLS
//! handshake that fails. The error names the endpoint and region and says what to check;
//! retries of such a call are shown on the progress line and end after about ten seconds,
//! while throttling and 5xx replies keep the SDK's longer backoff.

use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::dns::ResolveDnsError;
use aws_smithy_runtime_api::client::interceptors::context::{
    FinalizerInterceptorContextMut, InterceptorContext,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority,
};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_smithy_types::retry::{ErrorKind, RetryConfig};

/// The pause between tries of a call that could not connect: with the client's attempts
/// (8), a refused connection gives up after about 7 s instead of the ~35 s of exponential
/// backoff, which is there for a service that answers "slow down".
pub const UNREACHABLE_RETRY_DELAY: Duration = Duration::from_secs(1);

/// How often the progress line says that calls cannot connect (many fail at once).
const NOTICE_EVERY: Duration = Duration::from_secs(2);

/// Says something on the progress line (the output layer's, handed down).
pub type Notice = Arc<dyn Fn(String) + Send + Sync>;

/// Why a connection could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    Refused,
    Dns,
    Tls,
    Other,
}

/// A call that could not connect, with where it tried to go.
#[derive(Debug)]
pub struct Unreachable {
    pub endpoint: String,
    pub region: String,
    pub failure: ConnectFailure,
    /// From `--endpoint-url` or `AWS_ENDPOINT_URL`, rather than AWS's own for the region.
    pub explicit_endpoint: bool,
    /// The transport's own words.
    detail: String,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.failure {
            ConnectFailure::Refused => "connection refused",
            ConnectFailure::Dns => "the host name does not resolve",
            ConnectFailure::Tls => "the TLS handshake failed",
            ConnectFailure::Other => "no connection",
        };
        write!(
            f,
            "cannot connect to {} (region {}): {what} ({})",
            self.endpoint, self.region, self.detail
        )
    }
}

impl StdError for Unreachable {}

impl Unreachable {
    /// What a person can check.
    pub fn advice(&self) -> String {
        let endpoint = if self.explicit_endpoint {
            format!(
                "the endpoint {} (from --endpoint-url or AWS_ENDPOINT_URL): is it right, and is \
                 its server running (for moto: `moto_server -H 127.0.0.1 -p PORT`)?",
                self.endpoint
            )
        } else {
            format!(
                "the region {} (--region, AWS_REGION or the profile's region) and your network: \
                 a proxy (HTTPS_PROXY) or firewall between you and {}",
                self.region, self.endpoint
            )
        };
        match self.failure {
            ConnectFailure::Refused | ConnectFailure::Other => format!("check {endpoint}"),
            ConnectFailure::Dns => format!("check your DNS, and {endpoint}"),
            ConnectFailure::Tls => format!(
                "check the endpoint's scheme (http:// or https://) and its certificate (a proxy \
                 that inspects TLS needs its CA in the system's trust store), and {endpoint}"
            ),
        }
    }

    /// The `Unreachable` in an error's chain of causes, if any.
    pub fn find<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a Unreachable> {
        let mut next = Some(err);
        while let Some(e) = next {
            if let Some(found) = e.downcast_ref::<Unreachable>() {
                return Some(found);
            }
            next = e.source();
        }
        None
    }
}

/// Why the connector failed, when it failed to connect at all; `None` for anything else (an
/// error after the request went out is left to the SDK's own retries).
fn connect_failure(err: &ConnectorError) -> Option<ConnectFailure> {
    if !err.is_io() {
        return None;
    }
    let mut text = String::new();
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    let mut refused = false;
    let mut dns = false;
    while let Some(e) = next {
        refused |= e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
        dns |= e.downcast_ref::<ResolveDnsError>().is_some();
        text.push_str(&e.to_string().to_ascii_lowercase());
        text.push('\n');
        next = e.source();
    }
    if refused || text.contains("connection refused") {
        Some(ConnectFailure::Refused)
    } else if dns
        || text.contains("dns error")
        || text.contains("failed to lookup address")
        || text.contains("name or service not known")
    {
        Some(ConnectFailure::Dns)
    } else if ["certificate", "tls", "handshake", "corrupt message"]
        .iter()
        .any(|w| text.contains(w))
    {
        Some(ConnectFailure::Tls)
    } else if text.contains("client error (connect)") || text.contains("tcp connect error") {
        Some(ConnectFailure::Other)
    } else {
        None
    }
}

/// The innermost cause, which says it best ("Connection refused (os error 111)").
fn detail(err: &(dyn StdError + 'static)) -> String {
    super::errors::causes(err.to_string(), err.source())
        .pop()
        .unwrap_or_default()
}

/// Where the attempt went (scheme and authority), kept before it is sent: the request is
/// gone by the time the attempt has failed.
#[derive(Debug, Clone)]
struct TriedEndpoint(String);

impl Storable for TriedEndpoint {
    type Storer = StoreReplace<Self>;
}

fn scheme_and_authority(uri: &str) -> &str {
    match uri.find("://") {
        Some(at) => {
            let rest = &uri[at + 3..];
            rest.find('/').map_or(uri, |end| &uri[..at + 3 + end])
        }
        None => uri,
    }
}

/// Turns a failure to connect into an [`Unreachable`] that names the endpoint, and says on
/// the progress line that the call is being tried again.
#[derive(Clone)]
pub struct ReachInterceptor {
    region: String,
    explicit_endpoint: bool,
    notice: Option<Notice>,
    last_notice: Arc<Mutex<Option<Instant>>>,
}

impl fmt::Debug for ReachInterceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReachInterceptor")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl ReachInterceptor {
    pub fn new(region: &str, explicit_endpoint: bool, notice: Option<Notice>) -> Self {
        Self {
            region: region.to_owned(),
            explicit_endpoint,
            notice,
            last_notice: Arc::default(),
        }
    }

    fn say(&self, message: String) {
        let Some(notice) = &self.notice else {
            return;
        };
        let mut last = self.last_notice.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| at.elapsed() < NOTICE_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        drop(last);
        notice(message);
    }
}

impl Intercept for ReachInterceptor {
    fn name(&self) -> &'static str {
        "l5d-ecs unreachable endpoint"
    }

    fn read_before_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let uri = scheme_and_authority(context.request().uri()).to_owned();
        cfg.interceptor_state().store_put(TriedEndpoint(uri));
        Ok(())
    }

    fn modify_before_attempt_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let endpoint = cfg
            .load::<TriedEndpoint>()
            .map_or_else(|| "the AWS endpoint".to_owned(), |e| e.0.clone());
        let Some(result) = context.output_or_error_mut() else {
            return Ok(());
        };
        let Err(err) = result else {
            return Ok(());
        };
        let Some(connector) = err.as_connector_error() else {
            return Ok(());
        };
        if Unreachable::find(connector).is_some() {
            return Ok(());
        }
        let Some(failure) = connect_failure(connector) else {
            return Ok(());
        };
        let unreachable = Unreachable {
            endpoint,
            region: self.region.clone(),
            failure,
            explicit_endpoint: self.explicit_endpoint,
            detail: detail(connector),
        };
        let attempt = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        let attempts = cfg.load::<RetryConfig>().map_or(1, |r| r.max_attempts());
        if attempt < attempts {
            self.say(format!(
                "{unreachable}; trying again (attempt {attempt} of {attempts})"
            ));
        }
        *err = OrchestratorError::connector(ConnectorError::io(Box::new(unreachable)));
        Ok(())
    }
}

/// Tries a call that could not connect again after [`UNREACHABLE_RETRY_DELAY`], instead of
/// the exponential backoff meant for a service that is busy.
#[derive(Debug, Clone, Copy)]
pub struct UnreachableRetry;

impl ClassifyRetry for UnreachableRetry {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let unreachable = match ctx.output_or_error() {
            Some(Err(e)) => e
                .as_connector_error()
                .is_some_and(|c| Unreachable::find(c).is_some()),
            _ => false,
        };
        if unreachable {
            RetryAction::retryable_error_with_explicit_delay(
                ErrorKind::TransientError,
                UNREACHABLE_RETRY_DELAY,
            )
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "l5d-ecs unreachable endpoint"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}
