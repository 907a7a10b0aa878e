//! The state file: what this stack created ([`records`]), typed and versioned, written
//! atomically after every change ([`store`]), guarded by a lock file that names its holder
//! ([`lock`]).

mod lock;
mod records;
mod store;

pub use records::*;
pub use store::StateStore;
