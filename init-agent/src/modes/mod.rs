//! What a node makes of the standard root: sync (with `disk` and the disk's
//! `bootloader`), statelite (and its overlay variant), CDSL.
pub mod bootloader;
pub mod cdsl;
pub mod disk;
pub mod statelite;
pub mod sync;
