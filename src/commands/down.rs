//! `down`: everything the state file records, removed in the reverse of [`ORDER`]: each
//! resource goes once nothing that needs it is left. A failed deletion does not stop the
//! others; what is left is listed at the end.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;

use anyhow::{anyhow, Result};
use futures::future::{BoxFuture, Shared};
use futures::FutureExt;

use super::unrecorded::{item_lines, Unrecorded};
use super::Env;
use crate::cli::DownArgs;
use crate::context::Ctx;
use crate::resources::settings::Flags;
use crate::resources::{self, inventory, needed_by, Name, ORDER};
use crate::stack::usage;

pub async fn run(args: &DownArgs, env: &Env) -> Result<()> {
    let stack = env.global.stack.as_str();
    if !args.yes && !std::io::stdin().is_terminal() {
        // Refused before any AWS call or any write.
        return Err(usage(format!(
            "down would delete the resources of stack {stack}; not on a terminal, so add --yes \
             to confirm"
        )));
    }
    if args.discover {
        let (state, s) = env
            .lock_with_settings(Flags {
                instance_role: Some(&args.instance_role),
                ..Flags::default()
            })
            .await?;
        let cx = Ctx::new(&env.global, state, env.out.clone()).await?;
        let found = Mutex::new(cx.state.resources());
        resources::discover(&cx, &s, &found).await?;
        let found = found.into_inner().unwrap_or_else(|p| p.into_inner());
        if !resources::is_empty(&cx.stack, &found) {
            cx.state.update(|st| st.resources = found).await?;
        }
        confirm(&cx, args).await?;
        return destroy_all(&cx, args).await;
    }
    if env.recorded().await?.is_none() {
        return unrecorded(args, env).await;
    }
    let cx = env.connect().await?;
    confirm(&cx, args).await?;
    destroy_all(&cx, args).await
}

/// No state file: nothing is deleted, and if the region holds anything of the stack, that is
/// an error that says what and how to delete it.
async fn unrecorded(args: &DownArgs, env: &Env) -> Result<()> {
    let found = Unrecorded::look(env, &args.instance_role).await?;
    env.out.section("unrecorded", &found);
    if found.is_empty() {
        return Ok(());
    }
    Err(anyhow!(
        "nothing was deleted: no state file at {} records stack {}, but {} of its resources \
         are in {} (listed above); {}",
        found.state_file,
        found.stack,
        found.found.len(),
        found.region,
        found.remedy()
    ))
}

/// On a terminal, lists what `down` would delete now and asks (`--yes` skips this).
async fn confirm(cx: &Ctx, args: &DownArgs) -> Result<()> {
    if args.yes {
        return Ok(());
    }
    let items = resources::doomed(cx, &cx.state.resources()).await?;
    if items.is_empty() {
        return Ok(());
    }
    let mut err = std::io::stderr().lock();
    writeln!(err, "This deletes, in stack {}:", cx.stack)?;
    for line in item_lines(&items) {
        writeln!(err, "  {line}")?;
    }
    write!(err, "Delete these {}? [y/N] ", items.len())?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(usage("not confirmed; nothing was deleted"))
    }
}

type Gone<'a> = Shared<BoxFuture<'a, bool>>;

async fn destroy_all(cx: &Ctx, args: &DownArgs) -> Result<()> {
    let timeout = args.timeout.0;
    let errors: Mutex<Vec<String>> = Mutex::default();
    let errors_ref = &errors;
    let mut gone: BTreeMap<Name, Gone<'_>> = BTreeMap::new();
    // Reverse table order: whatever needs a resource is scheduled before it.
    for e in ORDER.iter().rev() {
        let dependents: Vec<(&'static str, Gone<'_>)> = needed_by(e.name())
            .filter_map(|d| gone.get(&d.name()).map(|g| (d.resource.what(), g.clone())))
            .collect();
        let work = async move {
            let mut blocked = None;
            for (what, g) in dependents {
                if !g.await && blocked.is_none() {
                    blocked = Some(what);
                }
            }
            let recorded = !e
                .resource
                .inventory(&cx.stack, &cx.state.resources())
                .is_empty();
            if let Some(what) = blocked.filter(|_| recorded) {
                errors_ref
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!(
                        "{}: not tried, {what} is still there",
                        e.resource.what()
                    ));
                return false;
            }
            match e.resource.destroy(cx, timeout).await {
                Ok(()) => true,
                Err(err) => {
                    errors_ref
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("{err:#}"));
                    false
                }
            }
        };
        gone.insert(e.name(), work.boxed().shared());
    }
    futures::future::join_all(gone.into_values()).await;

    let left = cx.state.resources();
    if resources::is_empty(&cx.stack, &left) {
        cx.state.remove().await?;
        return Ok(());
    }
    let errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    let items = inventory(&cx.stack, &left);
    for i in &items {
        let why = errors
            .iter()
            .find(|e| (!i.name.is_empty() && e.contains(&i.name)) || e.contains(&i.id))
            .cloned()
            .unwrap_or_else(|| "see the errors above".to_owned());
        cx.out.leftover(i.kind, &i.name, &i.id, why);
    }
    Err(anyhow!(
        "down did not finish; {} resource(s) are still there and remain in the state {}:\n  {}",
        items.len(),
        cx.state.location(),
        errors.join("\n  ")
    ))
}
