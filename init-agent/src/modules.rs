//! Kernel modules from the initramfs: `modules.dep` resolution (dependencies
//! first, as modprobe does) and loading with finit_module, compressed modules
//! handed to the kernel to decompress.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Modules a node needs on QEMU and common hardware to reach the NFS root
/// and its local disk; `[boot] modules` and `--module` add to them.
pub const DEFAULT_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "nfsv4",
    "nfsv3",
    "overlay",
    "ext4",
    "crc32c_generic",
];

/// What the kernel NFS client needs (their dependencies follow them).
pub const NFS_MODULES: &[&str] = &["nfsv4", "nfsv3"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModuleError {
    #[error("modules.dep line {line}: {reason}")]
    Dep { line: usize, reason: String },
    #[error("module {0}: not in modules.dep nor built in")]
    Unknown(String),
    /// Reading the module database or loading a module, with the OS's reason.
    #[error("{what}: {why}")]
    Io { what: String, why: String },
}

/// `modules.dep` (and `modules.builtin`) of one kernel release.
#[derive(Debug, Default)]
pub struct ModuleDb {
    /// Module name → (path relative to the release directory, its dependencies).
    modules: HashMap<String, (String, Vec<String>)>,
    builtin: BTreeSet<String>,
}

/// `kernel/fs/nfs/nfs-v4.ko.xz` → `nfs_v4`: the kernel treats - and _ alike.
pub fn name_of(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split(".ko").next().unwrap_or(base);
    stem.replace('-', "_")
}

impl ModuleDb {
    pub fn parse(dep: &str, builtin: &str) -> Result<ModuleDb, ModuleError> {
        let mut modules = HashMap::new();
        for (i, line) in dep.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (module, deps) = line.split_once(':').ok_or_else(|| ModuleError::Dep {
                line: i + 1,
                reason: "no ':'".into(),
            })?;
            let module = module.trim();
            if !module.contains(".ko") {
                return Err(ModuleError::Dep {
                    line: i + 1,
                    reason: format!("{module:?} is not a .ko path"),
                });
            }
            let deps = deps.split_whitespace().map(String::from).collect();
            modules.insert(name_of(module), (module.to_string(), deps));
        }
        let builtin = builtin.lines().map(name_of).collect();
        Ok(ModuleDb { modules, builtin })
    }

    pub fn load(release_dir: &Path) -> std::io::Result<ModuleDb> {
        let dep = std::fs::read_to_string(release_dir.join("modules.dep"))?;
        let builtin =
            std::fs::read_to_string(release_dir.join("modules.builtin")).unwrap_or_default();
        ModuleDb::parse(&dep, &builtin).map_err(std::io::Error::other)
    }

    /// Paths to load, dependencies first, each once; built-in modules are skipped.
    pub fn order(&self, wanted: &[String]) -> Result<Vec<String>, ModuleError> {
        let mut out: Vec<String> = Vec::new();
        for w in wanted {
            let name = name_of(w);
            let Some((path, deps)) = self.modules.get(&name) else {
                if self.builtin.contains(&name) {
                    continue;
                }
                return Err(ModuleError::Unknown(w.clone()));
            };
            // modules.dep lists a module's dependencies users-first; load from the end.
            for p in deps.iter().rev().chain(std::iter::once(path)) {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
        }
        Ok(out)
    }
}

impl ModuleDb {
    /// Like [`ModuleDb::order`], but a module this kernel lacks is left out and
    /// returned beside the order, so the caller can say so and go on.
    pub fn order_available(&self, wanted: &[String]) -> (Vec<String>, Vec<ModuleError>) {
        let mut order: Vec<String> = Vec::new();
        let mut missing = Vec::new();
        for w in wanted {
            match self.order(std::slice::from_ref(w)) {
                Ok(paths) => {
                    for p in paths {
                        if !order.contains(&p) {
                            order.push(p);
                        }
                    }
                }
                Err(e) => missing.push(e),
            }
        }
        (order, missing)
    }
}

/// Loads one module file; "already loaded" counts as loaded.
pub fn insert(path: &Path) -> std::io::Result<()> {
    let fd = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let name = path.to_string_lossy();
    // MODULE_INIT_COMPRESSED_FILE: the kernel decompresses .xz/.zst/.gz itself.
    let flags = if name.ends_with(".xz") || name.ends_with(".zst") || name.ends_with(".gz") {
        4
    } else {
        0
    };
    match rustix::system::finit_module(&fd, c"", flags) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Loads the initramfs's default modules but `skip`, and `extra`, with their
/// dependencies, from /lib/modules of the running kernel.
pub fn load_boot(extra: &[String], skip: &[String]) -> Result<(), ModuleError> {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let dir = Path::new("/lib/modules").join(&release);
    let db = ModuleDb::load(&dir).map_err(|e| ModuleError::Io {
        what: format!("modules of {release}"),
        why: e.to_string(),
    })?;
    let mut wanted: Vec<String> = DEFAULT_MODULES
        .iter()
        .filter(|m| !skip.iter().any(|s| s == *m))
        .map(|s| s.to_string())
        .collect();
    wanted.extend(extra.iter().cloned());
    let (order, missing) = db.order_available(&wanted);
    for e in missing {
        log::warn!("{e}");
    }
    let mut loaded = 0;
    for p in order {
        let path = dir.join(&p);
        if !path.exists() {
            log::warn!("module {p}: not in this initramfs");
            continue;
        }
        insert(&path).map_err(|e| ModuleError::Io {
            what: format!("loading {p}"),
            why: e.to_string(),
        })?;
        log::debug!("module {p} loaded");
        loaded += 1;
    }
    log::info!("{loaded} kernel modules loaded");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/fs/nfs/nfsv4.ko: kernel/fs/nfs/nfs.ko kernel/fs/lockd/lockd.ko kernel/net/sunrpc/sunrpc.ko kernel/net/dns_resolver/dns_resolver.ko
kernel/fs/nfs/nfs.ko: kernel/fs/lockd/lockd.ko kernel/net/sunrpc/sunrpc.ko
kernel/fs/lockd/lockd.ko: kernel/net/sunrpc/sunrpc.ko
kernel/net/sunrpc/sunrpc.ko:
kernel/net/dns_resolver/dns_resolver.ko:
kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz
kernel/drivers/net/net_failover.ko.xz:
";

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn dependencies_come_first_once_and_builtins_are_skipped() {
        let db = ModuleDb::parse(DEP, "kernel/fs/ext4/ext4.ko\n").unwrap();
        let order = db
            .order(&v(&["nfsv4", "ext4", "virtio-net", "nfs"]))
            .unwrap();
        assert_eq!(
            order,
            v(&[
                "kernel/net/dns_resolver/dns_resolver.ko",
                "kernel/net/sunrpc/sunrpc.ko",
                "kernel/fs/lockd/lockd.ko",
                "kernel/fs/nfs/nfs.ko",
                "kernel/fs/nfs/nfsv4.ko",
                "kernel/drivers/net/net_failover.ko.xz",
                "kernel/drivers/net/virtio_net.ko.xz",
            ])
        );
    }

    #[test]
    fn available_order_leaves_out_unknown_modules_and_names_them() {
        let db = ModuleDb::parse(DEP, "").unwrap();
        let (order, missing) = db.order_available(&v(&["nfs", "e1000e", "lockd"]));
        assert_eq!(
            order,
            v(&[
                "kernel/net/sunrpc/sunrpc.ko",
                "kernel/fs/lockd/lockd.ko",
                "kernel/fs/nfs/nfs.ko"
            ])
        );
        assert_eq!(missing, vec![ModuleError::Unknown("e1000e".into())]);
    }

    #[test]
    fn unknown_modules_and_bad_lines_are_named() {
        let db = ModuleDb::parse(DEP, "").unwrap();
        assert_eq!(
            db.order(&v(&["e1000e"])),
            Err(ModuleError::Unknown("e1000e".into()))
        );
        assert!(ModuleDb::parse("garbage line\n", "")
            .unwrap_err()
            .to_string()
            .contains("line 1"));
        assert_eq!(name_of("kernel/fs/nfs/nfs-v4.ko.zst"), "nfs_v4");
    }
}
