pub mod cmdline;
pub mod hwaddr;
