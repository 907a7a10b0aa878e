//! Harness for the l5d-ecs integration tests (one test binary, `tests/e2e`).
//!
//! Every test module does `use crate::support::*;` and gets:
//! - [`Moto`]: a `moto_server` behind the AWS rules layer on a free loopback port, found
//!   through `L5D_ECS_MOTO_SERVER` or `tests/awsrules/serve`. A missing moto PANICS: tests
//!   never skip themselves. `scripts/test` installs it.
//! - [`TestEnv`]: one server of a small pool ([`Lease`], `L5D_TEST_SERVERS` of them) held alone
//!   for the test, reset, with ECS task states pinned; SDK clients on it ([`Aws`]) and a [`Cli`]
//!   runner for the real binary with a clean environment (fake credentials, no route to the
//!   internet). Tests on different servers run in parallel; one that measures wall time takes
//!   the whole machine ([`Machine::alone`]).
//! - [`Proxy`]: an in-process counting/logging HTTP proxy in front of moto, to prove that a
//!   command made no AWS call (bad input) or no mutating call (idempotence), to check call
//!   order, and to inject faults moto cannot produce: scripted answers ([`Proxy::fail`],
//!   [`FaultResponse`] presets for refusals), lost responses ([`Proxy::drop_times`]), and
//!   seeded random throttling / bare 503s / lost responses plus latency ([`Chaos`]). Every
//!   call is logged with the fault it got ([`Call::fault`]).
//! - [`reliability`]: what the fault-injection suite checks with: an inventory of everything
//!   of the demo's kinds left in the region (orphans, duplicates), duplicate creates counted
//!   from the proxy's log, and the per-trial figures for `scripts/reliability-figures`.
//! - A stand-in ECS agent ([`Aws::register_container_instances`]) and read-back helpers
//!   ([`Snapshot`], [`RoleInfo`], ...) that look at AWS state through the SDK.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_ec2::config::{Credentials, Region};
use aws_smithy_types::DateTime;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub mod checks;
pub mod reliability;

// ---------------------------------------------------------------------------------------------
// Constants shared by the tests
// ---------------------------------------------------------------------------------------------

/// Region every test runs in (moto's default subnets exist in us-west-1a and us-west-1b).
pub const REGION: &str = "us-west-1";
/// moto's fixed account id.
pub const ACCOUNT_ID: &str = "123456789012";
/// The CIDR the issue's "Done when" passes to `up`.
pub const ALLOW_CIDR: &str = "203.0.113.7/32";
/// The tag every taggable resource of a stack carries.
pub const STACK_TAG: &str = "l5d-ecs:stack";
/// The default stack name.
pub const DEFAULT_STACK: &str = "l5d-demo";
/// The shared instance role (default of `--instance-role`).
pub const INSTANCE_ROLE: &str = "ecsInstanceRole";
/// The managed policy attached to a role l5d-ecs creates.
pub const ECS_MANAGED_POLICY_ARN: &str =
    "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role";
/// The SSM parameter naming the ECS-optimized Amazon Linux 2023 AMI.
pub const AMI_PARAMETER: &str =
    "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id";
/// tcp ports opened to each `--allow-cidr`.
pub const TCP_PORTS: [i32; 5] = [22, 4140, 9990, 3000, 8500];
/// An address nothing listens on: used for L5D_ECS_CHECKIP_URL and to prove an endpoint is
/// not used.
pub const DEAD_URL: &str = "http://127.0.0.1:1/";

/// Task definition family suffixes (family = `<stack>-<suffix>`).
pub const FAMILIES: [&str; 5] = [
    "linkerd",
    "linkerd-viz",
    "consul-agent",
    "consul-registrator",
    "hello-world",
];
/// DAEMON service suffixes (service name = family = `<stack>-<suffix>`).
pub const DAEMONS: [&str; 3] = ["linkerd", "consul-agent", "consul-registrator"];

/// Upper bound for one CLI run in the foreground.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(240);

// ---------------------------------------------------------------------------------------------
// moto
// ---------------------------------------------------------------------------------------------

/// The pin of moto in tests/awsrules/requirements.txt (`moto[server]==X.Y.Z`), the one place
/// its version is written.
pub fn moto_pin() -> &'static str {
    include_str!("../../awsrules/requirements.txt")
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("moto[server]=="))
        .expect("tests/awsrules/requirements.txt pins moto[server]")
}

/// A `moto_server` child process on 127.0.0.1.
///
/// The server is started through a tiny `sh` wrapper whose stdin is a pipe held by this
/// process: when the test binary exits for any reason (also on abort, and also for the
/// `'static` servers of the pool, whose `Drop` never runs) the pipe closes, the wrapper's `read`
/// returns and it kills moto. `Drop` closes the pipe explicitly and reaps the wrapper.
pub struct Moto {
    url: String,
    port: u16,
    child: Mutex<Option<Child>>,
    /// True while the server holds nothing a test left behind that [`TestEnv::reusing`]
    /// would not see: a new server, or one that since its last reset served only such tests.
    /// Cleared by [`TestEnv::new`] (whose test may do anything), by [`Moto::configure`] and by
    /// a test that failed.
    pub(crate) reusable: AtomicBool,
}

/// The environment variable naming the moto_server executable.
pub const MOTO_ENV: &str = "L5D_ECS_MOTO_SERVER";

const MOTO_WRAPPER: &str = r#"
"$1" -H 127.0.0.1 -p "$2" >"$3" 2>&1 </dev/null &
pid=$!
read -r _ignored || true
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exit 0
"#;

impl Moto {
    /// Path of the moto_server executable; panics with instructions when it is missing.
    pub fn executable() -> PathBuf {
        let path = match std::env::var_os(MOTO_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/awsrules/serve"),
        };
        // tests/awsrules/serve runs on this Python (see there).
        let python = match std::env::var_os("L5D_RULES_PYTHON") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
        };
        if !path.is_file() || !python.is_file() {
            panic!(
                "the AWS rules server (moto behind AWS's rules) {} or its Python {} is missing.\n\
                 The integration tests need {} in .venv (tests/awsrules/requirements.txt). Run \
                 the project's test command `scripts/test` (it creates .venv and installs moto), \
                 or set {MOTO_ENV} to tests/awsrules/serve. Tests are never skipped.",
                path.display(),
                python.display(),
                moto_pin()
            );
        }
        path
    }

    /// Starts a fresh moto server and waits (bounded) until it answers HTTP.
    pub fn start() -> Moto {
        Self::start_with(&[])
    }

    /// As [`Moto::start`], with more environment for moto (e.g. `INITIAL_NO_AUTH_ACTION_COUNT`,
    /// which makes it check every call against the caller's IAM policies).
    pub fn start_with(extra_env: &[(&str, &str)]) -> Moto {
        let exe = Self::executable();
        let log_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(&log_dir).expect("create CARGO_TARGET_TMPDIR");
        let crate_name = module_path!().split("::").next().unwrap_or("tests");
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let log = log_dir.join(format!("moto-{crate_name}-{port}.log"));
            let mut cmd = Command::new("sh");
            cmd.arg("-c")
                .arg(MOTO_WRAPPER)
                .arg("moto-wrapper")
                .arg(&exe)
                .arg(port.to_string())
                .arg(&log)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", std::env::temp_dir())
                .env("LANG", "C.UTF-8")
                // Closer to real AWS: AWS managed policies exist (AmazonEC2ContainerServiceforEC2Role),
                // unknown AMIs / key pairs / instance types are refused.
                .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
                .env("MOTO_ENABLE_AMI_VALIDATION", "true")
                .env("MOTO_ENABLE_KEYPAIR_VALIDATION", "true")
                .env("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Some(tmp) = std::env::var_os("TMPDIR") {
                cmd.env("TMPDIR", tmp);
            }
            for (key, value) in extra_env {
                cmd.env(key, value);
            }
            let mut child = cmd.spawn().expect("spawn sh wrapper for moto_server");
            let moto = Moto {
                url: format!("http://127.0.0.1:{port}"),
                port,
                child: Mutex::new(None),
                reusable: AtomicBool::new(true),
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut delay = Duration::from_millis(20);
            loop {
                if let Ok((status, _)) = http_call(port, "GET", "/_rules/config", "") {
                    // 200 from the control API: moto is up, and behind the rules layer.
                    if status == 200 {
                        *moto.child.lock().unwrap() = Some(child);
                        return moto;
                    }
                }
                // The wrapper keeps running while moto is dead, so look at the log too.
                let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                if matches!(child.try_wait(), Ok(Some(_)))
                    || log_text.contains("Address already in use")
                    || Instant::now() >= deadline
                {
                    last_error = format!(
                        "moto_server on port {port} did not answer (log {}):\n{log_text}",
                        log.display()
                    );
                    drop(child.stdin.take());
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(200));
            }
        }
        panic!(
            "could not start moto_server {}: {last_error}",
            exe.display()
        );
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The AWS rules the calls so far have broken (each a JSON object naming its `rule`,
    /// `operation`, `message` and `reference`), and forgets them.
    pub fn take_violations(&self) -> Vec<serde_json::Value> {
        let (status, body) = http_call(self.port, "POST", "/_rules/violations/clear", "")
            .unwrap_or_else(|e| panic!("reading the AWS rules violations failed: {e}"));
        assert_eq!(status, 200, "rules server answered {status}: {body}");
        let doc: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("rules server violations are not JSON ({e}): {body}"));
        doc["violations"].as_array().cloned().unwrap_or_default()
    }

    /// Settings of the rules server's account behaviour (`delays` in seconds,
    /// `daemon_faults`), merged into what is in force; a reset restores the defaults.
    pub fn configure(&self, settings: serde_json::Value) {
        self.reusable.store(false, Ordering::SeqCst);
        let (status, body) = http_call(self.port, "POST", "/_rules/config", &settings.to_string())
            .unwrap_or_else(|e| panic!("configuring the AWS rules server failed: {e}"));
        assert_eq!(status, 200, "rules server answered {status}: {body}");
    }

    /// What the rules server's account behaviour did (refusals while AWS is eventually
    /// consistent, replayed idempotent calls), oldest first.
    pub fn world_events(&self) -> Vec<serde_json::Value> {
        let (status, body) = http_call(self.port, "GET", "/_rules/events", "")
            .unwrap_or_else(|e| panic!("reading the rules server events failed: {e}"));
        assert_eq!(status, 200, "rules server answered {status}: {body}");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        doc["events"].as_array().cloned().unwrap_or_default()
    }

    /// `POST /moto-api/reset`: forget every resource in every region.
    pub fn reset(&self) {
        let (status, body) = http_call(self.port, "POST", "/moto-api/reset", "")
            .unwrap_or_else(|e| panic!("moto reset failed: {e}"));
        assert_eq!(status, 200, "moto reset answered {status}: {body}");
    }

    /// Stops moto from moving ECS tasks on by one state at every describe_tasks.
    pub fn pin_task_states(&self) {
        let body =
            r#"{"model_name":"ecs::task","transition":{"progression":"manual","times":1000000}}"#;
        let (status, text) = http_call(
            self.port,
            "POST",
            "/moto-api/state-manager/set-transition",
            body,
        )
        .unwrap_or_else(|e| panic!("moto set-transition failed: {e}"));
        assert!(
            (200..300).contains(&status),
            "moto set-transition answered {status}: {text}"
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.child.lock() {
            if let Some(mut child) = guard.take() {
                drop(child.stdin.take()); // the wrapper kills moto on EOF
                let _ = child.wait();
            }
        }
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// A minimal blocking HTTP/1.1 client for moto's own API: one request per connection.
/// Returns the status code and the body.
pub fn http_call(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = StdTcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:.200}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Polls `look` (10 ms, doubling to 200 ms) until it gives something, for at most a minute.
pub async fn until<T, F, Fut>(what: &str, mut look: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(found) = look().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------------
// SDK clients
// ---------------------------------------------------------------------------------------------

/// SDK clients pointed at one endpoint (moto, or a proxy), fake credentials.
#[derive(Clone)]
pub struct Aws {
    pub ec2: aws_sdk_ec2::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub iam: aws_sdk_iam::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub sts: aws_sdk_sts::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Aws {
    pub async fn connect(endpoint: &str, region: &str) -> Aws {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .load()
            .await;
        Aws::from_config(&config)
    }

    /// Clients signing with the given access key (an IAM user of this moto).
    pub async fn connect_as(endpoint: &str, region: &str, key: &str, secret: &str) -> Aws {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new(key, secret, None, None, "test"))
            .load()
            .await;
        Aws::from_config(&config)
    }

    /// The pending and running instances tagged `l5d-ecs:stack=<stack>`.
    pub async fn running_instances(&self, stack: &str) -> Vec<aws_sdk_ec2::types::Instance> {
        let out = self
            .ec2
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name(format!("tag:{STACK_TAG}"))
                    .values(stack)
                    .build(),
            )
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("instance-state-name")
                    .values("pending")
                    .values("running")
                    .build(),
            )
            .send()
            .await
            .expect("describe the stack's instances");
        out.reservations()
            .iter()
            .flat_map(|r| r.instances().iter().cloned())
            .collect()
    }

    /// Every client from one loaded SDK configuration.
    pub fn from_config(config: &aws_config::SdkConfig) -> Aws {
        Aws {
            ec2: aws_sdk_ec2::Client::new(config),
            ecs: aws_sdk_ecs::Client::new(config),
            iam: aws_sdk_iam::Client::new(config),
            autoscaling: aws_sdk_autoscaling::Client::new(config),
            ssm: aws_sdk_ssm::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(config)
                    .force_path_style(true)
                    .build(),
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Per-test environment
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// The pool of rules servers, and the machine
// ---------------------------------------------------------------------------------------------
//
// Every test of the binary runs on one of cargo's test threads. A test that talks to AWS holds
// one rules server of a small pool for its whole run ([`Lease`]), so tests on different servers
// run side by side and never see each other's resources. A test whose figures are measured in
// wall time ([`Machine::alone`], [`TestEnv::alone`]) waits until no other such test runs and
// keeps the others waiting while it runs: the machine is then its own.

/// The environment variable with the number of rules servers the tests share at most.
pub const SERVERS_ENV: &str = "L5D_TEST_SERVERS";

/// How many servers the pool has: `L5D_TEST_SERVERS`, else as many as tests run at once
/// (cargo's test threads: `--test-threads`, `RUST_TEST_THREADS`, else one per core), and at
/// least two. Each is a moto process (one Python core at most, ~0.5 GB) started on first
/// use, so a server more than tests run at once would only ever serve the harness's own
/// two-lease test.
pub fn servers_wanted() -> usize {
    match std::env::var(SERVERS_ENV) {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => panic!("{SERVERS_ENV}={v:?} is not a positive number of servers"),
        },
        _ => test_threads().max(2),
    }
}

/// The number of tests libtest runs at once, found as libtest finds it.
fn test_threads() -> usize {
    let args: Vec<String> = std::env::args().collect();
    let flag = args
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--test-threads") {
            Some(rest) if rest.starts_with('=') => Some(rest[1..].to_string()),
            Some("") => args.get(i + 1).cloned(),
            _ => None,
        });
    flag.or_else(|| std::env::var("RUST_TEST_THREADS").ok())
        .and_then(|n| n.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

struct Pool {
    /// Each started on first lease, then kept for the life of the test binary (the wrapper
    /// of [`Moto`] stops it when the binary exits).
    servers: Vec<OnceLock<Moto>>,
    /// Indexes of the servers nobody holds.
    free: Mutex<Vec<usize>>,
    /// Which servers are leased: a check that no server is ever handed to two tests.
    leased: Vec<AtomicBool>,
    /// One permit per server: waiting for a permit is waiting for a free server.
    permits: tokio::sync::Semaphore,
    /// Servers start one at a time: a port [`free_port`] found is then never given to two.
    starting: Mutex<()>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let n = servers_wanted();
        Pool {
            servers: (0..n).map(|_| OnceLock::new()).collect(),
            free: Mutex::new((0..n).collect()),
            leased: (0..n).map(|_| AtomicBool::new(false)).collect(),
            permits: tokio::sync::Semaphore::new(n),
            starting: Mutex::new(()),
        }
    })
}

/// One server of the pool, held alone until dropped.
pub struct Lease {
    index: usize,
    _permit: tokio::sync::SemaphorePermit<'static>,
}

impl Lease {
    /// Waits for a free server, started ones first; starts it if it never ran.
    pub async fn take() -> (Lease, &'static Moto) {
        let pool = pool();
        let permit = pool
            .permits
            .acquire()
            .await
            .expect("the pool is never closed");
        let index = {
            let mut free = pool.free.lock().unwrap_or_else(PoisonError::into_inner);
            // The lowest index: servers are started in index order, so this reuses one.
            let at = (0..free.len())
                .min_by_key(|&i| free[i])
                .expect("a permit means a free server");
            free.swap_remove(at)
        };
        assert!(
            !pool.leased[index].swap(true, Ordering::SeqCst),
            "server {index} of the pool handed out twice"
        );
        // Built before the server starts, so that a failed start gives the index back.
        let lease = Lease {
            index,
            _permit: permit,
        };
        let moto = pool.servers[index].get_or_init(|| {
            let _one_at_a_time = pool.starting.lock().unwrap_or_else(PoisonError::into_inner);
            Moto::start()
        });
        (lease, moto)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        pool().leased[self.index].store(false, Ordering::SeqCst);
        pool()
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.index);
    }
}

static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A test's share of the machine: shared with the other tests, or the whole of it.
pub struct Machine {
    _shared: Option<tokio::sync::RwLockReadGuard<'static, ()>>,
    _alone: Option<tokio::sync::RwLockWriteGuard<'static, ()>>,
}

impl Machine {
    /// Runs beside the other tests (waits while one runs [`Machine::alone`]).
    pub async fn shared() -> Machine {
        Machine {
            _shared: Some(MACHINE.read().await),
            _alone: None,
        }
    }

    /// Waits until no other test holds the machine, and keeps the others waiting until
    /// dropped: for a test that measures wall time. (The lock is fair: a test waiting for the
    /// machine lets no newer test start before it.)
    pub async fn alone() -> Machine {
        Machine {
            _shared: None,
            _alone: Some(MACHINE.write().await),
        }
    }
}

/// What one test needs: one server of the pool for itself (reset), SDK clients on it, and a
/// scratch directory that is the CLI's working directory (so the default state file lands in
/// `<dir>/.l5d-ecs/<stack>.json`) and its HOME.
pub struct TestEnv {
    pub moto: &'static Moto,
    pub aws: Aws,
    pub dir: tempfile::TempDir,
    _lease: Lease,
    _machine: Machine,
}

impl TestEnv {
    /// A freshly reset server, the machine shared with other tests.
    pub async fn new() -> TestEnv {
        TestEnv::fresh(Machine::shared().await).await
    }

    /// A freshly reset server, and the machine to itself ([`Machine::alone`]): for a test
    /// whose delays would not hold on a busy machine.
    pub async fn alone() -> TestEnv {
        TestEnv::fresh(Machine::alone().await).await
    }

    async fn fresh(machine: Machine) -> TestEnv {
        let (lease, moto) = Lease::take().await;
        moto.reset();
        moto.reusable.store(false, Ordering::SeqCst);
        moto.pin_task_states();
        TestEnv::on(moto, lease, machine).await
    }

    /// The environment of a test on `moto` (reset or found clean by the caller).
    async fn on(moto: &'static Moto, lease: Lease, machine: Machine) -> TestEnv {
        let aws = Aws::connect(moto.url(), REGION).await;
        let dir = tempfile::Builder::new()
            .prefix("l5d-ecs-test-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("home")).expect("create home");
        TestEnv {
            moto,
            aws,
            dir,
            _lease: lease,
            _machine: machine,
        }
    }

    /// Working directory of every CLI run of this test.
    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Default state file of `stack` (relative to the working directory).
    pub fn state_path(&self, stack: &str) -> PathBuf {
        self.dir
            .path()
            .join(".l5d-ecs")
            .join(format!("{stack}.json"))
    }

    /// The binary with a clean environment, talking to moto through AWS_ENDPOINT_URL.
    pub fn cli(&self) -> Cli {
        Cli::new(self.dir.path(), self.moto.url())
    }

    /// The binary with AWS_ENDPOINT_URL pointing at `proxy`.
    pub fn cli_via(&self, proxy: &Proxy) -> Cli {
        Cli::new(self.dir.path(), &proxy.url())
    }

    /// The binary with `--endpoint-url <proxy>` on the command line and AWS_ENDPOINT_URL
    /// pointing at a dead address: every call must honour the flag and pass the proxy.
    /// (The flag goes first, before the subcommand; global flags are valid anywhere.)
    pub fn cli_with_endpoint_flag(&self, proxy: &Proxy) -> Cli {
        Cli::new(self.dir.path(), DEAD_URL)
            .arg("--endpoint-url")
            .arg(proxy.url())
    }

    /// A counting proxy in front of this test's moto.
    pub async fn proxy(&self) -> Proxy {
        Proxy::start(self.moto.url()).await
    }

    /// Runs `cli` to its end while playing the ECS agent (moto has none; the rules layer plays
    /// the DAEMON scheduler): every running node of the default stack is registered as a
    /// container instance as soon as the cluster exists. Kills the run and panics after
    /// `limit`. Returns the output and the EC2 ids registered.
    pub async fn run_as_agent(&self, cli: Cli, limit: Duration) -> (Output, BTreeSet<String>) {
        let mut run = cli.spawn();
        let deadline = Instant::now() + limit;
        let mut joined = BTreeSet::new();
        while !run.has_exited() {
            if Instant::now() >= deadline {
                let out = run.kill().await;
                panic!("still running after {limit:?} while the nodes joined\n{out}");
            }
            if self.aws.cluster_active(DEFAULT_STACK).await {
                joined.extend(self.aws.register_container_instances(DEFAULT_STACK).await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (run.finish(Duration::from_secs(10)).await, joined)
    }

    /// SDK clients for another region of the same moto.
    pub async fn aws_in(&self, region: &str) -> Aws {
        Aws::connect(self.moto.url(), region).await
    }
}

/// A call that AWS would have refused fails the test that made it, naming the rule, even
/// when the tool coped with the refusal.
impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the failed test left (violations too) must not meet the next one.
            self.moto.reusable.store(false, Ordering::SeqCst);
            return;
        }
        let violations = self.moto.take_violations();
        if !violations.is_empty() {
            let lines: Vec<String> = violations
                .iter()
                .map(|v| {
                    format!(
                        "- rule {} broken by {}:{}: {} ({})",
                        v["rule"].as_str().unwrap_or("?"),
                        v["service"].as_str().unwrap_or("?"),
                        v["operation"].as_str().unwrap_or("?"),
                        v["message"].as_str().unwrap_or(""),
                        v["reference"].as_str().unwrap_or(""),
                    )
                })
                .collect();
            panic!(
                "{} call(s) in this test broke AWS rules that real AWS enforces (see \
                 docs/aws-rules.md):\n{}",
                violations.len(),
                lines.join("\n")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------------

/// Path of the binary under test.
pub fn bin_path() -> &'static str {
    env!("CARGO_BIN_EXE_l5d-ecs")
}

/// A run of the real `l5d-ecs` binary with a clean environment.
#[derive(Clone, Debug)]
pub struct Cli {
    args: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: PathBuf,
}

impl Cli {
    /// env_clear() plus: PATH, HOME=<dir>/home, fake credentials, AWS_REGION, AWS_ENDPOINT_URL,
    /// no instance metadata lookups, and a checkip URL nobody answers.
    pub fn new(dir: &Path, endpoint: &str) -> Cli {
        let mut env = BTreeMap::new();
        env.insert(
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        );
        env.insert(
            "HOME".to_string(),
            dir.join("home").to_string_lossy().into_owned(),
        );
        env.insert("AWS_ACCESS_KEY_ID".into(), "test".into());
        env.insert("AWS_SECRET_ACCESS_KEY".into(), "test".into());
        env.insert("AWS_REGION".into(), REGION.into());
        env.insert("AWS_ENDPOINT_URL".into(), endpoint.into());
        env.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
        env.insert("L5D_ECS_CHECKIP_URL".into(), DEAD_URL.into());
        env.insert("RUST_BACKTRACE".into(), "1".into());
        // A call the operation list (and so `iam-policy`) does not grant the command fails.
        env.insert("L5D_ECS_STRICT_OPERATIONS".into(), "1".into());
        Cli {
            args: Vec::new(),
            env,
            cwd: dir.to_path_buf(),
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Cli {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cli
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Cli {
        self.env.insert(key.to_string(), value.into());
        self
    }

    /// `program` with this run's environment and directory, its output piped.
    fn command(&self, program: &str, stdin: Stdio) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        cmd.env_clear()
            .envs(&self.env)
            .current_dir(&self.cwd)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Starts the binary in the background (stdin is /dev/null: not a terminal).
    pub fn spawn(self) -> Running {
        let mut cmd = self.command(bin_path(), Stdio::null());
        cmd.args(&self.args);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} {:?}: {e}", bin_path(), self.args));
        Running::of(child, self.args)
    }

    /// Runs the binary to completion (bounded by [`CLI_TIMEOUT`]).
    pub async fn run(self) -> Output {
        self.spawn().finish(CLI_TIMEOUT).await
    }

    /// Runs the binary on a pseudo-terminal (util-linux `script`), typing `input`: what a
    /// person at a terminal sees, stdout and stderr together, in `stdout`.
    pub async fn run_on_terminal(self, input: &str) -> Output {
        let quoted: Vec<String> = std::iter::once(bin_path().to_owned())
            .chain(self.args.iter().cloned())
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect();
        let mut cmd = self.command("script", Stdio::piped());
        cmd.args(["-qec", &quoted.join(" "), "/dev/null"]);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("script (util-linux) is needed to run on a terminal: {e}"));
        let mut stdin = child.stdin.take().expect("stdin pipe");
        stdin
            .write_all(input.as_bytes())
            .await
            .expect("type the input");
        drop(stdin);
        Running::of(child, self.args).finish(CLI_TIMEOUT).await
    }
}

fn drain<R: AsyncRead + Unpin + Send + 'static>(mut pipe: R) -> tokio::task::JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf).await;
        buf
    })
}

/// A binary running in the background.
pub struct Running {
    child: tokio::process::Child,
    stdout: tokio::task::JoinHandle<Vec<u8>>,
    stderr: tokio::task::JoinHandle<Vec<u8>>,
    args: Vec<String>,
}

impl Running {
    fn of(mut child: tokio::process::Child, args: Vec<String>) -> Running {
        let stdout = drain(child.stdout.take().expect("stdout pipe"));
        let stderr = drain(child.stderr.take().expect("stderr pipe"));
        Running {
            child,
            stdout,
            stderr,
            args,
        }
    }

    /// The process id (None once it has been reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// True once the process has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for the exit (at most `timeout`; then kills it and panics with its output).
    pub async fn finish(mut self, timeout: Duration) -> Output {
        let waited = tokio::time::timeout(timeout, self.child.wait()).await;
        let code = match waited {
            Ok(status) => status.expect("wait for l5d-ecs").code(),
            Err(_) => {
                let _ = self.child.kill().await;
                let out = self.collect(None).await;
                panic!("l5d-ecs did not exit within {timeout:?}\n{out}");
            }
        };
        self.collect(code).await
    }

    /// Kills the process and returns what it printed.
    pub async fn kill(mut self) -> Output {
        let _ = self.child.kill().await;
        self.collect(None).await
    }

    async fn collect(self, code: Option<i32>) -> Output {
        let stdout = self.stdout.await.unwrap_or_default();
        let stderr = self.stderr.await.unwrap_or_default();
        Output {
            args: self.args,
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// Exit code and output of one run.
#[derive(Clone, Debug)]
pub struct Output {
    pub args: Vec<String>,
    /// None when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "$ l5d-ecs {}", self.args.join(" "))?;
        writeln!(f, "exit code: {:?}", self.code)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

impl Output {
    /// Panics (printing both streams) unless the exit code is 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Output {
        self.assert_code(0)
    }

    /// Panics (printing both streams) unless the exit code is `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Output {
        assert_eq!(self.code, Some(code), "expected exit code {code}\n{self}");
        self
    }

    /// stdout parsed as exactly one JSON document (panics otherwise).
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not exactly one JSON document: {e}\n{self}"))
    }

    /// stdout and stderr, lowercased, for loose message checks.
    pub fn all_lower(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr).to_lowercase()
    }
}

// ---------------------------------------------------------------------------------------------
// Counting proxy
// ---------------------------------------------------------------------------------------------
//
// A minimal HTTP/1.1 forwarder over tokio TcpStream, written here rather than pulling hyper in
// as a dev-dependency: the SDK sends small POSTs with Content-Length (chunked bodies are
// decoded too) and moto answers with Content-Length and `Connection: close`. The proxy reads
// one request per client connection, records (service, operation), forwards it upstream with
// `Connection: close`, reads the whole response and passes it back with `Connection: close`,
// so the SDK opens a fresh connection for every call.
//
// Fault injection, in this order for every request:
// 1. a scripted fault for its operation ([`Proxy::fail`], [`Proxy::fail_times`],
//    [`Proxy::drop_times`]);
// 2. else the seeded random faults of [`Chaos`]: a protocol-specific throttling error or a
//    bare 503 instead of forwarding, or forwarding and then closing the connection without an
//    answer (the server acted, the client sees a transport error);
// 3. the [`Chaos`] latency, added after the upstream answered and before the client gets it
//    (so a client killed meanwhile has had its call carried out).
// Every call is logged with what was done to it ([`Call::fault`]).

/// What the proxy did to one call instead of (or besides) plainly forwarding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Injected {
    /// Answered with the protocol's throttling error (EC2 `RequestLimitExceeded` 503, query
    /// `Throttling` 400, JSON `ThrottlingException` 400); not forwarded.
    Throttle,
    /// Answered with a bare HTTP 503 (no AWS error body); not forwarded.
    Unavailable,
    /// Forwarded, then the connection was closed without an answer.
    Drop,
    /// Answered with a scripted response ([`Proxy::fail`] / [`Proxy::fail_times`]); not
    /// forwarded.
    Scripted,
}

impl Injected {
    /// Short lower-case name, as in the figures.
    pub fn name(self) -> &'static str {
        match self {
            Injected::Throttle => "throttle",
            Injected::Unavailable => "unavailable",
            Injected::Drop => "drop",
            Injected::Scripted => "scripted",
        }
    }
}

/// One call seen by the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Signing name from the SigV4 credential scope: ec2, ecs, iam, autoscaling, ssm, sts, ...
    pub service: String,
    /// Operation: `X-Amz-Target` suffix (JSON protocols), `Action=` (query protocols).
    pub operation: String,
    /// HTTP status returned to the client (0 when the response was dropped).
    pub status: u16,
    /// Request body (form or JSON), for closer checks.
    pub body: String,
    /// The fault injected into this call, if any.
    pub fault: Option<Injected>,
    /// What moto answered, when the call was forwarded (also when the answer was then
    /// dropped): the call was carried out if this is 2xx.
    pub upstream_status: Option<u16>,
}

/// Seeded random faults and latency for every call through a [`Proxy`].
///
/// Each decision is a pure function of (seed, service, operation, how many calls of that
/// operation came before), so a run with the same seed sees the same faults; only the order of
/// concurrent calls of one operation can move a fault from one of them to another.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chaos {
    pub seed: u64,
    /// Share of calls answered with the protocol's throttling error.
    pub throttle: f64,
    /// Share of calls answered with a bare HTTP 503.
    pub unavailable: f64,
    /// Share of calls forwarded and then left without an answer.
    pub drop: f64,
    /// Latency added to every call, uniform between the two bounds.
    pub latency: Option<(Duration, Duration)>,
}

impl Chaos {
    /// No faults, only latency between `min_ms` and `max_ms` per call.
    pub fn latency_ms(seed: u64, min_ms: u64, max_ms: u64) -> Chaos {
        Chaos {
            seed,
            latency: Some((Duration::from_millis(min_ms), Duration::from_millis(max_ms))),
            ..Chaos::default()
        }
    }

    /// The fault for the `nth` call (0-based) of `service`/`operation`, and its latency.
    pub fn decide(&self, service: &str, operation: &str, nth: u64) -> (Option<Injected>, Duration) {
        let key = format!("{service}:{operation}:{nth}");
        let mut rng = SplitMix64::new(self.seed ^ fnv1a(key.as_bytes()));
        let roll = rng.next_f64();
        let fault = if roll < self.throttle {
            Some(Injected::Throttle)
        } else if roll < self.throttle + self.unavailable {
            Some(Injected::Unavailable)
        } else if roll < self.throttle + self.unavailable + self.drop {
            Some(Injected::Drop)
        } else {
            None
        };
        let latency = match self.latency {
            Some((lo, hi)) if hi > lo => lo + (hi - lo).mul_f64(rng.next_f64()),
            Some((lo, _)) => lo,
            None => Duration::ZERO,
        };
        (fault, latency)
    }
}

/// A small seeded PRNG (SplitMix64), enough for reproducible fault decisions.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// FNV-1a, to turn names into seed material.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[derive(Clone, Debug)]
struct Fault {
    operation: String,
    remaining: Option<usize>,
    /// Forward the call, then close the connection without answering.
    drop: bool,
    status: u16,
    content_type: String,
    body: String,
}

struct ProxyShared {
    upstream: SocketAddr,
    calls: Mutex<Vec<Call>>,
    faults: Mutex<Vec<Fault>>,
    chaos: Mutex<Option<Chaos>>,
    /// Calls per (service, operation) so far, for the chaos decisions.
    occurrences: Mutex<BTreeMap<(String, String), u64>>,
    /// Requests received (counted on arrival, before any forwarding).
    arrivals: tokio::sync::watch::Sender<usize>,
    /// Requests received and not finished yet.
    in_flight: tokio::sync::watch::Sender<usize>,
    /// Per operation: (calls in flight now, the most ever in flight at once).
    in_flight_by_operation: Mutex<BTreeMap<String, (usize, usize)>>,
}

/// Counting/logging (and optionally fault-injecting) proxy in front of moto.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    task: tokio::task::JoinHandle<()>,
}

/// Operations that change state (by name prefix).
pub fn is_mutating(operation: &str) -> bool {
    const PREFIXES: [&str; 29] = [
        "Create",
        "Run",
        "Put",
        "Register",
        "Authorize",
        "Attach",
        "Add",
        "Update",
        "Delete",
        "Deregister",
        "Terminate",
        "Tag",
        "Untag",
        "Modify",
        "Set",
        "Start",
        "Stop",
        "Revoke",
        "Remove",
        "Detach",
        "Replace",
        "Associate",
        "Disassociate",
        "Reboot",
        "Enable",
        "Disable",
        "Suspend",
        "Resume",
        "Deactivate",
    ];
    PREFIXES.iter().any(|p| operation.starts_with(p))
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> Proxy {
        let hostport = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let upstream: SocketAddr = hostport
            .parse()
            .unwrap_or_else(|e| panic!("proxy upstream {hostport}: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(ProxyShared {
            upstream,
            calls: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            chaos: Mutex::new(None),
            occurrences: Mutex::new(BTreeMap::new()),
            arrivals: tokio::sync::watch::channel(0).0,
            in_flight: tokio::sync::watch::channel(0).0,
            in_flight_by_operation: Mutex::new(BTreeMap::new()),
        });
        let accept_shared = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let shared = accept_shared.clone();
                tokio::spawn(async move {
                    if let Err(e) = proxy_one(conn, &shared).await {
                        eprintln!("[proxy] connection error: {e}");
                    }
                });
            }
        });
        Proxy { addr, shared, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// `service:Operation` of every call so far, for messages.
    pub fn call_names(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|c| format!("{}:{}", c.service, c.operation))
            .collect()
    }

    /// Calls whose operation changes state (see [`is_mutating`]).
    pub fn mutating_calls(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| is_mutating(&c.operation))
            .collect()
    }

    /// How many calls of `operation` so far.
    pub fn count(&self, operation: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.operation == operation)
            .count()
    }

    /// Position of the first / last call of `operation` (None if never called).
    pub fn first_index(&self, operation: &str) -> Option<usize> {
        self.calls().iter().position(|c| c.operation == operation)
    }

    pub fn last_index(&self, operation: &str) -> Option<usize> {
        self.calls().iter().rposition(|c| c.operation == operation)
    }

    /// Forgets the recorded calls.
    pub fn clear(&self) {
        self.shared.calls.lock().unwrap().clear();
    }

    /// Turns on seeded random faults and latency for every later call (replacing earlier
    /// settings; the per-operation counters restart).
    pub fn set_chaos(&self, chaos: Chaos) {
        *self.shared.chaos.lock().unwrap() = Some(chaos);
        self.shared.occurrences.lock().unwrap().clear();
    }

    /// Back to plain forwarding (scripted faults stay).
    pub fn clear_chaos(&self) {
        *self.shared.chaos.lock().unwrap() = None;
    }

    /// Forwards the next `times` calls of `operation` and then closes the connection without
    /// answering: the server acted, the client sees a transport error.
    pub fn drop_times(&self, operation: &str, times: usize) {
        self.shared.faults.lock().unwrap().push(Fault {
            operation: operation.to_string(),
            remaining: Some(times),
            drop: true,
            status: 0,
            content_type: String::new(),
            body: String::new(),
        });
    }

    /// Requests received so far (counted on arrival; [`Proxy::clear`] does not reset it).
    pub fn requests_seen(&self) -> usize {
        *self.shared.arrivals.borrow()
    }

    /// Waits until at least `n` requests have arrived in total. False if `timeout` passed
    /// first.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.shared.arrivals.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|seen| *seen >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The most calls of `operation` that were in flight at once.
    pub fn peak_in_flight(&self, operation: &str) -> usize {
        self.shared
            .in_flight_by_operation
            .lock()
            .unwrap()
            .get(operation)
            .map_or(0, |(_, peak)| *peak)
    }

    /// Waits until no request is being handled (a killed client's calls run to their end
    /// upstream, as they would in AWS). Panics after `timeout`.
    pub async fn wait_idle(&self, timeout: Duration) {
        let mut rx = self.shared.in_flight.subscribe();
        let idle = tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0)).await;
        assert!(
            idle.is_ok_and(|r| r.is_ok()),
            "proxy still handling {} request(s) after {timeout:?}",
            *self.shared.in_flight.borrow()
        );
    }

    /// How many calls got each kind of fault.
    pub fn fault_counts(&self) -> BTreeMap<Injected, usize> {
        let mut counts = BTreeMap::new();
        for call in self.calls() {
            if let Some(f) = call.fault {
                *counts.entry(f).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Calls that got a fault: `service:Operation fault`.
    pub fn faulted_calls(&self) -> Vec<String> {
        self.calls()
            .iter()
            .filter_map(|c| {
                c.fault
                    .map(|f| format!("{}:{} {}", c.service, c.operation, f.name()))
            })
            .collect()
    }

    /// Every call, one line each (`service:Operation status [fault]`), for failure messages.
    pub fn log(&self) -> String {
        self.calls()
            .iter()
            .map(|c| {
                format!(
                    "{}:{} {}{}",
                    c.service,
                    c.operation,
                    c.status,
                    c.fault
                        .map(|f| format!(" [{}]", f.name()))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Answers every call of `operation` with the given response instead of forwarding it.
    pub fn fail(&self, operation: &str, response: FaultResponse) {
        self.add_fault(operation, None, response);
    }

    /// Answers the next `times` calls of `operation` with the response, then forwards again.
    pub fn fail_times(&self, operation: &str, times: usize, response: FaultResponse) {
        self.add_fault(operation, Some(times), response);
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().unwrap().clear();
    }

    fn add_fault(&self, operation: &str, remaining: Option<usize>, response: FaultResponse) {
        self.shared.faults.lock().unwrap().push(Fault {
            operation: operation.to_string(),
            remaining,
            drop: false,
            status: response.status,
            content_type: response.content_type,
            body: response.body,
        });
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A canned error response for [`Proxy::fail`].
#[derive(Clone, Debug)]
pub struct FaultResponse {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl FaultResponse {
    /// EC2 (ec2 query protocol) error.
    pub fn ec2(status: u16, code: &str, message: &str) -> FaultResponse {
        FaultResponse {
            status,
            content_type: "text/xml;charset=UTF-8".into(),
            body: format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
                 <Message>{message}</Message></Error></Errors><RequestID>fault-injected</RequestID></Response>"
            ),
        }
    }

    /// awsQuery protocol error (AutoScaling, IAM, STS).
    pub fn query(status: u16, code: &str, message: &str) -> FaultResponse {
        FaultResponse {
            status,
            content_type: "text/xml".into(),
            body: format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>\
                 </Error><RequestId>fault-injected</RequestId></ErrorResponse>"
            ),
        }
    }

    /// awsJson1.1 protocol error (ECS).
    pub fn json(status: u16, code: &str, message: &str) -> FaultResponse {
        FaultResponse {
            status,
            content_type: "application/x-amz-json-1.1".into(),
            body: serde_json::json!({ "__type": code, "message": message }).to_string(),
        }
    }

    /// A bare HTTP 503 without an AWS error body.
    pub fn unavailable() -> FaultResponse {
        FaultResponse {
            status: 503,
            content_type: "text/plain".into(),
            body: "Service Unavailable".into(),
        }
    }

    /// The throttling error of the protocol `request` uses: EC2 `RequestLimitExceeded` (503),
    /// awsQuery `Throttling` (400), awsJson `ThrottlingException` (400); a bare 503 for
    /// anything else.
    fn throttling_for(service: &str, content_type: Option<&str>) -> FaultResponse {
        let ct = content_type.unwrap_or_default().to_ascii_lowercase();
        if ct.starts_with("application/x-amz-json") {
            FaultResponse::json(400, "ThrottlingException", "Rate exceeded")
        } else if ct.starts_with("application/x-www-form-urlencoded") && service == "ec2" {
            FaultResponse::ec2(503, "RequestLimitExceeded", "Request limit exceeded.")
        } else if ct.starts_with("application/x-www-form-urlencoded") {
            FaultResponse::query(400, "Throttling", "Rate exceeded")
        } else {
            FaultResponse::unavailable()
        }
    }

    /// EC2 DeleteSecurityGroup refused while network interfaces still use the group.
    pub fn dependency_violation(group: &str) -> FaultResponse {
        FaultResponse::ec2(
            400,
            "DependencyViolation",
            &format!("resource {group} has a dependent object"),
        )
    }

    /// Auto Scaling refusing to delete something still in use (launch configuration, group).
    pub fn resource_in_use(what: &str) -> FaultResponse {
        FaultResponse::query(
            400,
            "ResourceInUse",
            &format!("Cannot delete {what} while it is in use"),
        )
    }

    /// Auto Scaling in an account created since late 2024 (no launch configurations).
    pub fn launch_configurations_unsupported() -> FaultResponse {
        FaultResponse::query(
            400,
            "UnsupportedOperation",
            "The Launch Configuration creation operation is not available in your account. \
             Use launch templates to create configuration templates for your Auto Scaling groups.",
        )
    }

    /// ECS DeleteCluster while the cluster still holds something (`Tasks`, `Services`,
    /// `ContainerInstances`).
    pub fn cluster_contains(what: &str) -> FaultResponse {
        FaultResponse::json(
            400,
            &format!("ClusterContains{what}Exception"),
            &format!("The Cluster cannot be deleted while {what} are active."),
        )
    }
}

struct Message {
    start_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Serialises with a fresh Content-Length and `Connection: close`.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start_line);
        for (k, v) in &self.headers {
            let lower = k.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "connection"
                    | "content-length"
                    | "transfer-encoding"
                    | "keep-alive"
                    | "proxy-connection"
            ) {
                continue;
            }
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    is_request: bool,
) -> std::io::Result<Option<Message>> {
    let mut start_line = String::new();
    if reader.read_line(&mut start_line).await? == 0 {
        return Ok(None);
    }
    let start_line = start_line.trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::other("EOF inside HTTP headers"));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut msg = Message {
        start_line,
        headers,
        body: Vec::new(),
    };
    let chunked = msg
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).await?;
            let size_hex = size_line.trim().split(';').next().unwrap_or("0");
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|e| std::io::Error::other(format!("bad chunk size {size_line:?}: {e}")))?;
            if size == 0 {
                // trailers until the empty line
                loop {
                    let mut trailer = String::new();
                    if reader.read_line(&mut trailer).await? == 0 || trailer.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0u8; size];
            reader.read_exact(&mut chunk).await?;
            msg.body.extend_from_slice(&chunk);
            let mut crlf = String::new();
            reader.read_line(&mut crlf).await?;
        }
    } else if let Some(len) = msg.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|e| std::io::Error::other(format!("bad Content-Length {len:?}: {e}")))?;
        msg.body = vec![0u8; len];
        reader.read_exact(&mut msg.body).await?;
    } else if !is_request {
        reader.read_to_end(&mut msg.body).await?;
    }
    Ok(Some(msg))
}

/// (service, operation) of an AWS request.
fn classify(req: &Message) -> (String, String) {
    let target = req.header("x-amz-target").map(str::to_string);
    let service = req
        .header("authorization")
        .and_then(|auth| {
            let cred = auth.split("Credential=").nth(1)?;
            let scope = cred.split([',', ' ']).next()?;
            scope.split('/').nth(3).map(str::to_string)
        })
        .or_else(|| {
            target
                .as_deref()
                .and_then(|t| t.split('.').next())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".to_string());
    let path = req.start_line.split_whitespace().nth(1).unwrap_or("/");
    let body = String::from_utf8_lossy(&req.body);
    let operation = target
        .as_deref()
        .and_then(|t| t.rsplit('.').next())
        .map(str::to_string)
        .or_else(|| form_value(&body, "Action"))
        .or_else(|| {
            path.split_once('?')
                .and_then(|(_, q)| form_value(q, "Action"))
        })
        .or_else(|| {
            // smithy rpcv2-cbor: /service/<Service>/operation/<Operation>
            path.split_once("/operation/")
                .map(|(_, op)| op.trim_end_matches('/').to_string())
        })
        .or_else(|| (service == "s3").then(|| s3_operation(&req.start_line)))
        .unwrap_or_else(|| "unknown".to_string());
    (service, operation)
}

/// S3's REST operations (path style: `/bucket` or `/bucket/key`), by method and path.
fn s3_operation(start_line: &str) -> String {
    let mut parts = start_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let object = path.trim_start_matches('/').contains('/');
    let name = match (method, object) {
        ("HEAD", false) => "HeadBucket",
        ("HEAD", true) => "HeadObject",
        ("GET", true) => "GetObject",
        ("GET", false) if query.contains("versioning") => "GetBucketVersioning",
        ("GET", false) => "ListObjects",
        ("PUT", true) => "PutObject",
        ("PUT", false) => "CreateBucket",
        ("DELETE", true) => "DeleteObject",
        ("DELETE", false) => "DeleteBucket",
        ("POST", false) if query.contains("delete") => "DeleteObjects",
        _ => "unknown",
    };
    name.to_string()
}

fn form_value(form: &str, key: &str) -> Option<String> {
    form.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

/// Decodes %XX escapes and '+' (as in application/x-www-form-urlencoded).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Answers what AWS answers where moto, asked the same, fails with an HTML 500 that no AWS
/// service gives (see the emulator notes):
/// - RemoveRoleFromInstanceProfile for a role no longer in the profile (the retry of a call
///   whose response was lost): AWS answers `NoSuchEntity` (404).
fn fix_moto_quirks(operation: &str, response: Message) -> Message {
    let status_500 = response.start_line.split_whitespace().nth(1) == Some("500");
    let html = String::from_utf8_lossy(&response.body[..response.body.len().min(64)])
        .to_ascii_lowercase()
        .contains("<!doctype html");
    if !(status_500 && html) {
        return response;
    }
    let fixed = match operation {
        "RemoveRoleFromInstanceProfile" => FaultResponse::query(
            404,
            "NoSuchEntity",
            "The role is not in the instance profile.",
        ),
        _ => return response,
    };
    Message {
        start_line: format!("HTTP/1.1 {} Fixed", fixed.status),
        headers: vec![
            ("Content-Type".into(), fixed.content_type),
            ("x-amzn-RequestId".into(), "moto-quirk-fixed".into()),
        ],
        body: fixed.body.into_bytes(),
    }
}

/// Counts a request in flight until dropped.
struct InFlight<'a>(&'a tokio::sync::watch::Sender<usize>);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a tokio::sync::watch::Sender<usize>) -> InFlight<'a> {
        counter.send_modify(|n| *n += 1);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// One call of an operation in flight, counted in [`ProxyShared::in_flight_by_operation`].
struct OperationInFlight<'a> {
    counts: &'a Mutex<BTreeMap<String, (usize, usize)>>,
    operation: String,
}

impl<'a> OperationInFlight<'a> {
    fn enter(counts: &'a Mutex<BTreeMap<String, (usize, usize)>>, operation: &str) -> Self {
        let mut all = counts.lock().unwrap();
        let (now, peak) = all.entry(operation.to_owned()).or_default();
        *now += 1;
        *peak = (*peak).max(*now);
        Self {
            counts,
            operation: operation.to_owned(),
        }
    }
}

impl Drop for OperationInFlight<'_> {
    fn drop(&mut self) {
        if let Some((now, _)) = self.counts.lock().unwrap().get_mut(&self.operation) {
            *now = now.saturating_sub(1);
        }
    }
}

async fn proxy_one(conn: TcpStream, shared: &ProxyShared) -> std::io::Result<()> {
    let mut client = BufReader::new(conn);
    let Some(request) = read_message(&mut client, true).await? else {
        return Ok(());
    };
    let _in_flight = InFlight::enter(&shared.in_flight);
    shared.arrivals.send_modify(|n| *n += 1);
    let (service, operation) = classify(&request);
    let _operation_in_flight = OperationInFlight::enter(&shared.in_flight_by_operation, &operation);
    let body = String::from_utf8_lossy(&request.body).into_owned();

    let scripted = {
        let mut faults = shared.faults.lock().unwrap();
        let found = faults
            .iter_mut()
            .find(|f| f.operation == operation && f.remaining.is_none_or(|n| n > 0));
        found.map(|f| {
            if let Some(n) = f.remaining.as_mut() {
                *n -= 1;
            }
            f.clone()
        })
    };
    let (random, latency) = {
        let chaos = shared.chaos.lock().unwrap().clone();
        match chaos {
            Some(chaos) => {
                let nth = {
                    let mut seen = shared.occurrences.lock().unwrap();
                    let n = seen
                        .entry((service.clone(), operation.clone()))
                        .or_insert(0);
                    *n += 1;
                    *n - 1
                };
                chaos.decide(&service, &operation, nth)
            }
            None => (None, Duration::ZERO),
        }
    };

    // What to do: answer without forwarding, or forward (and maybe drop the answer).
    let (fault, canned, drop_answer) = match (&scripted, random) {
        (Some(f), _) if f.drop => (Some(Injected::Drop), None, true),
        (Some(f), _) => (
            Some(Injected::Scripted),
            Some(FaultResponse {
                status: f.status,
                content_type: f.content_type.clone(),
                body: f.body.clone(),
            }),
            false,
        ),
        (None, Some(Injected::Throttle)) => (
            Some(Injected::Throttle),
            Some(FaultResponse::throttling_for(
                &service,
                request.header("content-type"),
            )),
            false,
        ),
        (None, Some(Injected::Unavailable)) => (
            Some(Injected::Unavailable),
            Some(FaultResponse::unavailable()),
            false,
        ),
        (None, Some(Injected::Drop)) => (Some(Injected::Drop), None, true),
        (None, _) => (None, None, false),
    };

    let forwarded = canned.is_none();
    let response = match canned {
        Some(f) => Message {
            start_line: format!("HTTP/1.1 {} Injected", f.status),
            headers: vec![
                ("Content-Type".into(), f.content_type.clone()),
                ("x-amzn-RequestId".into(), "fault-injected".into()),
            ],
            body: f.body.clone().into_bytes(),
        },
        None => {
            let mut upstream = BufReader::new(TcpStream::connect(shared.upstream).await?);
            upstream.get_mut().write_all(&request.to_bytes()).await?;
            read_message(&mut upstream, false)
                .await?
                .ok_or_else(|| std::io::Error::other("upstream closed without a response"))?
        }
    };
    let response = if forwarded {
        fix_moto_quirks(&operation, response)
    } else {
        response
    };
    let answered: u16 = response
        .start_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let status = if drop_answer { 0 } else { answered };
    let upstream_status = forwarded.then_some(answered);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    // Record before answering, so the call is visible once the client has its response.
    shared.calls.lock().unwrap().push(Call {
        service,
        operation,
        status,
        body,
        fault,
        upstream_status,
    });
    let conn = client.get_mut();
    if drop_answer {
        // The call was carried out; the client gets no answer at all.
        let _ = conn.shutdown().await;
        return Ok(());
    }
    // The client may have been killed meanwhile: not the proxy's problem.
    if conn.write_all(&response.to_bytes()).await.is_ok() {
        let _ = conn.shutdown().await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A stand-in HTTP server (checkip)
// ---------------------------------------------------------------------------------------------

/// Answers every request with 200 and `body` (text/plain), counting requests.
pub struct TextServer {
    addr: SocketAddr,
    hits: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl TextServer {
    pub async fn start(body: &str) -> TextServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(Mutex::new(0usize));
        let body = body.to_string();
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let body = body.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut reader = BufReader::new(conn);
                    if let Ok(Some(_)) = read_message(&mut reader, true).await {
                        *counter.lock().unwrap() += 1;
                        let msg = Message {
                            start_line: "HTTP/1.1 200 OK".into(),
                            headers: vec![("Content-Type".into(), "text/plain".into())],
                            body: body.into_bytes(),
                        };
                        let conn = reader.get_mut();
                        let _ = conn.write_all(&msg.to_bytes()).await;
                        let _ = conn.shutdown().await;
                    }
                });
            }
        });
        TextServer { addr, hits, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn hits(&self) -> usize {
        *self.hits.lock().unwrap()
    }
}

impl Drop for TextServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// Reading AWS state back
// ---------------------------------------------------------------------------------------------

pub fn ec2_filter(name: &str, value: &str) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(name)
        .values(value)
        .build()
}

/// Decodes an IAM policy document (the API returns it URL-encoded; moto may not).
pub fn policy_json(document: &str) -> serde_json::Value {
    serde_json::from_str(document)
        .or_else(|_| serde_json::from_str(&percent_decode(document)))
        .unwrap_or_else(|e| panic!("policy document is not JSON: {e}: {document}"))
}

/// Every `Action` of every `Allow` statement, and whether any statement is not an Allow.
pub fn allowed_actions(policy: &serde_json::Value) -> (BTreeSet<String>, bool) {
    let statements = match &policy["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    let mut actions = BTreeSet::new();
    let mut non_allow = false;
    for st in statements {
        if st["Effect"] != "Allow" {
            non_allow = true;
            continue;
        }
        match &st["Action"] {
            serde_json::Value::String(a) => {
                actions.insert(a.clone());
            }
            serde_json::Value::Array(list) => {
                for a in list {
                    actions.insert(a.as_str().unwrap_or_default().to_string());
                }
            }
            _ => {}
        }
    }
    (actions, non_allow)
}

/// Decodes base64 user data.
pub fn decode_user_data(b64: &str) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap_or_else(|e| panic!("user data is not base64: {e}"));
    String::from_utf8(bytes).expect("user data is UTF-8")
}

/// Runs `bash -n` on a script; panics with bash's complaint if it is not valid shell.
pub fn assert_valid_bash(what: &str, script: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("script.sh");
    std::fs::write(&path, script).expect("write script");
    let out = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("run bash -n");
    assert!(
        out.status.success(),
        "{what} is not valid bash: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The default subnet moto has in the region's first AZ (what `up` uses by default).
pub async fn default_subnet_first_az(aws: &Aws) -> (String, String) {
    let subnets = aws
        .ec2
        .describe_subnets()
        .filters(ec2_filter("default-for-az", "true"))
        .send()
        .await
        .expect("describe_subnets");
    let mut list: Vec<(String, String)> = subnets
        .subnets()
        .iter()
        .map(|s| {
            (
                s.availability_zone().unwrap_or_default().to_string(),
                s.subnet_id().unwrap_or_default().to_string(),
            )
        })
        .collect();
    list.sort();
    let (az, id) = list.into_iter().next().expect("a default subnet");
    (id, az)
}

/// The AMI the SSM parameter names.
pub async fn recommended_ami(aws: &Aws) -> String {
    aws.ssm
        .get_parameter()
        .name(AMI_PARAMETER)
        .send()
        .await
        .expect("get_parameter")
        .parameter()
        .and_then(|p| p.value())
        .expect("parameter value")
        .to_string()
}

impl Aws {
    /// Security group named `name` (any VPC).
    pub async fn security_group(&self, name: &str) -> Option<aws_sdk_ec2::types::SecurityGroup> {
        let out = self
            .ec2
            .describe_security_groups()
            .filters(ec2_filter("group-name", name))
            .send()
            .await
            .expect("describe_security_groups");
        let mut groups = out.security_groups().to_vec();
        assert!(groups.len() <= 1, "several security groups named {name}");
        groups.pop()
    }

    /// Instances tagged Name=`name` that are not terminated (or shutting down).
    pub async fn live_instances(&self, name: &str) -> Vec<aws_sdk_ec2::types::Instance> {
        let out = self
            .ec2
            .describe_instances()
            .filters(ec2_filter("tag:Name", name))
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("instance-state-name")
                    .values("pending")
                    .values("running")
                    .values("stopping")
                    .values("stopped")
                    .build(),
            )
            .send()
            .await
            .expect("describe_instances");
        out.reservations()
            .iter()
            .flat_map(|r| r.instances().iter().cloned())
            .collect()
    }

    /// User data of an instance, decoded.
    pub async fn instance_user_data(&self, instance_id: &str) -> Option<String> {
        let out = self
            .ec2
            .describe_instance_attribute()
            .instance_id(instance_id)
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
            .send()
            .await
            .expect("describe_instance_attribute userData");
        out.user_data()
            .and_then(|v| v.value())
            .map(decode_user_data)
    }

    pub async fn cluster(&self, name: &str) -> Option<aws_sdk_ecs::types::Cluster> {
        let out = self
            .ecs
            .describe_clusters()
            .clusters(name)
            .include(aws_sdk_ecs::types::ClusterField::Tags)
            .send()
            .await
            .expect("describe_clusters");
        out.clusters().first().cloned()
    }

    /// True if cluster `name` exists and is not INACTIVE.
    pub async fn cluster_active(&self, name: &str) -> bool {
        self.cluster(name)
            .await
            .is_some_and(|c| c.status() != Some("INACTIVE"))
    }

    pub async fn launch_configuration(
        &self,
        name: &str,
    ) -> Option<aws_sdk_autoscaling::types::LaunchConfiguration> {
        let out = self
            .autoscaling
            .describe_launch_configurations()
            .launch_configuration_names(name)
            .send()
            .await
            .expect("describe_launch_configurations");
        out.launch_configurations().first().cloned()
    }

    pub async fn launch_template(&self, name: &str) -> Option<aws_sdk_ec2::types::LaunchTemplate> {
        let out = self
            .ec2
            .describe_launch_templates()
            .send()
            .await
            .expect("describe_launch_templates");
        out.launch_templates()
            .iter()
            .find(|t| t.launch_template_name() == Some(name))
            .cloned()
    }

    /// Data of the launch template's default version.
    pub async fn launch_template_data(
        &self,
        id: &str,
    ) -> aws_sdk_ec2::types::ResponseLaunchTemplateData {
        let out = self
            .ec2
            .describe_launch_template_versions()
            .launch_template_id(id)
            .versions("$Default")
            .send()
            .await
            .expect("describe_launch_template_versions");
        out.launch_template_versions()
            .first()
            .and_then(|v| v.launch_template_data())
            .cloned()
            .expect("launch template data")
    }

    pub async fn auto_scaling_group(
        &self,
        name: &str,
    ) -> Option<aws_sdk_autoscaling::types::AutoScalingGroup> {
        let out = self
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .expect("describe_auto_scaling_groups");
        out.auto_scaling_groups().first().cloned()
    }

    /// ACTIVE revisions (ARNs) of one task definition family.
    pub async fn active_task_definitions(&self, family: &str) -> Vec<String> {
        let mut arns = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .ecs
                .list_task_definitions()
                .family_prefix(family)
                .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
                .set_next_token(token)
                .send()
                .await
                .expect("list_task_definitions");
            arns.extend(
                out.task_definition_arns()
                    .iter()
                    .filter(|arn| arn_family(arn) == family)
                    .cloned(),
            );
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        arns.sort();
        arns
    }

    /// A task definition (latest ACTIVE revision of a family, or an ARN) with its tags.
    pub async fn task_definition(
        &self,
        family_or_arn: &str,
    ) -> (
        aws_sdk_ecs::types::TaskDefinition,
        Vec<aws_sdk_ecs::types::Tag>,
    ) {
        let out = self
            .ecs
            .describe_task_definition()
            .task_definition(family_or_arn)
            .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
            .send()
            .await
            .unwrap_or_else(|e| panic!("describe_task_definition {family_or_arn}: {e:?}"));
        (
            out.task_definition().cloned().expect("task definition"),
            out.tags().to_vec(),
        )
    }

    /// Services of `cluster` with these names that are not INACTIVE.
    pub async fn live_services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Vec<aws_sdk_ecs::types::Service> {
        if !self.cluster_active(cluster).await {
            return Vec::new();
        }
        let out = self
            .ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(names.to_vec()))
            .include(aws_sdk_ecs::types::ServiceField::Tags)
            .send()
            .await
            .expect("describe_services");
        out.services()
            .iter()
            .filter(|s| s.status() != Some("INACTIVE"))
            .cloned()
            .collect()
    }

    /// The inline policy document `policy` on `role`, if any.
    pub async fn role_policy(&self, role: &str, policy: &str) -> Option<serde_json::Value> {
        match self
            .iam
            .get_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
            .await
        {
            Ok(out) => Some(policy_json(out.policy_document())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                None
            }
            Err(e) => panic!("get_role_policy {role}/{policy}: {e:?}"),
        }
    }

    pub async fn role(&self, role: &str) -> Option<RoleInfo> {
        let out = match self.iam.get_role().role_name(role).send().await {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                return None
            }
            Err(e) => panic!("get_role {role}: {e:?}"),
        };
        let r = out.role().expect("role").clone();
        let inline = self
            .iam
            .list_role_policies()
            .role_name(role)
            .send()
            .await
            .expect("list_role_policies")
            .policy_names()
            .to_vec();
        let attached = self
            .iam
            .list_attached_role_policies()
            .role_name(role)
            .send()
            .await
            .expect("list_attached_role_policies")
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_string))
            .collect();
        Some(RoleInfo {
            role_id: r.role_id().to_string(),
            create_date: *r.create_date(),
            trust: r
                .assume_role_policy_document()
                .map(policy_json)
                .unwrap_or(serde_json::Value::Null),
            tags: r
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
            inline_policies: inline,
            attached_policies: attached,
        })
    }

    pub async fn instance_profile(&self, name: &str) -> Option<ProfileInfo> {
        match self
            .iam
            .get_instance_profile()
            .instance_profile_name(name)
            .send()
            .await
        {
            Ok(out) => {
                let p = out.instance_profile().expect("instance profile");
                Some(ProfileInfo {
                    id: p.instance_profile_id().to_string(),
                    create_date: *p.create_date(),
                    roles: p
                        .roles()
                        .iter()
                        .map(|r| r.role_name().to_string())
                        .collect(),
                    tags: p
                        .tags()
                        .iter()
                        .map(|t| (t.key().to_string(), t.value().to_string()))
                        .collect(),
                })
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                None
            }
            Err(e) => panic!("get_instance_profile {name}: {e:?}"),
        }
    }

    /// EC2 instance ids registered as container instances of `cluster`, with their status.
    pub async fn container_instances(&self, cluster: &str) -> BTreeMap<String, String> {
        let arns = self
            .ecs
            .list_container_instances()
            .cluster(cluster)
            .send()
            .await
            .expect("list_container_instances")
            .container_instance_arns()
            .to_vec();
        if arns.is_empty() {
            return BTreeMap::new();
        }
        let out = self
            .ecs
            .describe_container_instances()
            .cluster(cluster)
            .set_container_instances(Some(arns))
            .send()
            .await
            .expect("describe_container_instances");
        out.container_instances()
            .iter()
            .map(|ci| {
                (
                    ci.ec2_instance_id().unwrap_or_default().to_string(),
                    ci.status().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Stand-in ECS agent: registers every running instance tagged Name=`<cluster>-ecs` that is
    /// not registered yet as a container instance of `cluster` (moto has no agent; see the
    /// emulator notes). Returns the EC2 ids registered by this call.
    pub async fn register_container_instances(&self, cluster: &str) -> Vec<String> {
        let already = self.container_instances(cluster).await;
        let mut registered = Vec::new();
        for instance in self.live_instances(&format!("{cluster}-ecs")).await {
            let running = instance
                .state()
                .and_then(|s| s.name())
                .is_some_and(|n| n.as_str() == "running");
            let id = instance.instance_id().unwrap_or_default().to_string();
            if !running || already.contains_key(&id) {
                continue;
            }
            self.ecs
                .register_container_instance()
                .cluster(cluster)
                .instance_identity_document(serde_json::json!({ "instanceId": id }).to_string())
                .send()
                .await
                .unwrap_or_else(|e| panic!("register_container_instance {id}: {e:?}"));
            registered.push(id);
        }
        registered
    }

    /// Everything of `stack` that exists now (see [`Snapshot`]).
    pub async fn snapshot(&self, stack: &str) -> Snapshot {
        let sg = self
            .security_group(&format!("{stack}-sg"))
            .await
            .map(|g| g.group_id().unwrap_or_default().to_string());
        let consul = instance_keys(self.live_instances(&format!("{stack}-consul-server")).await);
        let nodes = instance_keys(self.live_instances(&format!("{stack}-ecs")).await);
        let cluster = self
            .cluster(stack)
            .await
            .filter(|c| c.status() != Some("INACTIVE"))
            .map(|c| c.cluster_arn().unwrap_or_default().to_string());
        let launch_configuration =
            self.launch_configuration(&format!("{stack}-lc"))
                .await
                .map(|lc| {
                    (
                        lc.launch_configuration_arn()
                            .unwrap_or_default()
                            .to_string(),
                        lc.created_time().cloned(),
                    )
                });
        let launch_template = self
            .launch_template(&format!("{stack}-lt"))
            .await
            .map(|lt| {
                (
                    lt.launch_template_id().unwrap_or_default().to_string(),
                    lt.create_time().cloned(),
                    lt.latest_version_number(),
                )
            });
        let asg = self
            .auto_scaling_group(&format!("{stack}-asg"))
            .await
            .map(|g| {
                (
                    g.auto_scaling_group_arn().unwrap_or_default().to_string(),
                    g.created_time().cloned(),
                )
            });
        let mut task_definitions = BTreeMap::new();
        for suffix in FAMILIES {
            let family = format!("{stack}-{suffix}");
            let arns = self.active_task_definitions(&family).await;
            if !arns.is_empty() {
                task_definitions.insert(family, arns);
            }
        }
        let service_names: Vec<String> = DAEMONS.iter().map(|d| format!("{stack}-{d}")).collect();
        let services = self
            .live_services(stack, &service_names)
            .await
            .into_iter()
            .map(|s| {
                (
                    s.service_name().unwrap_or_default().to_string(),
                    (
                        s.service_arn().unwrap_or_default().to_string(),
                        s.created_at().cloned(),
                    ),
                )
            })
            .collect();
        let policy = self
            .role_policy(INSTANCE_ROLE, &format!("{stack}-policy"))
            .await;
        Snapshot {
            security_group: sg,
            consul_instances: consul,
            node_instances: nodes,
            cluster,
            launch_configuration,
            launch_template,
            asg,
            task_definitions,
            services,
            policy,
        }
    }
}

fn instance_keys(instances: Vec<aws_sdk_ec2::types::Instance>) -> Vec<(String, Option<DateTime>)> {
    let mut keys: Vec<_> = instances
        .iter()
        .map(|i| {
            (
                i.instance_id().unwrap_or_default().to_string(),
                i.launch_time().cloned(),
            )
        })
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    keys
}

/// Family of a task definition ARN (`...:task-definition/<family>:<revision>`).
pub fn arn_family(arn: &str) -> &str {
    let tail = arn.rsplit('/').next().unwrap_or(arn);
    tail.rsplit_once(':').map(|(f, _)| f).unwrap_or(tail)
}

/// An IAM role as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleInfo {
    pub role_id: String,
    pub create_date: DateTime,
    pub trust: serde_json::Value,
    pub tags: BTreeMap<String, String>,
    pub inline_policies: Vec<String>,
    pub attached_policies: Vec<String>,
}

/// An IAM instance profile as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileInfo {
    pub id: String,
    pub create_date: DateTime,
    pub roles: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// Identity (ids, ARNs, creation times) of everything one stack has in AWS. Two snapshots are
/// equal when nothing was created, replaced or deleted in between.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub security_group: Option<String>,
    /// Not-terminated instances tagged Name=`<stack>-consul-server`: (id, launch time).
    pub consul_instances: Vec<(String, Option<DateTime>)>,
    /// Not-terminated instances tagged Name=`<stack>-ecs`.
    pub node_instances: Vec<(String, Option<DateTime>)>,
    /// Cluster ARN if the cluster exists and is not INACTIVE.
    pub cluster: Option<String>,
    pub launch_configuration: Option<(String, Option<DateTime>)>,
    /// (id, created, latest version)
    pub launch_template: Option<(String, Option<DateTime>, Option<i64>)>,
    pub asg: Option<(String, Option<DateTime>)>,
    /// family -> ACTIVE revision ARNs (families without ACTIVE revisions are left out).
    pub task_definitions: BTreeMap<String, Vec<String>>,
    /// service name -> (ARN, created at), services not INACTIVE.
    pub services: BTreeMap<String, (String, Option<DateTime>)>,
    /// The stack's inline policy on ecsInstanceRole.
    pub policy: Option<serde_json::Value>,
}

impl Snapshot {
    /// Human-readable list of what exists (empty when the stack is gone).
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        if let Some(sg) = &self.security_group {
            left.push(format!("security group {sg}"));
        }
        for (id, _) in &self.consul_instances {
            left.push(format!("consul server instance {id}"));
        }
        for (id, _) in &self.node_instances {
            left.push(format!("node instance {id}"));
        }
        if let Some(c) = &self.cluster {
            left.push(format!("cluster {c}"));
        }
        if let Some((arn, _)) = &self.launch_configuration {
            left.push(format!("launch configuration {arn}"));
        }
        if let Some((id, _, _)) = &self.launch_template {
            left.push(format!("launch template {id}"));
        }
        if let Some((arn, _)) = &self.asg {
            left.push(format!("auto scaling group {arn}"));
        }
        for arns in self.task_definitions.values() {
            for arn in arns {
                left.push(format!("task definition {arn}"));
            }
        }
        for name in self.services.keys() {
            left.push(format!("service {name}"));
        }
        if self.policy.is_some() {
            left.push("inline role policy".to_string());
        }
        left
    }

    /// Panics unless every part of a complete stack (LC or LT) is there.
    #[track_caller]
    pub fn assert_complete(&self, stack: &str) {
        let mut missing = Vec::new();
        if self.security_group.is_none() {
            missing.push("security group");
        }
        if self.consul_instances.len() != 1 {
            missing.push("exactly one consul server");
        }
        if self.cluster.is_none() {
            missing.push("cluster");
        }
        if self.launch_configuration.is_none() && self.launch_template.is_none() {
            missing.push("launch configuration or template");
        }
        if self.asg.is_none() {
            missing.push("auto scaling group");
        }
        if self.task_definitions.len() != FAMILIES.len() {
            missing.push("five task definition families");
        }
        if self.services.len() != DAEMONS.len() {
            missing.push("three daemon services");
        }
        if self.policy.is_none() {
            missing.push("role policy");
        }
        assert!(
            missing.is_empty(),
            "stack {stack} is incomplete, missing: {missing:?}\n{self:#?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// State file
// ---------------------------------------------------------------------------------------------

/// Reads a state file as JSON (panics if missing or not JSON).
pub fn read_state(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("state file {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("state file {} is not JSON: {e}\n{text}", path.display()))
}

/// Unix permission bits of a file.
pub fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Panics unless the state file exists, is mode 0600 and names the stack, region and account.
#[track_caller]
pub fn assert_state_file(path: &Path, stack: &str, region: &str) {
    assert!(path.is_file(), "state file {} missing", path.display());
    assert_eq!(
        file_mode(path),
        0o600,
        "state file {} must be mode 0600",
        path.display()
    );
    let state = read_state(path);
    assert!(
        state.get("format_version").is_some(),
        "state has no format_version: {state}"
    );
    assert_eq!(state["stack"], stack, "state stack: {state}");
    assert_eq!(state["region"], region, "state region: {state}");
    assert_eq!(state["account_id"], ACCOUNT_ID, "state account_id: {state}");
}

/// Files left next to the state file (a temp file of an atomic write must not remain).
pub fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
        Err(_) => Vec::new(),
    }
}
