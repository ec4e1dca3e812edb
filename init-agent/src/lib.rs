pub mod cmdline;
pub mod config;
pub mod hwaddr;
