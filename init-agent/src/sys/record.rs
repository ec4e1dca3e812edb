//! The recording double of [`Sys`]: every call written down with its
//! values, every call succeeding, the environment's answers (the DHCP
//! lease, what the host mounted) given by the caller: the executor's unit
//! tests, and `explain --dhcp`'s dry run of the boot.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use super::machine::{PreparedDisk, Sys, SysError};
use crate::boot::plan::{DhcpAnswer, NetPlan};
use crate::boot::report::BootReport;
use crate::config::{self, Disk};
use crate::hooks::Phase;
use crate::modes::bootloader::Install;
use crate::modes::disk::Found;
use crate::modes::statelite::plan::{Action, Inputs, Mountable};
use crate::net::dns::Ask;

/// What every DNS lookup answers in a dry run (TEST-NET-1, RFC 5737): the
/// name is what the boot would ask for, the address a stand-in.
pub const RESOLVED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
use crate::source::mount::NfsMount;
use crate::source::nfs::Endpoint;
use crate::sync::{Options, Report, SyncSource};

/// One call, with the values that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    MountPseudo,
    LoadModules(Vec<String>),
    BringUp(Option<String>),
    HostNetwork,
    /// A file of the standard root read (the cluster configuration).
    ReadSourceFile(String),
    /// The boot report, with the node's disk it also goes to.
    BootReport(Option<String>),
    /// A DNS lookup, with the servers it would ask.
    Resolve {
        name: String,
        servers: Vec<Ipv4Addr>,
    },
    Mkdir(String),
    MountNfs {
        mount: NfsMount,
        at: String,
    },
    ProbeNfs(String),
    MountedOn(String),
    MoveMount {
        from: String,
        to: String,
    },
    RemountRw(String),
    Unmount(String),
    PrepareDisk(String),
    InspectDisk(String),
    MountLocal {
        device: String,
        at: String,
    },
    LocalState(String),
    RollBack(String),
    Sync {
        src: String,
        to: String,
        exclude: Vec<String>,
        protect: Vec<String>,
        checksum: bool,
        /// The ids of the keys it verifies with, and allow_rollback.
        trust: Option<(Vec<String>, bool)>,
    },
    Statelite {
        root: String,
        node: String,
        entries: usize,
        store: Option<String>,
    },
    Overlay {
        lower: String,
        root: String,
    },
    Cdsl {
        root: String,
        nodeid: String,
    },
    Hooks {
        root: String,
        phase: String,
    },
    Bootloader {
        device: String,
        partition: usize,
        root: String,
        append: String,
    },
    Shell(String),
    SwitchRoot {
        root: String,
        init: String,
    },
}

/// Answers and the calls so far.
#[derive(Debug, Default)]
pub struct Recording {
    pub calls: Vec<Call>,
    /// What the network's DHCP server answers.
    pub dhcp: DhcpAnswer,
    /// What the host initramfs mounted on the new root (dracut).
    pub host_mount: Option<(String, bool)>,
    /// The cluster configuration the standard root holds.
    pub cluster: Option<Vec<u8>>,
    /// The marker of the copy on the node's disk; `None`: complete and verified.
    pub local: Option<crate::sync::state::State>,
    /// What a roll-back of an interrupted sync gives; `None`: nothing kept.
    pub rolled_back: Option<crate::sync::state::State>,
    /// Why installing the boot loader fails; `None`: it succeeds.
    pub bootloader_fails: Option<String>,
    /// Why the userspace client's MOUNT call fails; `None`: it answers.
    pub probe_fails: Option<String>,
}

impl Sys for Recording {
    fn mount_pseudo(&mut self) -> Result<(), SysError> {
        self.calls.push(Call::MountPseudo);
        Ok(())
    }
    fn load_modules(&mut self, modules: &[String], _skip: &[String]) -> Result<(), SysError> {
        self.calls.push(Call::LoadModules(modules.to_vec()));
        Ok(())
    }
    fn bring_up(&mut self, net: &NetPlan, _c: &config::Net) -> Result<DhcpAnswer, SysError> {
        self.calls
            .push(Call::BringUp(net.mac.map(|m| m.to_string())));
        Ok(self.dhcp.clone())
    }
    fn host_network(&mut self) -> DhcpAnswer {
        self.calls.push(Call::HostNetwork);
        self.dhcp.clone()
    }
    fn read_source_file(
        &mut self,
        from: &SyncSource,
        path: &str,
    ) -> Result<Option<Vec<u8>>, SysError> {
        self.calls
            .push(Call::ReadSourceFile(format!("{from}{path}")));
        Ok(self.cluster.clone())
    }
    fn read_signed_source_file(
        &mut self,
        from: &SyncSource,
        path: &str,
        trust: &crate::sync::trust::Trust,
    ) -> Result<Option<Vec<u8>>, SysError> {
        let keys: Vec<String> = trust.keys.iter().map(|k| k.id()).collect();
        self.calls.push(Call::ReadSourceFile(format!(
            "{from}{path} signed by {}",
            keys.join(",")
        )));
        Ok(self.cluster.clone())
    }
    fn boot_report(&mut self, _report: &BootReport, disk: Option<&str>) {
        self.calls.push(Call::BootReport(disk.map(String::from)));
    }
    fn resolve(&mut self, name: &str, ask: &Ask) -> Result<Ipv4Addr, SysError> {
        self.calls.push(Call::Resolve {
            name: name.into(),
            servers: ask.servers.clone(),
        });
        Ok(RESOLVED)
    }
    fn mkdir_p(&mut self, dir: &str) -> Result<(), SysError> {
        self.calls.push(Call::Mkdir(dir.into()));
        Ok(())
    }
    fn mount_nfs(&mut self, m: &NfsMount, at: &str) -> Result<(), SysError> {
        self.calls.push(Call::MountNfs {
            mount: m.clone(),
            at: at.into(),
        });
        Ok(())
    }
    fn probe_nfs(&mut self, at: &Endpoint) -> Result<(), SysError> {
        self.calls.push(Call::ProbeNfs(at.to_string()));
        match &self.probe_fails {
            Some(why) => Err(SysError::Io {
                what: at.to_string(),
                source: std::io::Error::other(why.clone()),
            }),
            None => Ok(()),
        }
    }
    fn serves_nfs(&mut self, _addr: IpAddr, _port: u16) -> bool {
        true
    }
    fn mounted_on(&mut self, at: &str) -> Option<(String, bool)> {
        self.calls.push(Call::MountedOn(at.into()));
        self.host_mount.clone()
    }
    fn move_mount(&mut self, from: &str, to: &str) -> Result<(), SysError> {
        self.calls.push(Call::MoveMount {
            from: from.into(),
            to: to.into(),
        });
        Ok(())
    }
    fn remount_rw(&mut self, at: &str) -> Result<(), SysError> {
        self.calls.push(Call::RemountRw(at.into()));
        Ok(())
    }
    fn unmount(&mut self, at: &str) -> Result<(), SysError> {
        self.calls.push(Call::Unmount(at.into()));
        Ok(())
    }
    fn prepare_disk(&mut self, d: &Disk) -> Result<PreparedDisk, SysError> {
        self.calls.push(Call::PrepareDisk(d.device.clone()));
        Ok(PreparedDisk {
            device: PathBuf::from(&d.device),
            fresh: true,
        })
    }
    fn inspect_disk(&mut self, d: &Disk) -> Result<(PathBuf, Found), SysError> {
        self.calls.push(Call::InspectDisk(d.device.clone()));
        Ok((PathBuf::from(&d.device), Found::Ours))
    }
    fn mount_local(&mut self, _d: &Disk, device: &Path, at: &str) -> Result<(), SysError> {
        self.calls.push(Call::MountLocal {
            device: device.display().to_string(),
            at: at.into(),
        });
        Ok(())
    }
    fn local_state(&mut self, at: &str) -> crate::sync::state::State {
        self.calls.push(Call::LocalState(at.into()));
        self.local
            .clone()
            .unwrap_or(crate::sync::state::State::Complete {
                generation: "g1".into(),
                verified: true,
            })
    }
    fn roll_back(&mut self, at: &str) -> Result<Option<crate::sync::state::State>, SysError> {
        self.calls.push(Call::RollBack(at.into()));
        Ok(self.rolled_back.clone())
    }
    fn sync(&mut self, src: &SyncSource, to: &str, opts: &Options) -> Result<Report, SysError> {
        self.calls.push(Call::Sync {
            src: src.to_string(),
            to: to.into(),
            exclude: opts.exclude.clone(),
            protect: opts.protect.clone(),
            checksum: opts.checksum,
            trust: opts
                .trust
                .as_ref()
                .map(|t| (t.keys.iter().map(|k| k.id()).collect(), t.allow_rollback)),
        });
        Ok(Report::default())
    }
    fn statelite(&mut self, root: &str, inputs: &Inputs) -> Result<Vec<Action>, SysError> {
        self.calls.push(Call::Statelite {
            root: root.into(),
            node: inputs.node.into(),
            entries: inputs.entries.len(),
            store: inputs.store.map(Mountable::to_string),
        });
        Ok(Vec::new())
    }
    fn overlay(&mut self, lower: &str, _scratch: &str, root: &str) -> Result<(), SysError> {
        self.calls.push(Call::Overlay {
            lower: lower.into(),
            root: root.into(),
        });
        Ok(())
    }
    fn cdsl(&mut self, root: &str, _cfg: &config::Cdsl, nodeid: &str) -> Result<(), SysError> {
        self.calls.push(Call::Cdsl {
            root: root.into(),
            nodeid: nodeid.into(),
        });
        Ok(())
    }
    fn run_hooks(&mut self, p: &Phase, _env: &[(String, String)]) -> Result<(), SysError> {
        self.calls.push(Call::Hooks {
            root: p.root.clone(),
            phase: p.phase.clone(),
        });
        Ok(())
    }
    fn install_bootloader(&mut self, i: &Install) -> Result<Vec<String>, SysError> {
        self.calls.push(Call::Bootloader {
            device: i.disk.device.clone(),
            partition: i.partition,
            root: i.root.clone(),
            append: i.append.clone(),
        });
        match &self.bootloader_fails {
            Some(why) => {
                Err(crate::modes::bootloader::BootloaderError::Refused(why.clone()).into())
            }
            None => Ok(Vec::new()),
        }
    }
    fn shell(&mut self, shell: &str) {
        self.calls.push(Call::Shell(shell.into()));
    }
    fn reap_orphans(&mut self) {}
    fn switch_root(&mut self, root: &str, init: &str, _args: &[String]) -> SysError {
        self.calls.push(Call::SwitchRoot {
            root: root.into(),
            init: init.into(),
        });
        SysError::SwitchRoot("recorded".into())
    }
}
