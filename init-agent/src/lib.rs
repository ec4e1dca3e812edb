pub mod cli;
pub mod cmdline;
pub mod config;
pub mod explain;
pub mod hwaddr;
pub mod plan;
pub mod sync;
