//! The state file: what this stack created ([`records`]), typed and versioned, kept by the
//! [`store`] and written atomically after every change ([`file`]), guarded by a lock file
//! that names its holder ([`lock`]).

mod file;
mod lock;
mod records;
mod store;

pub use records::*;
pub use store::StateStore;
