//! init-agent: the boot flow reads from the module list.
//! cmdline → config → boot (prepare, plan, run) → net → source → modes → hooks
//! → sys::switch_root; `sync` is the copy engine sync mode and the CLI share;
//! `sys` is every call that changes the machine.
pub mod boot;
pub mod cli;
pub mod cmdline;
pub mod config;
pub mod console;
pub mod hooks;
pub mod hwaddr;
pub mod initramfs;
pub mod modes;
pub mod modules;
pub mod net;
pub mod source;
pub mod sync;
pub mod sys;
