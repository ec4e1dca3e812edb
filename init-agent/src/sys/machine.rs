//! [`Sys`]: every call the boot executor makes that changes the machine (or
//! asks the network), behind one trait. [`Real`] makes them; the recording
//! double in `sys::record` (tests) writes them down, so the executor is
//! unit-tested by the calls it makes, without root. Each call below is
//! tested for real as root and in QEMU.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::boot::plan::{DhcpAnswer, NetPlan};
use crate::boot::report::BootReport;
use crate::config::{self, Disk};
use crate::hooks::Phase;
use crate::modes::bootloader::Install;
use crate::modes::disk::Found;
use crate::modes::statelite::plan::{Action, Inputs};
use crate::net::dns::Ask;
use crate::source::mount::NfsMount;
use crate::source::nfs::Endpoint;
use crate::sync::{Options, Report, SyncSource};

/// Why a call failed, with what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    #[error(transparent)]
    Mount(#[from] super::MountError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error(transparent)]
    Dns(#[from] crate::net::dns::DnsError),
    #[error(transparent)]
    Disk(#[from] crate::modes::disk::DiskError),
    #[error(transparent)]
    Modules(#[from] crate::modules::ModuleError),
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    #[error(transparent)]
    Statelite(#[from] crate::modes::statelite::StateliteError),
    #[error(transparent)]
    Cdsl(#[from] crate::modes::cdsl::CdslError),
    #[error(transparent)]
    Hooks(#[from] crate::hooks::HookError),
    #[error(transparent)]
    Bootloader(#[from] crate::modes::bootloader::BootloaderError),
    #[error("{0}")]
    SwitchRoot(String),
    #[error("no NFS server to try")]
    NoServer,
    /// A file of a signed root that is not as signed.
    #[error("not as signed: {0}")]
    Untrusted(String),
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> SysError {
    let what = what.to_string();
    move |source| SysError::Io { what, source }
}

/// A disk made ready by its layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedDisk {
    pub device: PathBuf,
    /// Partitioned and formatted by this boot.
    pub fresh: bool,
}

/// The calls the boot makes. `&mut self` so the recording double can log.
pub trait Sys {
    /// /proc, /sys, /dev, /run.
    fn mount_pseudo(&mut self) -> Result<(), SysError>;
    fn load_modules(&mut self, modules: &[String], skip: &[String]) -> Result<(), SysError>;
    /// The boot NIC up by DHCP or static `ip=`; what DHCP said.
    fn bring_up(&mut self, net: &NetPlan, c: &config::Net) -> Result<DhcpAnswer, SysError>;
    /// What the host initramfs's DHCP said (klibc ipconfig's files).
    fn host_network(&mut self) -> DhcpAnswer;
    /// The boot report: its headline on the console, the JSON in /run (and
    /// on the node's disk mounted on `disk`). Never fails the boot.
    fn boot_report(&mut self, report: &BootReport, disk: Option<&str>);
    /// A small file of the reached standard root; `None` when absent.
    fn read_source_file(
        &mut self,
        from: &SyncSource,
        path: &str,
    ) -> Result<Option<Vec<u8>>, SysError>;
    /// A small file of a signed standard root: `None` when absent, an error
    /// unless the signed manifest (by one of `trust`'s keys) has it so.
    fn read_signed_source_file(
        &mut self,
        from: &SyncSource,
        path: &str,
        trust: &crate::sync::trust::Trust,
    ) -> Result<Option<Vec<u8>>, SysError>;
    /// A host name's IPv4 address from DNS.
    fn resolve(&mut self, name: &str, ask: &Ask) -> Result<Ipv4Addr, SysError>;
    fn mkdir_p(&mut self, dir: &str) -> Result<(), SysError>;
    fn mount_nfs(&mut self, m: &NfsMount, at: &str) -> Result<(), SysError>;
    /// One attempt at the userspace client's MOUNT of `at`.
    fn probe_nfs(&mut self, at: &Endpoint) -> Result<(), SysError>;
    /// Whether anything accepts connections on the NFS port.
    fn serves_nfs(&mut self, addr: IpAddr, port: u16) -> bool;
    /// The source and read-only flag of the topmost mount on `at`.
    fn mounted_on(&mut self, at: &str) -> Option<(String, bool)>;
    fn move_mount(&mut self, from: &str, to: &str) -> Result<(), SysError>;
    fn remount_rw(&mut self, at: &str) -> Result<(), SysError>;
    fn unmount(&mut self, at: &str) -> Result<(), SysError>;
    fn prepare_disk(&mut self, d: &Disk) -> Result<PreparedDisk, SysError>;
    /// What is on a disk, nothing written.
    fn inspect_disk(&mut self, d: &Disk) -> Result<(PathBuf, Found), SysError>;
    /// The layout's `/` partition of `device` mounted on `at`.
    fn mount_local(&mut self, d: &Disk, device: &Path, at: &str) -> Result<(), SysError>;
    /// The sync state marker of the tree at `at`.
    fn local_state(&mut self, at: &str) -> crate::sync::state::State;
    /// An interrupted sync of the tree at `at` rolled back to the last
    /// complete generation it kept: the state rolled back to, None when it
    /// kept none.
    fn roll_back(&mut self, at: &str) -> Result<Option<crate::sync::state::State>, SysError>;
    /// A sync, its report written beside the state marker.
    fn sync(&mut self, src: &SyncSource, to: &str, opts: &Options) -> Result<Report, SysError>;
    fn statelite(&mut self, root: &str, inputs: &Inputs) -> Result<Vec<Action>, SysError>;
    fn overlay(&mut self, lower: &str, scratch: &str, root: &str) -> Result<(), SysError>;
    fn cdsl(&mut self, root: &str, cfg: &config::Cdsl, nodeid: &str) -> Result<(), SysError>;
    fn run_hooks(&mut self, p: &Phase, env: &[(String, String)]) -> Result<(), SysError>;
    /// `[[disk]] bootloader` after a complete sync; what it changed.
    fn install_bootloader(&mut self, i: &Install) -> Result<Vec<String>, SysError>;
    /// `rd.break`: a shell; the boot goes on when it ends.
    fn shell(&mut self, shell: &str);
    /// Hooks' background jobs, reparented to PID 1.
    fn reap_orphans(&mut self);
    /// Returns only why it could not switch.
    fn switch_root(&mut self, root: &str, init: &str, args: &[String]) -> SysError;
}

/// How long a disk named by the configuration may take to appear.
pub const DISK_WAIT: Duration = Duration::from_secs(10);

/// The machine itself.
pub struct Real;

impl Sys for Real {
    fn mount_pseudo(&mut self) -> Result<(), SysError> {
        for (what, fstype, target, opts) in [
            ("proc", "proc", "/proc", ""),
            ("sysfs", "sysfs", "/sys", ""),
            ("devtmpfs", "devtmpfs", "/dev", "mode=0755"),
            ("tmpfs", "tmpfs", "/run", "mode=0755"),
        ] {
            let _ = std::fs::create_dir_all(target);
            match super::mount_fs(what, Path::new(target), fstype, false, opts) {
                Ok(()) => {}
                // Already there: a retry, or an initramfs tool that mounted it.
                Err(e) if e.source.raw_os_error() == Some(16) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn load_modules(&mut self, modules: &[String], skip: &[String]) -> Result<(), SysError> {
        Ok(crate::modules::load_boot(modules, skip)?)
    }

    fn bring_up(&mut self, net: &NetPlan, c: &config::Net) -> Result<DhcpAnswer, SysError> {
        let up = crate::net::bring_up(net, c)?;
        log::info!(
            "network up: {} {}/{}{}{}",
            up.link,
            up.address,
            up.prefix,
            up.gateway.map(|g| format!(" via {g}")).unwrap_or_default(),
            up.lease
                .as_ref()
                .and_then(|l| l.root_path.as_ref())
                .map(|r| format!(", DHCP root-path {r}"))
                .unwrap_or_default()
        );
        Ok(up.lease.map(|l| l.answer()).unwrap_or_default())
    }

    fn host_network(&mut self) -> DhcpAnswer {
        crate::boot::hosted::host_dhcp()
    }

    fn resolve(&mut self, name: &str, ask: &Ask) -> Result<Ipv4Addr, SysError> {
        Ok(crate::net::dns::resolve(name, ask)?)
    }

    fn read_source_file(
        &mut self,
        from: &SyncSource,
        path: &str,
    ) -> Result<Option<Vec<u8>>, SysError> {
        // A configuration file, not a root image.
        from.read_small(path, 1 << 20)
            .map_err(io(format!("{from}{path}")))
    }

    fn read_signed_source_file(
        &mut self,
        from: &SyncSource,
        path: &str,
        trust: &crate::sync::trust::Trust,
    ) -> Result<Option<Vec<u8>>, SysError> {
        let Some(text) = self.read_source_file(from, path)? else {
            return Ok(None);
        };
        let manifest = format!("/{}/manifest", crate::sync::STATE_DIR);
        let sig = crate::sync::trust::signature_name(&manifest);
        // As the sync bounds them.
        let read = |rel: &str, limit| {
            from.read_small(rel, limit)
                .map_err(io(format!("{from}{rel}")))?
                .ok_or_else(|| SysError::Untrusted(format!("{from}{rel}: absent")))
        };
        let bytes = read(&manifest, 256 << 20)?;
        let sig = read(&sig, 64 << 10)?;
        crate::sync::trust::check_file(&bytes, &sig, &trust.keys, path, &text)
            .map_err(SysError::Untrusted)?;
        Ok(Some(text))
    }

    fn boot_report(&mut self, report: &BootReport, disk: Option<&str>) {
        let report = &BootReport {
            peak_rss_kib: std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| crate::boot::report::peak_rss_kib(&s)),
            ..report.clone()
        };
        log::info!("{}", report.headline());
        let json = serde_json::to_string_pretty(report).unwrap_or_default() + "\n";
        let disk = disk.map(|d| Path::new(d).join(crate::boot::report::DISK_REPORT));
        for path in std::iter::once(PathBuf::from(crate::boot::report::RUN_REPORT)).chain(disk) {
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&path, &json));
            if let Err(e) = written {
                log::warn!("boot report {}: {e}", path.display());
            }
        }
    }

    fn mkdir_p(&mut self, dir: &str) -> Result<(), SysError> {
        std::fs::create_dir_all(dir).map_err(io(dir))
    }

    fn mount_nfs(&mut self, m: &NfsMount, at: &str) -> Result<(), SysError> {
        // Named by the export, as the admin wrote it, not by the mount point.
        super::mount_fs(&m.source, Path::new(at), m.fstype, m.read_only, &m.data).map_err(|e| {
            SysError::Io {
                what: m.source.clone(),
                source: e.source,
            }
        })?;
        log::info!(
            "standard root {} mounted on {at} ({}, {})",
            m.source,
            m.fstype,
            m.data
        );
        Ok(())
    }

    fn probe_nfs(&mut self, at: &Endpoint) -> Result<(), SysError> {
        crate::source::nfs::Nfs::probe(at).map_err(io(format!("{}:{}", at.host, at.path)))
    }

    fn serves_nfs(&mut self, addr: IpAddr, port: u16) -> bool {
        std::net::TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(3)).is_ok()
    }

    fn mounted_on(&mut self, at: &str) -> Option<(String, bool)> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        crate::boot::hosted::mounted_on(&info, at)
    }

    fn move_mount(&mut self, from: &str, to: &str) -> Result<(), SysError> {
        std::fs::create_dir_all(to).map_err(io(to))?;
        Ok(super::move_mount(Path::new(from), Path::new(to))?)
    }

    fn remount_rw(&mut self, at: &str) -> Result<(), SysError> {
        Ok(super::remount(Path::new(at), false)?)
    }

    fn unmount(&mut self, at: &str) -> Result<(), SysError> {
        Ok(super::unmount(Path::new(at), true)?)
    }

    fn prepare_disk(&mut self, d: &Disk) -> Result<PreparedDisk, SysError> {
        let p = crate::modes::disk::prepare(d, DISK_WAIT)?;
        Ok(PreparedDisk {
            device: p.device,
            fresh: p.fresh,
        })
    }

    fn inspect_disk(&mut self, d: &Disk) -> Result<(PathBuf, Found), SysError> {
        let (device, _, found) = crate::modes::disk::inspect(d, DISK_WAIT)?;
        Ok((device, found))
    }

    fn mount_local(&mut self, d: &Disk, device: &Path, at: &str) -> Result<(), SysError> {
        Ok(crate::modes::sync::mount_root(d, device, at)?)
    }

    fn local_state(&mut self, at: &str) -> crate::sync::state::State {
        crate::modes::sync::state_of(at)
    }

    fn roll_back(&mut self, at: &str) -> Result<Option<crate::sync::state::State>, SysError> {
        let io = |source| SysError::Io {
            what: format!("rolling back the copy on {at}"),
            source,
        };
        let root = crate::sys::fsops::open_root(Path::new(at)).map_err(io)?;
        crate::sync::rollback::roll_back(std::os::fd::AsFd::as_fd(&root)).map_err(io)
    }

    fn sync(&mut self, src: &SyncSource, to: &str, opts: &Options) -> Result<Report, SysError> {
        let report = crate::sync::run(src, Path::new(to), opts)?;
        if let Err(e) = crate::modes::sync::write_report(&report, to) {
            // The copy is complete and marked so; only the record of it is missing.
            log::warn!("writing the sync report: {e}");
        }
        Ok(report)
    }

    fn statelite(&mut self, root: &str, inputs: &Inputs) -> Result<Vec<Action>, SysError> {
        Ok(crate::modes::statelite::apply(Path::new(root), inputs)?)
    }

    fn overlay(&mut self, lower: &str, scratch: &str, root: &str) -> Result<(), SysError> {
        Ok(crate::modes::statelite::overlay::mount(
            Path::new(lower),
            Path::new(scratch),
            Path::new(root),
        )?)
    }

    fn cdsl(&mut self, root: &str, cfg: &config::Cdsl, nodeid: &str) -> Result<(), SysError> {
        Ok(crate::modes::cdsl::boot(Path::new(root), cfg, nodeid)?)
    }

    fn run_hooks(&mut self, p: &Phase, env: &[(String, String)]) -> Result<(), SysError> {
        crate::hooks::run_phase(p, env)?;
        Ok(())
    }

    fn install_bootloader(&mut self, i: &Install) -> Result<Vec<String>, SysError> {
        // This initramfs, as the kernel unpacked it: the disk boots it.
        Ok(crate::modes::bootloader::install(i, Path::new("/"))?)
    }

    fn shell(&mut self, shell: &str) {
        match std::process::Command::new(shell).status() {
            Ok(s) => log::info!("shell ended ({s}), boot continues"),
            Err(e) => log::error!("{shell}: {e}; boot continues"),
        }
    }

    fn reap_orphans(&mut self) {
        let reaped = super::reap_orphans();
        if reaped > 0 {
            log::debug!("{reaped} orphaned processes reaped");
        }
    }

    fn switch_root(&mut self, root: &str, init: &str, args: &[String]) -> SysError {
        SysError::SwitchRoot(super::switch_root::switch_root(Path::new(root), init, args))
    }
}
