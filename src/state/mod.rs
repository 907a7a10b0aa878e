//! The state: what this stack created ([`records`]), typed and versioned, kept by the
//! [`store`] in a local file written atomically after every change ([`file`]) and guarded by
//! a kernel file lock that names its holder ([`lock`]), or in S3 with conditional writes and
//! a lock object ([`remote`]).

mod file;
mod lock;
mod records;
pub mod remote;
mod store;

pub use records::*;
pub use store::StateStore;
