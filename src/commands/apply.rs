//! Making resources: every resource of a run starts at once, looks up what exists, waits
//! only for the resources it needs ([`resources::ORDER`]), then creates or repairs. A cold
//! `up` is one round of look-ups, then the chain security group -> launch configuration ->
//! ASG. A failed resource stops only the resources that need it; the others run to the end,
//! so the state file records everything that was made.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use anyhow::{anyhow, Result};
use futures::future::{BoxFuture, Shared};
use futures::FutureExt;

use crate::context::Ctx;
use crate::output::Output;
use crate::resources::{self, missing_step, Entry, Name, NeedFailed, Ready, Settings, Usable};

/// The errors of a run's steps, gathered so that every step runs before they are reported.
pub struct Failures<'a> {
    failed: Mutex<Vec<(String, anyhow::Error)>>,
    out: &'a Output,
}

impl<'a> Failures<'a> {
    pub fn new(out: &'a Output) -> Self {
        Self {
            failed: Mutex::default(),
            out,
        }
    }

    /// Runs one step with its live line; its error is kept for the end. A step skipped
    /// because a step it needs failed adds no error of its own.
    pub async fn step<T>(
        &self,
        name: &str,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T, NeedFailed> {
        let line = self.out.step(name);
        let result = work.await;
        let skipped = |e: &anyhow::Error| e.downcast_ref::<NeedFailed>().is_some();
        line.finish(match &result {
            Ok(_) => Ok(()),
            Err(e) if skipped(e) => Err("a step it needs failed"),
            Err(_) => Err("see below"),
        });
        result.map_err(|e| {
            if !skipped(&e) {
                self.failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((name.to_owned(), e));
            }
            NeedFailed
        })
    }

    /// One error naming every failed step once; steps that failed for one reason (no
    /// credentials, say) share one line.
    pub fn into_result(self) -> Result<()> {
        let failures = self.failed.into_inner().unwrap_or_else(|p| p.into_inner());
        if failures.len() == 1 {
            let (name, e) = failures.into_iter().next().ok_or_else(|| anyhow!("?"))?;
            return Err(e.context(format!("step {name} failed")));
        }
        if failures.is_empty() {
            return Ok(());
        }
        let mut by_reason: Vec<(String, Vec<&str>, String)> = Vec::new();
        for (name, e) in &failures {
            let text = format!("{e:#}");
            // The same advice (no credentials, expired token, ...) is the same reason.
            let reason = text
                .find("\n  what to do:")
                .map_or(text.clone(), |at| text[at..].to_owned());
            match by_reason.iter_mut().find(|(r, _, _)| *r == reason) {
                Some((_, names, _)) => names.push(name),
                None => by_reason.push((reason, vec![name], text)),
            }
        }
        let lines: Vec<String> = by_reason
            .iter()
            .map(|(_, names, text)| format!("  {}: {text}", names.join(", ")))
            .collect();
        Err(anyhow!(
            "{} steps failed ({}):\n{}",
            failures.len(),
            failures
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            lines.join("\n")
        ))
    }
}

type Done<'a> = Shared<BoxFuture<'a, Result<(), NeedFailed>>>;

/// Makes the resources `names` (in table order), each once what it needs is in place.
/// What they need beyond `names` must be recorded already: else the error names the command
/// that makes it, before any AWS call. `gate` runs beside the look-ups and must succeed
/// before anything is made (the account check of `up`).
pub async fn apply<'a>(
    cx: &'a Ctx,
    s: &'a Settings,
    names: &[Name],
    gate: Done<'a>,
    f: &'a Failures<'a>,
) -> Result<BTreeMap<Name, Result<(), NeedFailed>>> {
    let run: Vec<&'static Entry> = resources::ORDER
        .iter()
        .filter(|e| names.contains(&e.name()))
        .collect();
    let recorded = cx.state.resources();
    for e in &run {
        for need in e.needs.iter().filter(|n| !names.contains(n)) {
            let needed = resources::entry(*need).resource;
            if !needed.is_recorded(&recorded, s) {
                return Err(missing_step(needed.what(), needed.command()));
            }
        }
    }
    // What dependents wait for (a resource's `up`, or its early [`Usable`]), and each step
    // to its end.
    let mut usable: BTreeMap<Name, Done<'a>> = BTreeMap::new();
    let mut done: BTreeMap<Name, Done<'a>> = BTreeMap::new();
    for e in &run {
        let waits: Vec<Done<'a>> = e
            .needs
            .iter()
            .filter_map(|n| usable.get(n).cloned())
            .chain([gate.clone()])
            .collect();
        let needs = async move {
            futures::future::join_all(waits)
                .await
                .into_iter()
                .collect::<Result<Vec<()>, NeedFailed>>()
                .map(|_| ())
        }
        .boxed()
        .shared();
        let (early, told) = Usable::new();
        let name: &'static str = e.name().into();
        let step = f
            .step(name, e.resource.up(cx, s, Ready::new(needs, early)))
            .boxed()
            .shared();
        let whole = step.clone();
        let for_dependents = async move {
            match told.await {
                Ok(()) => Ok(()),
                Err(_) => whole.await,
            }
        }
        .boxed()
        .shared();
        usable.insert(e.name(), for_dependents);
        done.insert(e.name(), step);
    }
    let names: Vec<Name> = done.keys().copied().collect();
    let results = futures::future::join_all(done.into_values()).await;
    Ok(names.into_iter().zip(results).collect())
}

/// The resources a single-step command makes.
pub fn made_by(command: &str) -> Vec<Name> {
    resources::ORDER
        .iter()
        .filter(|e| e.resource.command() == command)
        .map(Entry::name)
        .collect()
}
