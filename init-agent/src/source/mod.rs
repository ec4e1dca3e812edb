//! Where the standard root comes from: `spec` parses every way of naming an
//! NFS export (command line, DHCP root-path, configuration, tables), `mount`
//! builds the kernel client's mount(2) arguments, `nfs` is the userspace
//! NFSv3 client that sync mode reads through without mounting, `tree` is the
//! read interface the sync engine walks (a local directory or `nfs`).
//! Reaching the root at boot (servers in order, retries, the kernel client
//! standing in for ours) is the executor's `MountSource` / `ConnectSource`.

pub mod mount;
pub mod nfs;
pub mod spec;
pub mod tree;
