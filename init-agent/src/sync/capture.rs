//! `init-agent capture`: the reverse of a sync, for making a hand-tuned
//! golden node the standard (KA's and Clonezilla's "clone the golden node").
//! The node's root is copied by the sync engine, with its exactness, into a
//! new directory, leaving out what is the node's own: what a sync keeps per
//! node (`SYNC_PROTECT`: identity and logs) and never copies (`SYNC_EXCLUDE`:
//! kernel file systems), plus what only a running node has (its temporary
//! files, swap files, NIC names, the mounts below it that are not its disk).
//! Then the captured tree gets its manifest. It never writes into a standard
//! root: the admin switches the export to the new directory when satisfied.
//!
//! `left_out` is the plan (pure); `run` checks the destination and executes.

use std::io;
use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::manifest;
use super::pattern::PatternSet;
use super::{Options, Report, SyncError, SyncSource, STATE_DIR};
use crate::boot::plan::{SYNC_EXCLUDE, SYNC_PROTECT};
use crate::sys::fsops;
use crate::sys::mountinfo::{self, Mount};

/// What a running node has that is neither the standard's nor the node's
/// identity, beside the boot's own lists.
const NODE_STATE: &[(&str, &str)] = &[
    ("/tmp/**", "temporary files"),
    // The post-sync hook 50-udev-net-rules removes it from older standards.
    (
        "/etc/udev/rules.d/70-persistent-net.rules",
        "the NIC names of this machine",
    ),
    ("/lost+found", "made by mke2fs on the node's disk"),
];

/// Written empty in the capture: systemd's first-boot logic (and the
/// post-sync hook 10-machine-id) then gives each node its own, as Debian's
/// images ship it.
const MACHINE_ID: &str = "etc/machine-id";

/// In DEST/.init-agent while a capture runs: the source's path.
const CAPTURING: &str = "capturing";

/// One pattern a capture leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeftOut {
    pub pattern: String,
    pub why: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The destination or the source is not one a capture may use.
    #[error("{0}")]
    Refused(String),
    /// The copy, or the capture's own I/O (as the sync's, `SyncError::Io`).
    #[error(transparent)]
    Sync(#[from] SyncError),
}

fn io_at(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CaptureError {
    let path = path.display().to_string();
    move |source| CaptureError::Sync(SyncError::Io { op, path, source })
}

/// What a capture of `src` into `dest` (both absolute, without `..`) leaves
/// out, as sync patterns relative to `src`: the boot's lists, the node's
/// state, its swap files, the contents of every mount below `src` that is
/// not on a block device (kernel, memory and network file systems: /proc,
/// a tmpfs /tmp, the NFS export `dest` is on), `dest` itself when it lies
/// inside `src`, and the site's patterns (`--exclude`, `[sync]`).
pub fn left_out(
    src: &Path,
    dest: &Path,
    mounts: &[Mount],
    swaps: &[PathBuf],
    site: &[String],
) -> Result<Vec<LeftOut>, CaptureError> {
    let mut out: Vec<LeftOut> = Vec::new();
    let mut add = |pattern: String, why: &str| {
        if !out.iter().any(|o| o.pattern == pattern) {
            out.push(LeftOut {
                pattern,
                why: why.to_string(),
            });
        }
    };
    for p in SYNC_EXCLUDE {
        add(
            p.to_string(),
            "kernel file systems: a sync never copies them",
        );
    }
    for p in SYNC_PROTECT {
        add(
            p.to_string(),
            "the node's identity and logs: a sync keeps them per node",
        );
    }
    for (p, why) in NODE_STATE {
        add(p.to_string(), why);
    }
    for f in swaps {
        if let Some(rel) = below(src, f)? {
            add(format!("/{rel}"), "a swap file");
        }
    }
    let covered = |out: &[LeftOut], rel: &str| -> Result<bool, CaptureError> {
        let set = PatternSet::new(&out.iter().map(|o| &o.pattern).collect::<Vec<_>>())
            .map_err(SyncError::from)?;
        // A NUL is in no file name: only a wildcard matches it, so the probe
        // says whether everything below `rel` is left out already.
        let mut child = rel.as_bytes().to_vec();
        child.extend_from_slice(b"/\0");
        Ok(set.matches(rel.as_bytes(), true) || set.matches(&child, false))
    };
    // The topmost mount on each target, parents before children.
    let mut top = std::collections::BTreeMap::new();
    for m in mounts {
        top.insert(m.target.clone(), m);
    }
    for (target, m) in top {
        if m.on_block_device() {
            continue;
        }
        let Some(rel) = below(src, &target)? else {
            continue;
        };
        if !rel.is_empty() && !covered(&out, &rel)? {
            let why = format!(
                "{} {} is mounted there: not the node's disk",
                m.fstype, m.source
            );
            out.push(LeftOut {
                pattern: format!("/{rel}/**"),
                why,
            });
        }
    }
    if let Some(rel) = below(src, dest)? {
        if !rel.is_empty() && !covered(&out, &rel)? {
            out.push(LeftOut {
                pattern: format!("/{rel}/***"),
                why: "the capture itself".into(),
            });
        }
    }
    for p in site {
        out.push(LeftOut {
            pattern: p.clone(),
            why: "the site's pattern".into(),
        });
    }
    Ok(out)
}

/// `path` relative to `root` as a pattern that matches it literally, None
/// when it is not below `root` ("" for `root` itself).
fn below(root: &Path, path: &Path) -> Result<Option<String>, CaptureError> {
    let Ok(rel) = path.strip_prefix(root) else {
        return Ok(None);
    };
    let text = rel.to_str().ok_or_else(|| {
        CaptureError::Refused(format!(
            "{}: not UTF-8, it cannot be named in a pattern: unmount it first",
            path.display()
        ))
    })?;
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    Ok(Some(escaped))
}

/// How the capture goes.
#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    /// The site's patterns, left out too.
    pub exclude: Vec<String>,
    /// Check and plan only; write nothing.
    pub dry_run: bool,
    pub quiet: bool,
    /// Worker threads; 0 = one per CPU.
    pub jobs: usize,
}

/// What a capture did (or, in a dry run, would do).
#[derive(Debug, Serialize)]
pub struct Captured {
    pub source: PathBuf,
    pub destination: PathBuf,
    /// "new", "empty" or "interrupted" (a capture that did not finish, resumed).
    pub destination_was: &'static str,
    pub left_out: Vec<LeftOut>,
    /// The copy's report (none in a dry run).
    pub sync: Option<Report>,
    /// DEST/.init-agent/manifest, with its generation and entries.
    pub manifest: Option<PathBuf>,
    pub generation: Option<String>,
    pub entries: usize,
}

/// Captures `src` into the new directory `dest`.
pub fn run(src: &Path, dest: &Path, opts: &CaptureOptions) -> Result<Captured, CaptureError> {
    let src = src.canonicalize().map_err(io_at("opening", src))?;
    if !src.is_dir() {
        return Err(CaptureError::Refused(format!(
            "{}: not a directory",
            src.display()
        )));
    }
    let dest = absolute(dest)?;
    if src.starts_with(&dest) {
        return Err(CaptureError::Refused(format!(
            "{} lies inside the destination {}",
            src.display(),
            dest.display()
        )));
    }
    if let Some(standard) = dest.ancestors().find(|d| is_standard(d)) {
        return Err(CaptureError::Refused(format!(
            "{} is inside the standard root {} (it has a manifest or generation): a capture goes into a new directory beside it, never into a live standard",
            dest.display(),
            standard.display()
        )));
    }
    let was = destination_state(&dest)?;
    let read_table = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let mounts = mountinfo::parse(&read_table("/proc/self/mountinfo"));
    let swaps = mountinfo::swap_files(&read_table("/proc/swaps"));
    let left_out = left_out(&src, &dest, &mounts, &swaps, &opts.exclude)?;
    let mut captured = Captured {
        source: src.clone(),
        destination: dest.clone(),
        destination_was: was,
        left_out,
        sync: None,
        manifest: None,
        generation: None,
        entries: 0,
    };
    if opts.dry_run {
        return Ok(captured);
    }
    if was == "new" {
        std::fs::create_dir(&dest).map_err(io_at("creating", &dest))?;
    }
    // Until the manifest is written, the destination is a capture in
    // progress, which the next capture may resume (destination_state).
    let state_dir = dest.join(STATE_DIR);
    std::fs::create_dir_all(&state_dir).map_err(io_at("creating", &state_dir))?;
    let capturing = state_dir.join(CAPTURING);
    std::fs::write(&capturing, format!("{}\n", src.display()))
        .map_err(io_at("writing", &capturing))?;
    let sync_opts = Options {
        exclude: captured
            .left_out
            .iter()
            .map(|l| l.pattern.clone())
            .collect(),
        jobs: opts.jobs,
        quiet: opts.quiet,
        dst_inside_src: true,
        ..Default::default()
    };
    let report = super::run(&SyncSource::Dir(src.clone()), &dest, &sync_opts)?;
    write_empty_machine_id(&src, &dest)?;
    let m = manifest::build(&dest, &PatternSet::default()).map_err(io_at("recording", &dest))?;
    let out = state_dir.join("manifest");
    manifest::write(&m, &out, Some(&dest)).map_err(io_at("writing", &out))?;
    // Stamped: a standard root now, neither a synced copy nor a capture in
    // progress.
    for f in [state_dir.join("state"), capturing] {
        std::fs::remove_file(&f).map_err(io_at("removing", &f))?;
    }
    captured.sync = Some(report);
    captured.entries = m.entries.len();
    captured.generation = Some(m.generation);
    captured.manifest = Some(out);
    Ok(captured)
}

/// `path` made absolute through its existing parent (the directory itself
/// may not exist yet).
fn absolute(path: &Path) -> Result<PathBuf, CaptureError> {
    if let Ok(p) = path.canonicalize() {
        return Ok(p);
    }
    let (Some(parent), Some(Component::Normal(name))) =
        (path.parent(), path.components().next_back())
    else {
        return Err(CaptureError::Refused(format!(
            "{}: name a new directory",
            path.display()
        )));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    Ok(parent
        .canonicalize()
        .map_err(io_at("opening", parent))?
        .join(name))
}

/// A standard root: `init-agent manifest` stamped it.
fn is_standard(dir: &Path) -> bool {
    ["generation", "manifest"]
        .iter()
        .any(|f| dir.join(STATE_DIR).join(f).symlink_metadata().is_ok())
}

/// "new" (missing), "empty", or "interrupted" (a capture that did not get
/// to its manifest); anything else is refused.
fn destination_state(dest: &Path) -> Result<&'static str, CaptureError> {
    let entries = match std::fs::read_dir(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok("new"),
        Err(e) => return Err(io_at("reading", dest)(e)),
        Ok(rd) => rd
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<Vec<_>>>()
            .map_err(io_at("reading", dest))?,
    };
    if entries.is_empty() {
        return Ok("empty");
    }
    if dest.join(STATE_DIR).join(CAPTURING).is_file() {
        return Ok("interrupted");
    }
    Err(CaptureError::Refused(format!(
        "{} is not empty: a capture goes into a new directory (never over a standard root)",
        dest.display()
    )))
}

/// An empty /etc/machine-id where the source has one, with /etc's mtime
/// kept as the source's (the manifest records it).
fn write_empty_machine_id(src: &Path, dest: &Path) -> Result<(), CaptureError> {
    use rustix::fs::{Mode, OFlags};
    if src.join(MACHINE_ID).symlink_metadata().is_err() {
        return Ok(());
    }
    let path = dest.join(MACHINE_ID);
    let root = fsops::open_root(dest).map_err(io_at("opening", dest))?;
    let etc = fsops::open_dir(root.as_fd(), c"etc").map_err(io_at("opening", &path))?;
    let before = fsops::lstat(etc.as_fd(), c".").map_err(io_at("reading", &path))?;
    let fd = rustix::fs::openat(
        etc.as_fd(),
        c"machine-id",
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o444),
    )
    .map_err(|e| io_at("writing", &path)(e.into()))?;
    rustix::fs::fchown(
        &fd,
        Some(rustix::fs::Uid::ROOT),
        Some(rustix::fs::Gid::ROOT),
    )
    .map_err(|e| io_at("writing", &path)(e.into()))?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o444))
        .map_err(|e| io_at("writing", &path)(e.into()))?;
    fsops::set_mtime(etc.as_fd(), c".", &before).map_err(io_at("writing", &path))
}

#[cfg(test)]
mod tests;
