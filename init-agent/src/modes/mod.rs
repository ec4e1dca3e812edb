//! What a node makes of the standard root: sync (with `disk`), statelite
//! (and its overlay variant), CDSL.
pub mod cdsl;
pub mod disk;
pub mod statelite;
pub mod sync;
