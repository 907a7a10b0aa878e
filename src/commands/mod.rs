//! The commands: each module has one entry, `run(args, env)`, and owns its result type.
//! `run` here turns parsed arguments into a finished command: it builds the output, hands the
//! command over, prints the one result and chooses the exit code.

pub mod apply;
pub mod dashboard;
pub mod deploy;
pub mod docs;
pub mod doctor;
pub mod down;
pub mod list;
pub mod load;
pub mod logs;
pub mod plan;
pub mod state;
pub mod status;
pub mod step;
pub mod tunnel;
pub mod undeploy;
pub mod unlock;
pub mod unrecorded;
pub mod up;
pub mod verify;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;

use crate::aws::Aws;
use crate::cli::{Cli, Command};
use crate::context::progress_notice;
use crate::context::Ctx;
use crate::options::{GlobalArgs, OutputFormat};
use crate::output::Output;
use crate::resources::settings::{Flags, Settings};
use crate::stack::{S3Object, StateLocation};
use crate::state::remote::{Holder, RemoteState};
use crate::state::{State, StateStore};

/// What every command has: the global flags, the output, and its own name.
pub struct Env {
    pub global: GlobalArgs,
    pub out: Arc<Output>,
    pub command: &'static str,
    /// The clients and the caller, for a state kept in S3: made once per run.
    remote: tokio::sync::OnceCell<(Aws, Holder)>,
}

impl Env {
    pub fn new(global: GlobalArgs, out: Arc<Output>, command: &'static str) -> Self {
        Self {
            global,
            out,
            command,
            remote: tokio::sync::OnceCell::new(),
        }
    }

    /// Where the state is kept: `--state`, else `.l5d-ecs/<stack>.json`.
    pub fn state_location(&self) -> StateLocation {
        self.global
            .state
            .clone()
            .unwrap_or_else(|| StateLocation::Local(self.global.stack.default_state_path()))
    }

    /// The state as it is, not locked: read from its file, or from S3 (whose bucket is
    /// checked here, before anything else).
    pub async fn open_state(&self) -> Result<StateStore> {
        self.open_state_at(&self.state_location()).await
    }

    pub async fn open_state_at(&self, location: &StateLocation) -> Result<StateStore> {
        match location {
            StateLocation::Local(path) => StateStore::open(path, &self.global.stack),
            StateLocation::S3(object) => {
                let remote = self.remote_state(object).await?;
                StateStore::open_remote(remote, &self.global.stack).await
            }
        }
    }

    /// An S3 state's object, its bucket checked.
    pub async fn remote_state(&self, object: &S3Object) -> Result<RemoteState> {
        let (aws, holder) = self.remote_access().await?;
        RemoteState::connect(aws, object.clone(), holder.clone()).await
    }

    async fn remote_access(&self) -> Result<&(Aws, Holder)> {
        self.remote
            .get_or_try_init(|| async {
                let aws = Aws::connect(&self.global, Some(progress_notice(&self.out))).await?;
                let holder = Holder::of_this_run(&aws, self.command).await?;
                Ok::<_, anyhow::Error>((aws, holder))
            })
            .await
    }

    /// The state as it is, without locking it (`None`: there is none).
    pub async fn recorded(&self) -> Result<Option<State>> {
        Ok(self.open_state().await?.snapshot())
    }

    /// The state, locked for this run (a corrupt one is refused here). An S3 state is read
    /// once, under the lock.
    pub async fn lock(&self) -> Result<StateStore> {
        let store = match self.state_location() {
            StateLocation::S3(object) => {
                StateStore::unread_remote(self.remote_state(&object).await?)
            }
            local => self.open_state_at(&local).await?,
        };
        store.lock(&self.global.stack).await
    }

    /// The state locked, then the settings from these flags, what the last `up` recorded,
    /// and the defaults: resolved once, checked before any AWS call.
    pub async fn lock_with_settings(&self, flags: Flags<'_>) -> Result<(StateStore, Settings)> {
        // Bad input is refused before anything touches the disk (the lock makes the state's
        // directory) or S3 (where reading the recorded settings is already a call); the
        // settings that count are those resolved under the lock.
        let recorded = match self.state_location() {
            StateLocation::Local(_) => self.recorded().await?,
            StateLocation::S3(_) => None,
        };
        Settings::resolve(flags, recorded.as_ref())?;
        let state = self.lock().await?;
        let settings = Settings::resolve(flags, state.snapshot().as_ref())?;
        Ok((state, settings))
    }

    /// The clients built and the credentials checked, for a command that only reads AWS:
    /// the state is neither locked nor written.
    pub async fn connect_reading(&self) -> Result<Ctx> {
        let store = self.open_state().await?;
        let cx = Ctx::new_unbound(&self.global, store, self.out.clone(), None).await?;
        cx.aws.account_id().await?;
        Ok(cx)
    }

    /// The state locked, the clients built and the account checked.
    pub async fn connect(&self) -> Result<Ctx> {
        Ctx::new(&self.global, self.lock().await?, self.out.clone()).await
    }
}

/// Why a command failed, as an exit code.
pub enum ExitStatus {
    Failed = 1,
    Usage = 2,
    CheckFailed = 3,
    /// 128 + SIGINT, as a shell reports a process that Ctrl-C ended.
    Interrupted = 130,
}

/// Ctrl-C or SIGTERM: the command stops where it is, as after a crash (the state records what
/// was made), but first lets go of its lock, which in S3 would otherwise outlive it.
#[derive(Debug, thiserror::Error)]
#[error(
    "interrupted by {0}: the state records what was made so far; run the command again to go on"
)]
pub struct Interrupted(&'static str);

async fn interruption() -> Interrupted {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => Interrupted("Ctrl-C"),
                _ = term.recv() => Interrupted("SIGTERM"),
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    Interrupted("Ctrl-C")
}

impl ExitStatus {
    pub fn of(e: &anyhow::Error) -> Self {
        if e.downcast_ref::<crate::stack::UsageError>().is_some() {
            Self::Usage
        } else if e.downcast_ref::<verify::ChecksFailed>().is_some() {
            Self::CheckFailed
        } else if e.downcast_ref::<Interrupted>().is_some() {
            Self::Interrupted
        } else {
            Self::Failed
        }
    }

    pub fn code(self) -> ExitCode {
        ExitCode::from(self as u8)
    }
}

pub async fn run(cli: Cli) -> ExitCode {
    if let Some(code) = docs::run(&cli.command, &cli.global) {
        return code;
    }
    crate::aws::operations::set_command(cli.command.name());
    let env = Env::new(
        cli.global.clone(),
        Arc::new(Output::new(cli.global.output, cli.global.quiet)),
        cli.command.name(),
    );
    // Dropping the command's future releases its lock (and ends its calls in flight).
    let result = tokio::select! {
        result = dispatch(&cli.command, &env) => result,
        stop = interruption() => Err(stop.into()),
    };
    // The command's lock is released by now; a lock left in S3 would refuse every next run.
    let unreleased = crate::state::remote::unreleased_locks();
    let result = match (result, unreleased.is_empty()) {
        (result, true) => result,
        (Ok(()), false) => Err(anyhow::anyhow!("{}", unreleased.join("\n"))),
        (Err(e), false) => Err(e.context(unreleased.join("\n"))),
    };
    let error = result.as_ref().err().map(|e| format!("{e:#}"));
    if let Some(e) = &error {
        eprintln!("error: {e}");
    }
    let name = cli.command.name();
    env.out
        .finish(&env.out.report(name, env.global.stack.as_str(), error));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ExitStatus::of(&e).code(),
    }
}

async fn dispatch(command: &Command, env: &Env) -> Result<()> {
    match command {
        Command::Up(args) if args.dry_run => plan::run(args, env).await,
        Command::Up(args) => up::run(args, env).await,
        Command::Plan(args) => plan::run(args, env).await,
        Command::Doctor(args) => doctor::run(args, env).await,
        Command::Down(args) => down::run(args, env).await,
        Command::SecurityGroup(args) => step::run(command.name(), args.flags(), env).await,
        Command::ConsulServer(args) => step::run(command.name(), args.flags(), env).await,
        Command::RolePolicy(args) => step::run(command.name(), args.flags(), env).await,
        Command::LaunchConfig(args) => step::run(command.name(), args.flags(), env).await,
        Command::Asg(args) => step::run(command.name(), args.flags(), env).await,
        Command::Cluster | Command::RegisterTasks | Command::Daemons | Command::LogGroup => {
            step::run(command.name(), Flags::default(), env).await
        }
        Command::Deploy(args) => deploy::run(args, env).await,
        Command::Undeploy(args) => undeploy::run(args, env).await,
        Command::Verify(args) => verify::run(args, env).await,
        Command::Status(args) => status::run(args, env).await,
        Command::List(args) => list::run(args, env).await,
        Command::State(args) => state::run(args, env).await,
        Command::Unlock(args) => unlock::run(args, env).await,
        Command::Logs(args) => logs::run(args, env).await,
        Command::Dashboard(args) => dashboard::run(args, env).await,
        Command::Tunnel(args) => tunnel::run(args, env).await,
        Command::Load(args) => load::run(args, env).await,
        Command::Completions { .. } | Command::Man(_) | Command::IamPolicy(_) => Ok(()),
    }
}

/// Bad usage found by clap: its message on stderr and exit 2 (help and version print as
/// usual, exit 0). With `--output json`, stdout still gets its one JSON document.
pub fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let _ = e.print();
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) && !e.use_stderr()
    {
        return ExitCode::SUCCESS;
    }
    let args: Vec<String> = std::env::args().collect();
    let wants_json = args.iter().any(|a| a == "--output=json")
        || args
            .windows(2)
            .any(|w| w[0] == "--output" && w[1] == "json");
    if wants_json {
        let out = Output::new(OutputFormat::Json, true);
        let message = e.to_string();
        let first_line = message
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ");
        out.finish(&out.report("?", "", Some(first_line.to_owned())));
    }
    ExitStatus::Usage.code()
}
