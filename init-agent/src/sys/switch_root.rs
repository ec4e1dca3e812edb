//! Into the real root: move /dev /proc /sys /run below it, free the
//! initramfs, make the new root `/`, chroot, exec its init. Only returns with
//! the reason it could not.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

/// statfs magic numbers of the file systems the kernel unpacks an initramfs into.
const RAMFS_MAGIC: i64 = 0x8584_58f6;
const TMPFS_MAGIC: i64 = 0x0102_1994;

pub fn switch_root(new_root: &Path, init: &str, args: &[String]) -> String {
    for m in ["/dev", "/proc", "/sys", "/run"] {
        let target = new_root.join(m.trim_start_matches('/'));
        if !target.is_dir() {
            return format!("{} has no {m} to move the mount to", new_root.display());
        }
        if let Err(e) = crate::sys::move_mount(Path::new(m), &target) {
            return e.to_string();
        }
    }
    if !init_in_root(new_root, init) {
        return format!("{init} not found in {}", new_root.display());
    }
    if rustix::process::getpid().is_init() {
        free_initramfs();
    }
    if let Err(e) = std::env::set_current_dir(new_root) {
        return format!("chdir {}: {e}", new_root.display());
    }
    if let Err(e) = crate::sys::move_mount(new_root, Path::new("/")) {
        return e.to_string();
    }
    if let Err(e) = rustix::process::chroot(".") {
        return format!("chroot: {e}");
    }
    if let Err(e) = std::env::set_current_dir("/") {
        return format!("chdir /: {e}");
    }
    let uptime = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
    log::info!(
        "switch_root: exec {init} at {} s after the kernel started",
        uptime.split_whitespace().next().unwrap_or("?")
    );
    let err = std::process::Command::new(init).args(args).exec();
    format!("exec {init}: {err}")
}

/// Whether `init` is a file in `new_root`, its links resolved inside it: a
/// merged-/usr Debian's /sbin/init is a link to /lib/systemd/systemd, which
/// the initramfs does not have.
fn init_in_root(new_root: &Path, init: &str) -> bool {
    crate::sys::root::Root::open(new_root)
        .ok()
        .and_then(|r| r.kind(init, true))
        .is_some_and(|k| k == rustix::fs::FileType::RegularFile)
}

/// The initramfs stays in RAM until its files are deleted: delete them, as
/// busybox's switch_root does, but only on a ramfs/tmpfs root and never
/// across a mount point (the new root and everything moved are mounts).
fn free_initramfs() {
    let is_ram = rustix::fs::statfs("/")
        .map(|s| matches!(s.f_type, RAMFS_MAGIC | TMPFS_MAGIC))
        .unwrap_or(false);
    if !is_ram {
        return;
    }
    match std::fs::symlink_metadata("/") {
        Ok(m) => {
            let freed = free_tree(Path::new("/"), m.dev());
            log::debug!("initramfs: {freed} entries freed");
        }
        Err(e) => log::warn!("initramfs not freed: /: {e}"),
    }
}

/// Deletes everything below `dir` that is on device `dev`, depth first,
/// without following symlinks; returns how many entries went.
pub fn free_tree(dir: &Path, dev: u64) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.filter_map(Result::ok) {
        let path = e.path();
        let Ok(m) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if m.dev() != dev {
            continue;
        }
        if m.is_dir() {
            n += free_tree(&path, dev);
            // A directory holding a mount point stays, as does the mount.
            if std::fs::remove_dir(&path).is_ok() {
                n += 1;
            }
        } else if std::fs::remove_file(&path).is_ok() {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_found_through_the_new_root_s_own_absolute_links() {
        let t = std::env::temp_dir().join(format!("ia-init-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(t.join("usr/lib/systemd")).unwrap();
        std::fs::create_dir_all(t.join("usr/sbin")).unwrap();
        // A name no host has: found only inside the new root.
        std::fs::write(t.join("usr/lib/systemd/ia-test-systemd"), "").unwrap();
        // Debian bookworm: /sbin -> usr/sbin, /lib -> usr/lib, and
        // /sbin/init -> /lib/systemd/systemd, absolute (the name changed).
        std::os::unix::fs::symlink("usr/sbin", t.join("sbin")).unwrap();
        std::os::unix::fs::symlink("usr/lib", t.join("lib")).unwrap();
        std::os::unix::fs::symlink("/lib/systemd/ia-test-systemd", t.join("usr/sbin/init"))
            .unwrap();
        std::os::unix::fs::symlink("/lib/systemd/gone", t.join("usr/sbin/broken")).unwrap();
        assert!(init_in_root(&t, "/sbin/init"));
        assert!(!init_in_root(&t, "/sbin/broken"));
        assert!(!init_in_root(&t, "/usr/sbin"), "a directory is no init");
        assert!(!init_in_root(&t, "/sbin/none"));
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn freeing_stops_at_mount_points_and_never_follows_symlinks() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("needs root: skipped");
            return;
        }
        std::thread::spawn(|| {
            crate::sys::private_mount_namespace().unwrap();
            let t = std::env::temp_dir().join(format!("ia-free-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&t);
            std::fs::create_dir_all(t.join("a/b")).unwrap();
            std::fs::create_dir_all(t.join("mnt")).unwrap();
            std::fs::create_dir_all(t.join("outside")).unwrap();
            std::fs::write(t.join("a/b/f"), "x").unwrap();
            std::fs::write(t.join("outside/keep"), "x").unwrap();
            let ram = t.join("ram");
            std::fs::create_dir_all(&ram).unwrap();
            crate::sys::mount_tmpfs(&ram, "").unwrap();
            std::fs::create_dir_all(ram.join("a/b")).unwrap();
            std::fs::create_dir_all(ram.join("mnt")).unwrap();
            std::fs::write(ram.join("a/b/f"), "x").unwrap();
            std::os::unix::fs::symlink(t.join("outside"), ram.join("link")).unwrap();
            crate::sys::bind(&t.join("mnt"), &ram.join("mnt"), false).unwrap();
            std::fs::write(ram.join("mnt/on-the-mount"), "x").unwrap();
            let dev = std::fs::symlink_metadata(&ram).unwrap().dev();
            // a, a/b, a/b/f, link: the mount point and what is on it stay.
            assert_eq!(free_tree(&ram, dev), 4);
            assert!(ram.join("mnt/on-the-mount").exists());
            assert!(t.join("outside/keep").exists());
            assert!(!ram.join("a").exists());
            crate::sys::unmount(&ram.join("mnt"), false).unwrap();
            crate::sys::unmount(&ram, false).unwrap();
            std::fs::remove_dir_all(&t).unwrap();
        })
        .join()
        .unwrap();
    }
}
