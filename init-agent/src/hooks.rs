//! Hook scripts run against the new root before switch_root, chrooted into
//! it so that they use the root's own tools (sh, awk, ssh-keygen).
//!
//! A phase's hooks are the executables in `<dir>/<phase>.d/` of the
//! initramfs and of the new root, run in name order; a name in the initramfs
//! hides the same name in the root. `/dev`, `/proc` and `/sys` are bound into
//! the root while they run, and a tmpfs on its `/run` carries the initramfs's
//! hooks, so nothing is written to the root but what the hooks write.
//! A failing hook is logged and the boot goes on: the root is complete, and
//! a node with one wrong file is better than a node that does not boot.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The hooks this repository ships (`hooks/`), which `mkinitramfs` installs.
pub const BUILTIN: &[(&str, &str, &str)] = &[
    (
        "post-sync",
        "10-machine-id",
        include_str!("../../hooks/post-sync.d/10-machine-id"),
    ),
    (
        "post-sync",
        "20-ssh-host-keys",
        include_str!("../../hooks/post-sync.d/20-ssh-host-keys"),
    ),
    (
        "post-sync",
        "30-hostname",
        include_str!("../../hooks/post-sync.d/30-hostname"),
    ),
    (
        "post-sync",
        "40-fstab",
        include_str!("../../hooks/post-sync.d/40-fstab"),
    ),
    (
        "post-sync",
        "50-udev-net-rules",
        include_str!("../../hooks/post-sync.d/50-udev-net-rules"),
    ),
    (
        "post-sync",
        "60-resolv-conf",
        include_str!("../../hooks/post-sync.d/60-resolv-conf"),
    ),
    (
        "post-sync",
        "70-boot-interface",
        include_str!("../../hooks/post-sync.d/70-boot-interface"),
    ),
];

/// Where a hook comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Initramfs,
    Root,
}

/// The hooks of one phase, in the order they run: names from both places,
/// sorted, the initramfs winning a tie, `skip` left out.
pub fn select(initramfs: &[String], root: &[String], skip: &[String]) -> Vec<(String, Origin)> {
    let mut all: BTreeMap<&str, Origin> = BTreeMap::new();
    for n in root {
        all.insert(n, Origin::Root);
    }
    for n in initramfs {
        all.insert(n, Origin::Initramfs);
    }
    all.into_iter()
        .filter(|(n, _)| !skip.iter().any(|s| s == n))
        .map(|(n, o)| (n.to_string(), o))
        .collect()
}

/// Executable regular files of a directory, by name; none when it is missing.
/// Editor and package-manager leftovers (`*~`, `*.dpkg-*`, dot files) are not hooks.
fn executables(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .filter_map(Result::ok)
        .filter(|e| {
            e.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && !n.ends_with('~') && !n.contains(".dpkg-"))
        .collect();
    out.sort();
    out
}

/// What one hook did.
#[derive(Debug, Clone)]
pub struct Ran {
    pub name: String,
    pub ok: bool,
    pub status: String,
}

/// One phase of hooks as the boot plan names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Phase {
    /// `post-sync`, `pre-switch`.
    pub phase: String,
    /// The new root the hooks run chrooted in.
    pub root: String,
    /// The hooks directory (`[hooks] dir`), looked up both in the running
    /// system and in `root`.
    pub dir: String,
    /// Hook names not to run (`[hooks] skip`).
    pub skip: Vec<String>,
    /// Seconds each hook may take before it is killed.
    pub timeout: u32,
}

/// A hook phase that could not run: the setup around its hooks failed (a
/// failing hook only logs).
#[derive(Debug, thiserror::Error)]
#[error("{phase} hooks: {why}")]
pub struct HookError {
    pub phase: String,
    pub why: SetupError,
}

/// What of the [`Scaffold`] could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Mount(#[from] crate::sys::MountError),
    #[error("{} has no /run for the hooks", .0.display())]
    NoRun(PathBuf),
    #[error("{}: {error}", .dir.display())]
    HooksDir { dir: PathBuf, error: io::Error },
    #[error("copying hook {name}: {error}")]
    Copy { name: String, error: io::Error },
}

/// What programs chrooted in the new root run with: its own.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs the hooks of `p` with `env` (besides PATH, HOME, LANG and
/// INITAGENT_PHASE).
pub fn run_phase(p: &Phase, env: &[(String, String)]) -> Result<Vec<Ran>, HookError> {
    let (root, dir, phase, skip) = (
        Path::new(&p.root),
        p.dir.as_str(),
        p.phase.as_str(),
        &p.skip,
    );
    let timeout = Duration::from_secs(p.timeout.into());
    let rel = format!("{}/{phase}.d", dir.trim_matches('/'));
    let here = Path::new("/").join(&rel);
    let inside = root.join(&rel);
    let hooks = select(&executables(&here), &executables(&inside), skip);
    if hooks.is_empty() {
        return Ok(Vec::new());
    }
    let _mounts = Scaffold::build(root, &here, &hooks).map_err(|why| HookError {
        phase: phase.into(),
        why,
    })?;
    let mut ran = Vec::new();
    for (name, origin) in hooks {
        let path_inside = match origin {
            Origin::Initramfs => format!("/run/init-agent/hooks/{name}"),
            Origin::Root => format!("/{rel}/{name}"),
        };
        let mut cmd = Command::new(&path_inside);
        cmd.env_clear()
            .env("PATH", PATH)
            .env("HOME", "/")
            .env("LANG", "C")
            .env("INITAGENT_PHASE", phase)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        crate::sys::chroot_before_exec(&mut cmd, root);
        let r = run_one(&name, &format!("hook {name}"), cmd, timeout);
        if r.ok {
            log::info!("hook {phase}/{name}: ok");
        } else {
            log::error!("hook {phase}/{name}: {} (the boot goes on)", r.status);
        }
        ran.push(r);
    }
    Ok(ran)
}

/// Runs one program of `root` chrooted in it with the hooks' scaffold
/// (/dev /proc /sys bound, a tmpfs /run) and their time limit and logging:
/// the boot loader's installer, which finds its disk through them.
pub fn run_in_root(
    root: &Path,
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<Ran, SetupError> {
    let _mounts = Scaffold::build(root, Path::new("/"), &[])?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("LANG", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::sys::chroot_before_exec(&mut cmd, root);
    Ok(run_one(program, program, cmd, timeout))
}

/// Runs one program with a time limit; its output goes to the log line by
/// line, after `log_as`.
fn run_one(name: &str, log_as: &str, mut cmd: Command, timeout: Duration) -> Ran {
    let fail = |status: String| Ran {
        name: name.to_string(),
        ok: false,
        status,
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot start: {e}")),
    };
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_string(&mut text);
        }
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut text);
        }
        let _ = tx.send((child.wait(), text));
    });
    let (status, text) = match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(_) => {
            crate::sys::kill(pid);
            let _ = rx.recv_timeout(Duration::from_secs(5));
            return fail(format!("killed after {} s", timeout.as_secs()));
        }
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        log::info!("{log_as}: {line}");
    }
    match status {
        Ok(s) if s.success() => Ran {
            name: name.to_string(),
            ok: true,
            status: s.to_string(),
        },
        Ok(s) => fail(s.to_string()),
        Err(e) => fail(format!("waiting: {e}")),
    }
}

/// /dev /proc /sys bound into the root and a tmpfs on its /run holding the
/// initramfs's hooks; undone when dropped.
struct Scaffold {
    mounted: Vec<PathBuf>,
}

impl Scaffold {
    fn build(root: &Path, here: &Path, hooks: &[(String, Origin)]) -> Result<Scaffold, SetupError> {
        let mut s = Scaffold {
            mounted: Vec::new(),
        };
        for m in ["dev", "proc", "sys"] {
            let target = root.join(m);
            if target.is_dir() && Path::new("/").join(m).join(".").exists() {
                crate::sys::bind(&Path::new("/").join(m), &target, false)?;
                s.mounted.push(target);
            }
        }
        let run = root.join("run");
        if !run.is_dir() {
            return Err(SetupError::NoRun(root.into()));
        }
        crate::sys::mount_tmpfs(&run, "mode=0755")?;
        s.mounted.push(run.clone());
        let to = run.join("init-agent/hooks");
        std::fs::create_dir_all(&to).map_err(|error| SetupError::HooksDir {
            dir: to.clone(),
            error,
        })?;
        for (name, origin) in hooks {
            if *origin == Origin::Initramfs {
                std::fs::copy(here.join(name), to.join(name)).map_err(|error| {
                    SetupError::Copy {
                        name: name.clone(),
                        error,
                    }
                })?;
            }
        }
        Ok(s)
    }
}

impl Drop for Scaffold {
    fn drop(&mut self) {
        for m in self.mounted.iter().rev() {
            if let Err(e) = crate::sys::unmount(m, true) {
                log::warn!("{e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn initramfs_hooks_hide_the_roots_and_skip_is_honoured() {
        let got = select(
            &v(&["10-machine-id", "40-fstab"]),
            &v(&["05-site", "40-fstab", "90-late"]),
            &v(&["90-late"]),
        );
        assert_eq!(
            got,
            vec![
                ("05-site".to_string(), Origin::Root),
                ("10-machine-id".to_string(), Origin::Initramfs),
                ("40-fstab".to_string(), Origin::Initramfs),
            ]
        );
    }

    /// The shipped hooks, chrooted into a real Debian root as the boot runs
    /// them (as root, in a private mount namespace).
    #[test]
    fn shipped_hooks_give_the_node_its_identity_and_fstab() {
        let Ok(src) = std::env::var("INIT_AGENT_TEST_ROOT") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs INIT_AGENT_TEST_ROOT"
            );
            eprintln!("INIT_AGENT_TEST_ROOT not set: skipped (./test.sh sets it)");
            return;
        };
        std::thread::spawn(move || {
            crate::sys::private_mount_namespace().unwrap();
            let root = std::env::temp_dir().join(format!("ia-hooks-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).unwrap();
            let opts = crate::sync::Options {
                quiet: true,
                no_marker: true,
                exclude: vec!["/var/cache/apt/archives/*.deb".into()],
                ..Default::default()
            };
            crate::sync::run(&crate::sync::SyncSource::Dir(src.into()), &root, &opts).unwrap();
            let dir = "/usr/lib/init-agent/hooks";
            let hooks = root.join("usr/lib/init-agent/hooks/post-sync.d");
            std::fs::create_dir_all(&hooks).unwrap();
            for (_, name, text) in BUILTIN {
                std::fs::write(hooks.join(name), text).unwrap();
                std::fs::set_permissions(hooks.join(name), std::fs::Permissions::from_mode(0o755))
                    .unwrap();
            }
            std::fs::write(hooks.join("65-fails"), "#!/bin/sh\necho broken >&2\nexit 3\n").unwrap();
            std::fs::write(hooks.join("70-hangs"), "#!/bin/sh\nsleep 60\n").unwrap();
            for n in ["65-fails", "70-hangs"] {
                std::fs::set_permissions(hooks.join(n), std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            std::fs::write(
                root.join("etc/fstab"),
                "# master\nUUID=1234 / ext4 errors=remount-ro 0 1\nUUID=99 none swap sw 0 0\nnfs:/home /home nfs defaults 0 0\n",
            )
            .unwrap();
            std::fs::write(root.join("etc/machine-id"), "0123456789abcdef0123456789abcdef\n").unwrap();
            // The standard root has no resolv.conf of its own.
            let _ = std::fs::remove_file(root.join("etc/resolv.conf"));
            std::fs::create_dir_all(root.join("etc/udev/rules.d")).unwrap();
            // As ifupdown and udev leave it.
            std::fs::create_dir_all(root.join("etc/network")).unwrap();
            let udevd = root.join("lib/systemd/systemd-udevd");
            std::fs::create_dir_all(udevd.parent().unwrap()).unwrap();
            std::fs::write(&udevd, "").unwrap();
            std::fs::write(root.join("etc/udev/rules.d/70-persistent-net.rules"), "master NICs\n").unwrap();
            let env = |first: &str| {
                vec![
                    ("INITAGENT_FIRST_SYNC".to_string(), first.to_string()),
                    ("INITAGENT_HOSTNAME".to_string(), "cn07".to_string()),
                    ("INITAGENT_DNS".to_string(), "10.0.2.3 10.0.2.4".to_string()),
                    ("INITAGENT_SEARCH".to_string(), "cluster".to_string()),
                    (
                        "INITAGENT_FSTAB".to_string(),
                        "LABEL=swap none swap sw 0 0\nLABEL=root / ext4 defaults 0 0".to_string(),
                    ),
                ]
            };
            let mut phase = Phase {
                phase: "post-sync".into(),
                root: root.display().to_string(),
                dir: dir.into(),
                skip: Vec::new(),
                timeout: 2,
            };
            let ran = run_phase(&phase, &env("1")).unwrap();
            let status: Vec<(&str, bool)> = ran.iter().map(|r| (r.name.as_str(), r.ok)).collect();
            assert_eq!(
                status,
                [
                    ("10-machine-id", true),
                    ("20-ssh-host-keys", true),
                    ("30-hostname", true),
                    ("40-fstab", true),
                    ("50-udev-net-rules", true),
                    ("60-resolv-conf", true),
                    ("65-fails", false),
                    ("70-boot-interface", true),
                    ("70-hangs", false),
                ]
            );
            assert!(ran[8].status.contains("killed after 2 s"), "{}", ran[8].status);
            // The host's own routed interface stands for the boot's here:
            // the default route's, else the first with a route.
            let table = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
            let routes: Vec<Vec<&str>> = table
                .lines()
                .skip(1)
                .map(|l| l.split_whitespace().collect())
                .collect();
            let routed = routes
                .iter()
                .find(|r| r.get(1) == Some(&"00000000"))
                .or(routes.first())
                .and_then(|r| r.first())
                .map(|d| d.to_string());
            if let Some(dev) = routed {
                let link =
                    std::fs::read_to_string(root.join("etc/systemd/network/10-init-agent-boot.link"))
                        .unwrap();
                assert!(link.contains(&format!("[Link]\nName={dev}\n")), "{link}");
                let manual =
                    std::fs::read_to_string(root.join("etc/network/interfaces.d/init-agent-boot"))
                        .unwrap();
                assert!(manual.contains(&format!("iface {dev} inet manual")), "{manual}");
            }
            let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
            let id = read("etc/machine-id");
            assert_eq!(id.trim().len(), 32);
            assert_ne!(id, "0123456789abcdef0123456789abcdef\n", "the standard's id was kept");
            assert_eq!(read("etc/hostname"), "cn07\n");
            let fstab = read("etc/fstab");
            let want = "# master\n#init-agent# UUID=1234 / ext4 errors=remount-ro 0 1\n#init-agent# UUID=99 none swap sw 0 0\nnfs:/home /home nfs defaults 0 0\n# init-agent: begin (the local disk, written at every boot)\nLABEL=swap none swap sw 0 0\nLABEL=root / ext4 defaults 0 0\n# init-agent: end\n";
            assert_eq!(fstab, want);
            assert!(!root.join("etc/udev/rules.d/70-persistent-net.rules").exists());
            let resolv = "# init-agent: the resolvers of this boot\nsearch cluster\nnameserver 10.0.2.3\nnameserver 10.0.2.4\n";
            assert_eq!(read("etc/resolv.conf"), resolv);
            // A later sync: the identity is kept, the fstab edit is the same.
            phase.skip = vec!["65-fails".to_string(), "70-hangs".to_string()];
            let ran = run_phase(&phase, &env("0")).unwrap();
            assert!(ran.iter().all(|r| r.ok), "{ran:?}");
            assert_eq!(read("etc/machine-id"), id);
            assert_eq!(read("etc/fstab"), want);
            assert_eq!(read("etc/resolv.conf"), resolv);
            // The root's own resolv.conf (here a link, as systemd-resolved's) stays.
            std::fs::remove_file(root.join("etc/resolv.conf")).unwrap();
            std::os::unix::fs::symlink("../run/systemd/resolve/stub-resolv.conf", root.join("etc/resolv.conf")).unwrap();
            run_phase(&phase, &env("0")).unwrap();
            assert_eq!(
                std::fs::read_link(root.join("etc/resolv.conf")).unwrap(),
                std::path::Path::new("../run/systemd/resolve/stub-resolv.conf")
            );
            // A root without udev gets no .link file (nothing there renames).
            std::fs::remove_file(&udevd).unwrap();
            std::fs::remove_dir_all(root.join("etc/systemd/network")).unwrap();
            run_phase(&phase, &env("0")).unwrap();
            assert!(!root.join("etc/systemd/network").exists());
            // Nothing stays mounted in the root.
            let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
            assert!(!mounts.contains(root.to_str().unwrap()), "{mounts}");
            std::fs::remove_dir_all(&root).unwrap();
        })
        .join()
        .unwrap();
    }
}
