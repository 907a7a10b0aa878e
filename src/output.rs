//! What the tool prints: progress and warnings on stderr, and one result on stdout, either a
//! table for people or one JSON document (`--output json`).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::cli::OutputFormat;

/// Version of the JSON document printed with `--output json`.
pub const JSON_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    Network,
    SecurityGroup,
    SecurityGroupRules,
    ConsulServer,
    Cluster,
    InstanceRole,
    InstanceProfile,
    RolePolicy,
    TaskDefinition,
    LaunchConfiguration,
    LaunchTemplate,
    AutoScalingGroup,
    DaemonService,
    ContainerInstances,
    LogGroup,
    Task,
    Stack,
}

impl ResourceKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Network => "network",
            Self::SecurityGroup => "security-group",
            Self::SecurityGroupRules => "security-group-rules",
            Self::ConsulServer => "consul-server",
            Self::Cluster => "cluster",
            Self::InstanceRole => "instance-role",
            Self::InstanceProfile => "instance-profile",
            Self::RolePolicy => "role-policy",
            Self::TaskDefinition => "task-definition",
            Self::LaunchConfiguration => "launch-configuration",
            Self::LaunchTemplate => "launch-template",
            Self::AutoScalingGroup => "auto-scaling-group",
            Self::DaemonService => "daemon-service",
            Self::ContainerInstances => "container-instances",
            Self::LogGroup => "log-group",
            Self::Task => "task",
            Self::Stack => "stack",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Made by this run.
    Created,
    /// Already there as it should be; not touched.
    Kept,
    /// Already there; changed to what it should be.
    Updated,
    /// Already there; used, not owned (a role l5d-ecs did not create).
    Used,
    Deleted,
    /// Waited for and ready.
    Ready,
    /// Seen in AWS (`--discover`); nothing done to it.
    Found,
    /// `plan`: `up` would create it.
    Create,
    /// `plan`: exists and matches; `up` would not touch it.
    Keep,
    /// `plan`: exists but differs; `up` would change it in place.
    Repair,
    /// `plan`: `up` would make a new one in its place.
    Replace,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResourceChange {
    pub kind: ResourceKind,
    pub name: String,
    pub id: String,
    pub action: Action,
    /// What differs (`plan`), in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A resource that is still there after a failed `down`.
#[derive(Debug, Clone, Serialize)]
pub struct Leftover {
    pub kind: ResourceKind,
    pub name: String,
    pub id: String,
    pub error: String,
}

/// A task of a demo app and the node it landed on.
#[derive(Debug, Clone, Serialize)]
pub struct TaskInfo {
    pub app: String,
    pub task_id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// An address a person opens: a dashboard or UI.
#[derive(Debug, Clone, Serialize)]
pub struct Address {
    pub name: String,
    pub url: String,
}

/// The one JSON document of `--output json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub command: String,
    pub stack: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub ok: bool,
    pub resources: Vec<ResourceChange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remaining: Vec<Leftover>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskInfo>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<crate::verify::CheckResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<crate::load::LoadSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::status::StatusReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<crate::logs::LogLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<crate::plan::PlanSummary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub doctor: Vec<crate::doctor::DoctorLine>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The live line of one step (nothing when stderr is not a terminal).
pub struct StepLine {
    bar: Option<indicatif::ProgressBar>,
}

impl StepLine {
    pub fn finish(self, outcome: Result<(), &str>) {
        if let Some(bar) = self.bar {
            match outcome {
                Ok(()) => bar.finish_with_message("done"),
                Err(why) => bar.finish_with_message(format!("FAILED: {why}")),
            }
        }
    }
}

pub struct Output {
    format: OutputFormat,
    /// Live step lines, on a terminal only (not with -q).
    bars: Option<indicatif::MultiProgress>,
    quiet: bool,
    started: Instant,
    stderr_is_terminal: bool,
    changes: Mutex<Vec<ResourceChange>>,
    leftovers: Mutex<Vec<Leftover>>,
    warnings: Mutex<Vec<String>>,
    region: Mutex<Option<String>>,
    tasks: Mutex<Vec<TaskInfo>>,
    addresses: Mutex<Vec<Address>>,
    checks: Mutex<Vec<crate::verify::CheckResult>>,
    load: Mutex<Option<crate::load::LoadSummary>>,
    status: Mutex<Option<crate::status::StatusReport>>,
    log_lines: Mutex<Vec<crate::logs::LogLine>>,
    plan: Mutex<Option<crate::plan::PlanSummary>>,
    doctor: Mutex<Vec<crate::doctor::DoctorLine>>,
}

impl Output {
    pub fn new(format: OutputFormat, quiet: bool) -> Self {
        let stderr_is_terminal = std::io::stderr().is_terminal();
        Self {
            format,
            quiet,
            bars: (stderr_is_terminal && !quiet).then(|| {
                indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr())
            }),
            started: Instant::now(),
            stderr_is_terminal,
            changes: Mutex::default(),
            leftovers: Mutex::default(),
            warnings: Mutex::default(),
            region: Mutex::default(),
            tasks: Mutex::default(),
            addresses: Mutex::default(),
            checks: Mutex::default(),
            load: Mutex::default(),
            status: Mutex::default(),
            log_lines: Mutex::default(),
            plan: Mutex::default(),
            doctor: Mutex::default(),
        }
    }

    /// A log line: printed at once as text (so `--follow` streams), kept for the JSON document.
    pub fn log_line(&self, line: crate::logs::LogLine) {
        if self.format == OutputFormat::Text {
            println!(
                "{} {} {} | {}",
                line.time, line.node, line.task, line.message
            );
        } else {
            lock(&self.log_lines).push(line);
        }
    }

    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    pub fn stderr_is_terminal(&self) -> bool {
        self.stderr_is_terminal
    }

    pub fn task(&self, task: TaskInfo) {
        lock(&self.tasks).push(task);
    }

    pub fn address(&self, name: &str, url: String) {
        lock(&self.addresses).push(Address {
            name: name.to_owned(),
            url,
        });
    }

    pub fn checks(&self, checks: Vec<crate::verify::CheckResult>) {
        *lock(&self.checks) = checks;
    }

    pub fn load(&self, summary: crate::load::LoadSummary) {
        *lock(&self.load) = Some(summary);
    }

    pub fn status(&self, status: crate::status::StatusReport) {
        *lock(&self.status) = Some(status);
    }

    pub fn set_region(&self, region: &str) {
        *lock(&self.region) = Some(region.to_owned());
    }

    /// A line of progress on stderr: what is being done or waited for.
    pub fn progress(&self, message: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        if let Some(bars) = &self.bars {
            // Printed above the live step lines.
            let _ = bars.println(format!("[{elapsed:6.1}s] {}", message.as_ref()));
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.stderr_is_terminal {
            let _ = writeln!(err, "[{elapsed:6.1}s] {}", message.as_ref());
        } else {
            let _ = writeln!(err, "{} [{elapsed:.1}s] {}", timestamp(), message.as_ref());
        }
    }

    /// A live line for one step, with a spinner and its elapsed time, on a terminal only.
    pub fn step(&self, name: &str) -> StepLine {
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(indicatif::ProgressBar::new_spinner());
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {prefix:<22} {elapsed:>4} {wide_msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.set_prefix(name.to_owned());
            bar.set_message("working");
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        StepLine { bar }
    }

    pub fn warn(&self, message: impl Into<String>) {
        let message = message.into();
        eprintln!("warning: {message}");
        lock(&self.warnings).push(message);
    }

    pub fn record(
        &self,
        kind: ResourceKind,
        name: impl Into<String>,
        id: impl Into<String>,
        action: Action,
    ) {
        let change = ResourceChange {
            kind,
            name: name.into(),
            id: id.into(),
            action,
            detail: None,
        };
        // Live on a terminal; otherwise the result table says it once, at the end.
        if self.bars.is_some() {
            self.progress(format!(
                "{:<8} {} {} {}",
                action_label(action),
                kind.label(),
                change.name,
                change.id
            ));
        }
        lock(&self.changes).push(change);
    }

    /// A line of `plan`: what `up` would do to one resource, and why.
    pub fn planned(
        &self,
        kind: ResourceKind,
        name: impl Into<String>,
        action: Action,
        detail: Option<String>,
    ) {
        lock(&self.changes).push(ResourceChange {
            kind,
            name: name.into(),
            id: String::new(),
            action,
            detail,
        });
    }

    pub fn doctor(&self, lines: Vec<crate::doctor::DoctorLine>) {
        *lock(&self.doctor) = lines;
    }

    pub fn plan_summary(&self, summary: crate::plan::PlanSummary) {
        *lock(&self.plan) = Some(summary);
    }

    pub fn leftover(
        &self,
        kind: ResourceKind,
        name: impl Into<String>,
        id: impl Into<String>,
        error: impl Into<String>,
    ) {
        lock(&self.leftovers).push(Leftover {
            kind,
            name: name.into(),
            id: id.into(),
            error: error.into(),
        });
    }

    pub fn report(&self, command: &str, stack: &str, error: Option<String>) -> Report {
        Report {
            schema_version: JSON_SCHEMA_VERSION,
            command: command.to_owned(),
            stack: stack.to_owned(),
            region: lock(&self.region).clone(),
            ok: error.is_none(),
            resources: lock(&self.changes).clone(),
            remaining: lock(&self.leftovers).clone(),
            tasks: lock(&self.tasks).clone(),
            addresses: lock(&self.addresses).clone(),
            checks: lock(&self.checks).clone(),
            load: lock(&self.load).clone(),
            status: lock(&self.status).clone(),
            logs: lock(&self.log_lines).clone(),
            plan: lock(&self.plan).clone(),
            doctor: lock(&self.doctor).clone(),
            warnings: lock(&self.warnings).clone(),
            error,
        }
    }

    /// Prints the result on stdout: one JSON document, or a table for people.
    pub fn finish(&self, report: &Report) {
        let mut out = std::io::stdout().lock();
        match self.format {
            OutputFormat::Json => {
                // Serialising plain data with string keys cannot fail.
                let json = serde_json::to_string_pretty(report).unwrap_or_default();
                let _ = writeln!(out, "{json}");
            }
            OutputFormat::Text => {
                if self.quiet {
                    return;
                }
                // When stdout and stderr share a terminal the rows were shown live already.
                let shown_live = self.bars.is_some() && std::io::stdout().is_terminal();
                if shown_live && report.plan.is_none() && !report.resources.is_empty() {
                    let _ = writeln!(out, "{}", summary_counts(&report.resources));
                }
                for c in report
                    .resources
                    .iter()
                    .filter(|_| !shown_live || report.plan.is_some())
                {
                    let _ = writeln!(
                        out,
                        "{:<8} {:<21} {:<28} {}{}",
                        action_label(c.action),
                        c.kind.label(),
                        c.name,
                        c.id,
                        c.detail
                            .as_deref()
                            .map(|d| format!("  ({d})"))
                            .unwrap_or_default()
                    );
                }
                for l in &report.doctor {
                    let _ = l.write_text(&mut out);
                }
                if let Some(plan) = &report.plan {
                    let _ = plan.write_text(&mut out);
                }
                if let Some(status) = &report.status {
                    let _ = status.write_text(&mut out);
                }
                for t in &report.tasks {
                    let _ = writeln!(
                        out,
                        "task     {:<21} {:<36} {:<9} on {} {}",
                        t.app,
                        t.task_id,
                        t.status,
                        t.instance_id.as_deref().unwrap_or("?"),
                        t.host.as_deref().unwrap_or("")
                    );
                }
                for c in &report.checks {
                    let _ = c.write_text(&mut out);
                }
                if let Some(load) = &report.load {
                    let _ = load.write_text(&mut out);
                }
                for a in &report.addresses {
                    let _ = writeln!(out, "{:<12} {}", a.name, a.url);
                }
                if !report.remaining.is_empty() {
                    let _ = writeln!(
                        out,
                        "\nStill there (delete by hand or run `l5d-ecs down` again):"
                    );
                    for l in &report.remaining {
                        let _ = writeln!(
                            out,
                            "  {:<21} {:<28} {}  ({})",
                            l.kind.label(),
                            l.name,
                            l.id,
                            l.error
                        );
                    }
                }
                if report.ok {
                    let _ = writeln!(
                        out,
                        "{} {}: done in {:.1}s",
                        report.command,
                        report.stack,
                        self.started.elapsed().as_secs_f64()
                    );
                }
            }
        }
    }
}

/// "17 created, 2 kept" for a terminal that saw every row live.
fn summary_counts(changes: &[ResourceChange]) -> String {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for c in changes {
        let label = action_label(c.action);
        match counts.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => counts.push((label, 1)),
        }
    }
    counts
        .iter()
        .map(|(l, n)| format!("{n} {l}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn action_label(action: Action) -> &'static str {
    match action {
        Action::Created => "created",
        Action::Kept => "kept",
        Action::Updated => "updated",
        Action::Used => "used",
        Action::Deleted => "deleted",
        Action::Ready => "ready",
        Action::Found => "found",
        Action::Create => "create",
        Action::Keep => "keep",
        Action::Repair => "repair",
        Action::Replace => "replace",
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// UTC time of day, for progress lines in logs.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let day = secs % 86_400;
    format!("{:02}:{:02}:{:02}Z", day / 3600, day % 3600 / 60, day % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_report_shape() {
        let out = Output::new(OutputFormat::Json, true);
        out.record(ResourceKind::Cluster, "s", "arn:x", Action::Created);
        out.set_region("us-west-1");
        let report = out.report("up", "s", None);
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "schema_version": 1,
                "command": "up",
                "stack": "s",
                "region": "us-west-1",
                "ok": true,
                "resources": [
                    {"kind": "cluster", "name": "s", "id": "arn:x", "action": "created"}
                ]
            })
        );
    }
}
