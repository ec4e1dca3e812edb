//! The boot itself: `plan` computes it, `run` executes its steps, `pid1`
//! and `hosted` drive it as the initramfs's init or from a host initramfs,
//! `explain` prints it.
pub mod explain;
pub mod hosted;
pub mod pid1;
pub mod plan;
pub mod run;
