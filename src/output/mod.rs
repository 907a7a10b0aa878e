//! What the tool prints: progress and warnings on stderr, and one result on stdout, either a
//! table for people or one JSON document (`--output json`).

pub mod table;

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::kinds::{Action, Address, Leftover, ResourceChange, ResourceKind, TaskInfo};
use crate::options::OutputFormat;

/// Version of the JSON document printed with `--output json`.
pub const JSON_SCHEMA_VERSION: u32 = 1;

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
    /// Each command's own result under its own key (`status`, `plan`, `checks`, ...).
    #[serde(flatten)]
    pub sections: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A command's result that is a list: a JSON array, one text line (or block) per item.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Lines<T>(pub Vec<T>);

impl<T: std::fmt::Display> std::fmt::Display for Lines<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|item| write!(f, "{item}"))
    }
}

struct Section {
    key: &'static str,
    value: serde_json::Value,
    text: String,
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
    /// A command's results: its JSON key, its value and its text, in the order given.
    sections: Mutex<Vec<Section>>,
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
            sections: Mutex::default(),
        }
    }

    /// A command's result, under `key` in the JSON document, or as text. The command owns
    /// its type; the printer only knows it can be shown both ways.
    pub fn section(&self, key: &'static str, result: &(impl Serialize + std::fmt::Display)) {
        let value = serde_json::to_value(result).unwrap_or(serde_json::Value::Null);
        lock(&self.sections).push(Section {
            key,
            value,
            text: result.to_string(),
        });
    }

    /// One item of a list that grows as it comes (log lines): printed at once as text, so
    /// `--follow` streams, and kept for the JSON document under `key`.
    pub fn item(&self, key: &'static str, item: &(impl Serialize + std::fmt::Display)) {
        if self.format == OutputFormat::Text {
            println!("{item}");
            return;
        }
        let value = serde_json::to_value(item).unwrap_or(serde_json::Value::Null);
        let mut sections = lock(&self.sections);
        match sections.iter_mut().find(|s| s.key == key) {
            Some(Section {
                value: serde_json::Value::Array(items),
                ..
            }) => items.push(value),
            _ => sections.push(Section {
                key,
                value: serde_json::Value::Array(vec![value]),
                text: String::new(),
            }),
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
            let _ = writeln!(
                err,
                "{} [{elapsed:.1}s] {}",
                crate::clock::time_of_day(),
                message.as_ref()
            );
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
                action.label(),
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
            sections: lock(&self.sections)
                .iter()
                .map(|s| (s.key.to_owned(), s.value.clone()))
                .collect(),
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
                // Plan rows are not live: they are what `up` would do.
                let planned = report.sections.contains_key("plan");
                if shown_live && !planned && !report.resources.is_empty() {
                    let _ = writeln!(out, "{}", summary_counts(&report.resources));
                }
                for c in report.resources.iter().filter(|_| !shown_live || planned) {
                    let _ = writeln!(
                        out,
                        "{:<8} {:<21} {:<28} {}{}",
                        c.action.label(),
                        c.kind.label(),
                        c.name,
                        c.id,
                        c.detail
                            .as_deref()
                            .map(|d| format!("  ({d})"))
                            .unwrap_or_default()
                    );
                }
                for section in lock(&self.sections).iter().filter(|s| !s.text.is_empty()) {
                    let _ = write!(out, "{}", section.text);
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
        let label = c.action.label();
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
