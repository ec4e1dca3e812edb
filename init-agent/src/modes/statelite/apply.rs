//! The executor: runs statelite actions inside a root directory. Every path is
//! resolved with RESOLVE_IN_ROOT, so a symlink in the image (or in a litetree,
//! or in the persistent store) can never lead a copy, link or mount outside it.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{self as rfs, Mode, OFlags};

use super::plan::{
    link_target, Action, Mountable, Probe, DEFAULT, LITEIMG_STATE, LOG, STATELITE, TMPFS,
};
use crate::sys;
pub use crate::sys::root::Root;

#[derive(Debug, thiserror::Error)]
#[error("statelite: {action}: {cause}")]
pub struct ApplyError {
    pub action: String,
    pub cause: StepError,
}

/// Why one action failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Mount(#[from] sys::MountError),
    /// A bind's source or target not reached in the root.
    #[error("{end}: {error}")]
    BindEnd { end: &'static str, error: io::Error },
    #[error("{LITEIMG_STATE} is not liteimg's record: {0}")]
    Record(#[from] serde_json::Error),
}

/// [`LITEIMG_STATE`]: the link entries `statelite liteimg` prepared.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LiteimgRecord {
    links: Vec<String>,
}

impl Probe for Root {
    fn found(&self, path: &str) -> Option<bool> {
        match self.kind(path, true)? {
            rfs::FileType::Directory => {
                let dir = self.open_dir(path).ok()?;
                Some(
                    crate::sys::fsops::read_names(dir.as_fd())
                        .map(|n| !n.is_empty())
                        .unwrap_or(false),
                )
            }
            _ => Some(true),
        }
    }

    fn is_prepared_link(&self, path: &str) -> bool {
        self.links_to(path, &link_target(path, &format!("{TMPFS}{path}")))
    }

    fn writable(&self) -> bool {
        Root::writable(self)
    }
}

/// Runs the actions in order, logging each to /.statelite/statelite.log once
/// the layout exists. Warnings go to the log and to stderr, never silently.
pub fn run(root: &Root, actions: &[Action]) -> Result<(), ApplyError> {
    run_logged(root, actions, true)
}

/// Runs `statelite liteimg`'s actions on an image: like [`run`], but no
/// boot log is written into the image's own /.statelite.
pub fn run_in_image(root: &Root, actions: &[Action]) -> Result<(), ApplyError> {
    run_logged(root, actions, false)
}

fn run_logged(root: &Root, actions: &[Action], log: bool) -> Result<(), ApplyError> {
    for action in actions {
        if let Action::Warn(w) = action {
            eprintln!("init-agent statelite: warning: {w}");
        }
        step(root, action).map_err(|cause| ApplyError {
            action: action.to_string(),
            cause,
        })?;
        if log {
            append_log(root, action);
        }
    }
    Ok(())
}

fn append_log(root: &Root, action: &Action) {
    let Ok((dir, name)) = root.parent(LOG) else {
        return;
    };
    let Ok(fd) = rfs::openat(
        &dir,
        &name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    ) else {
        return;
    };
    // The log is a courtesy for admins; a full tmpfs must not stop the boot.
    let _ = std::fs::File::from(fd).write_all(format!("{action}\n").as_bytes());
}

fn step(root: &Root, action: &Action) -> Result<(), StepError> {
    match action {
        Action::MountTmpfs(target) => {
            root.mkdir_p(target)?;
            let fd = root.reach(target, true)?;
            sys::mount_tmpfs(&Root::proc(&fd), "mode=0755")?;
        }
        Action::Mkdir(p) => root.mkdir_p(p)?,
        Action::MountSource {
            source,
            target,
            read_only,
        } => {
            let fd = root.reach(target, true)?;
            let at = Root::proc(&fd);
            match source {
                // A local directory (tests, --state DIR): outside the root by design.
                Mountable::Dir(dir) => sys::bind(Path::new(dir), &at, *read_only),
                Mountable::Nfs(m) => sys::mount_fs(&m.source, &at, m.fstype, *read_only, &m.data),
            }?;
        }
        Action::Copy {
            from,
            to,
            if_missing,
        } => {
            if *if_missing && root.kind(to, false).is_some() {
                return Ok(());
            }
            crate::sync::copy_in_root(root, from, to)?;
        }
        Action::Create { path, dir } => create(root, path, *dir)?,
        Action::Concat { from, to } => concat(root, from, to)?,
        Action::Symlink { path, target } => {
            let parent = path.rsplit_once('/').map_or("/", |(d, _)| d);
            root.mkdir_p(parent)?;
            let (dir, name) = root.parent(path)?;
            rfs::symlinkat(target.as_str(), &dir, &name).map_err(io::Error::from)?;
        }
        Action::Bind {
            source,
            target,
            read_only,
        } => {
            let s = root
                .reach(source, true)
                .map_err(|error| StepError::BindEnd {
                    end: "source",
                    error,
                })?;
            let t = root
                .reach(target, true)
                .map_err(|error| StepError::BindEnd {
                    end: "target",
                    error,
                })?;
            sys::bind(&Root::proc(&s), &Root::proc(&t), *read_only)?;
        }
        Action::PrepareLink { path } => prepare_link(root, path)?,
        Action::RestoreLink { path } => restore_link(root, path)?,
        Action::RecordLinks(links) => {
            let text = serde_json::to_string_pretty(&LiteimgRecord {
                links: links.clone(),
            })?;
            replace_file(root, LITEIMG_STATE)?.write_all(text.as_bytes())?;
        }
        Action::Warn(_) => {}
    }
    Ok(())
}

/// An empty file or a directory at `path`, its parents made; whatever is
/// already there (file, directory or link) is left alone.
fn create(root: &Root, path: &str, dir: bool) -> io::Result<()> {
    if root.kind(path, false).is_some() {
        return Ok(());
    }
    if dir {
        return root.mkdir_p(path);
    }
    let parent = path.rsplit_once('/').map_or("/", |(d, _)| d);
    root.mkdir_p(parent)?;
    let (dir, name) = root.parent(path)?;
    rfs::openat(
        &dir,
        &name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )?;
    Ok(())
}

fn concat(root: &Root, from: &[String], to: &str) -> io::Result<()> {
    let mut out = replace_file(root, to)?;
    for f in from {
        let rel = f.trim_start_matches('/');
        let fd = root.open_file(rel)?;
        let mut data = Vec::new();
        std::fs::File::from(fd).read_to_end(&mut data)?;
        out.write_all(&data)?;
    }
    Ok(())
}

/// liteimg for one link entry: the original goes to /.default<path> and
/// <path> becomes a relative link into /.statelite/tmpfs.
fn prepare_link(root: &Root, path: &str) -> io::Result<()> {
    let default = format!("{DEFAULT}{path}");
    let parent = default.rsplit_once('/').map_or("/", |(d, _)| d);
    root.mkdir_p(parent)?;
    let (odir, oname) = root.parent(path)?;
    let (ddir, dname) = root.parent(&default)?;
    if root.kind(&default, false).is_some() {
        // Never guess which copy the admin wants.
        return Err(io::Error::other(format!(
            "both {path} and {default} exist: remove the one that is stale"
        )));
    }
    rfs::renameat(&odir, &oname, &ddir, &dname)?;
    let target = link_target(path, &format!("{TMPFS}{path}"));
    rfs::symlinkat(target.as_str(), &odir, &oname)?;
    Ok(())
}

/// Undoes [`prepare_link`]: only liteimg's own link is removed, and only
/// once its original is known to be in /.default<path>, so nothing is lost.
fn restore_link(root: &Root, path: &str) -> io::Result<()> {
    let default = format!("{DEFAULT}{path}");
    if !root.is_prepared_link(path) {
        return Err(io::Error::other(format!(
            "{path} is not liteimg's link: left as it is"
        )));
    }
    if root.kind(&default, false).is_none() {
        return Err(io::Error::other(format!(
            "{default} is missing: the link at {path} is kept (restore the original by hand)"
        )));
    }
    let (odir, oname) = root.parent(path)?;
    let (ddir, dname) = root.parent(&default)?;
    rfs::unlinkat(&odir, &oname, rfs::AtFlags::empty())?;
    rfs::renameat(&ddir, &dname, &odir, &oname)?;
    Ok(())
}

/// The link entries the last `statelite liteimg` recorded; none before its
/// first run.
pub fn recorded_links(root: &Root) -> Result<Vec<String>, ApplyError> {
    let failed = |cause: StepError| ApplyError {
        action: format!("read {LITEIMG_STATE}"),
        cause,
    };
    let fd = match root.open_file(LITEIMG_STATE) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(failed(e.into())),
    };
    let mut text = String::new();
    std::fs::File::from(fd)
        .read_to_string(&mut text)
        .map_err(|e| failed(e.into()))?;
    let record: LiteimgRecord = serde_json::from_str(&text).map_err(|e| failed(e.into()))?;
    Ok(record.links)
}

/// The file at `path` emptied (or created, parents made) for writing.
fn replace_file(root: &Root, path: &str) -> io::Result<std::fs::File> {
    let parent = path.rsplit_once('/').map_or("/", |(d, _)| d);
    root.mkdir_p(parent)?;
    let (dir, name) = root.parent(path)?;
    let fd = rfs::openat(
        &dir,
        &name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )?;
    Ok(std::fs::File::from(fd))
}

/// Whether `root` already has the statelite tmpfs (a second apply on a live root).
pub fn layout_mounted(root: &Root) -> bool {
    let Ok(top) = root.reach("/", true) else {
        return false;
    };
    let Ok(sl) = root.reach(STATELITE, true) else {
        return false;
    };
    match (rfs::fstat(&top), rfs::fstat(&sl)) {
        (Ok(a), Ok(b)) => a.st_dev != b.st_dev,
        _ => false,
    }
}
