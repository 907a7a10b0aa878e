//! When no state file records the stack: `down`, `status` and `list` say so, then look for
//! the stack in the region by its tags and derived names (reads only, nothing written), so
//! that a stack made from another directory is never taken for nothing.

use std::fmt;
use std::sync::Mutex;

use anyhow::Result;
use serde::Serialize;

use super::Env;
use crate::kinds::Item;
use crate::output::table;
use crate::resources;
use crate::resources::settings::{Flags, Settings};

/// What the region holds of a stack that no state file here records.
#[derive(Debug, Serialize)]
pub struct Unrecorded {
    pub state_file: String,
    pub stack: String,
    pub region: String,
    /// Found by tag and derived name: what `down --discover` would delete.
    pub found: Vec<Item>,
}

impl Unrecorded {
    /// The stack in the region, looked up without the state file and without locking it.
    pub async fn look(env: &Env, instance_role: &str) -> Result<Self> {
        let location = env.state_location();
        let settings = Settings::resolve(
            Flags {
                instance_role: Some(instance_role),
                ..Flags::default()
            },
            None,
        )?;
        env.out.progress(format!(
            "no state file at {location}: looking for stack {} in the region by its tags",
            env.global.stack
        ));
        let cx = env.connect_reading().await?;
        let found = Mutex::default();
        resources::discover(&cx, &settings, &found).await?;
        let found = found.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok(Self {
            state_file: location.to_string(),
            stack: env.global.stack.to_string(),
            region: cx.aws.region.clone(),
            found: resources::doomed(&cx, &found).await?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// What to run to delete what was found.
    pub fn remedy(&self) -> String {
        format!(
            "`l5d-ecs down --discover --stack {} --region {}` deletes them; if their state file \
             is elsewhere, run from its directory or pass it with --state PATH",
            self.stack, self.region
        )
    }
}

impl fmt::Display for Unrecorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "no state file at {}", self.state_file)?;
        if self.found.is_empty() {
            return writeln!(f, "nothing of stack {} in {}", self.stack, self.region);
        }
        writeln!(
            f,
            "but stack {} has {} resource(s) in {} that no state file here records:",
            self.stack,
            self.found.len(),
            self.region
        )?;
        for line in item_lines(&self.found) {
            writeln!(f, "  {line}")?;
        }
        writeln!(f, "{}", self.remedy())
    }
}

/// Items in aligned columns: kind, name, id (the id whole, last).
pub fn item_lines(items: &[Item]) -> Vec<String> {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| vec![i.kind.label().to_owned(), i.name.clone(), i.id.clone()])
        .collect();
    table::lines(&rows, &[usize::MAX, 40])
}
