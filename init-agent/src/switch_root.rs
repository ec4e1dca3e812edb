//! Into the real root: move /dev /proc /sys /run below it, make it `/`,
//! chroot, exec its init. Only returns with the reason it could not.

use std::os::unix::process::CommandExt;
use std::path::Path;

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
    if !new_root.join(init.trim_start_matches('/')).exists() {
        return format!("{init} not found in {}", new_root.display());
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
    log::info!("switch_root: exec {init}");
    let err = std::process::Command::new(init).args(args).exec();
    format!("exec {init}: {err}")
}
