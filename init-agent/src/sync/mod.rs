//! Sync-on-boot: make a destination tree an exact copy of a source tree, with
//! the semantics of `rsync -aHAX --delete --numeric-ids` but exact in one pass
//! (mtimes to the nanosecond, directory mtimes after their contents, hardlink
//! groups rebuilt when they change), crash-safe, and never writing outside the
//! destination.
//!
//! Layout: `pattern` (exclude/protect globs), `meta` (what an entry is, the pure
//! change test), `engine/` (walk, source side, compare, apply, hardlinks and
//! directory mtimes), `manifest`, `state` (the generation marker), this file
//! (options, run, report, the in-root copy statelite and CDSL use). The
//! descriptor-relative syscalls are `sys::fsops`; what the engine reads
//! through is `source::tree` (a directory, or the userspace NFS client).

pub mod capture;
pub mod command;
pub mod digest;
pub mod engine;
pub mod manifest;
pub mod meta;
pub mod pattern;
pub mod rollback;
pub mod state;
pub mod trust;
pub mod verify;

use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::source::nfs;
use crate::source::tree::{self as source, Local, Source};
use crate::sys::fsops;
use engine::Engine;
use manifest::Manifest;
use pattern::{PatternError, PatternSet};
use state::State;

/// Always excluded on both sides: the state marker lives there on the destination
/// and the generation stamp on the source.
pub const STATE_DIR: &str = ".init-agent";
/// mke2fs creates it and e2fsck wants it; the standard root usually lacks it.
const ALWAYS_PROTECTED: &str = "/lost+found";

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub exclude: Vec<String>,
    pub protect: Vec<String>,
    /// Compare contents of files whose size and mtime agree.
    pub checksum: bool,
    pub dry_run: bool,
    /// Worker threads; 0 = one per CPU.
    pub jobs: usize,
    /// No progress lines on stderr.
    pub quiet: bool,
    /// One line per change on stdout.
    pub itemize: bool,
    /// The changes in the report instead of on stdout.
    pub collect_changes: bool,
    /// The standard root's manifest: compare against it instead of walking SRC.
    pub manifest: Option<PathBuf>,
    /// Without `manifest`: use SRC/.init-agent/manifest, read through the
    /// source, when there is one (an `nfs://` source has no local path).
    pub source_manifest: bool,
    /// No DST/.init-agent/state marker (copies that are not a synced root).
    pub no_marker: bool,
    /// No rollback area: a cut run can be finished but not undone (a disk
    /// without room for two versions of what a run changes).
    pub no_rollback: bool,
    /// NFS requests in flight at once (connections) for an `nfs://` source;
    /// 0 = the default.
    pub inflight: usize,
    /// Keys: sync only a manifest they signed, and only contents that hash
    /// to its values.
    pub trust: Option<trust::Trust>,
    /// The destination may lie inside a source directory, which the exclude
    /// patterns leave it out of (`capture` of a node's `/`).
    pub dst_inside_src: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: io::Error,
    },
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error("{0}")]
    Setup(String),
    #[error("stopped after an earlier error")]
    Aborted,
    #[error("the manifest is stale: {0} differs from it")]
    StaleManifest(String),
    /// A signed root's check failed: nothing unverified is installed.
    #[error("refused: {0}")]
    Untrusted(String),
}

/// Live counts, shared by the workers and the progress printer.
#[derive(Debug, Default)]
pub struct Counters {
    pub entries: AtomicU64,
    pub created: AtomicU64,
    pub updated: AtomicU64,
    pub deleted: AtomicU64,
    pub unchanged: AtomicU64,
    pub protected: AtomicU64,
    pub excluded: AtomicU64,
    pub skipped: AtomicU64,
    pub bytes: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Counts {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            entries: g(&self.entries),
            created: g(&self.created),
            updated: g(&self.updated),
            deleted: g(&self.deleted),
            unchanged: g(&self.unchanged),
            protected: g(&self.protected),
            excluded: g(&self.excluded),
            skipped_sockets: g(&self.skipped),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub entries: u64,
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub protected: u64,
    pub excluded: u64,
    pub skipped_sockets: u64,
}

/// What `--report FILE` writes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// A path, or an `nfs://` URL.
    pub source: String,
    pub destination: PathBuf,
    pub dry_run: bool,
    /// The marker found before this run: "none", "in-progress" or "complete <generation>".
    pub previous_state: String,
    pub generation: String,
    /// "none", "used", or why the full walk was used instead.
    pub manifest: String,
    pub counts: Counts,
    pub bytes_copied: u64,
    /// Seconds per phase: walk (walk + copy), links (hardlink groups), finish
    /// (directory mtimes, flush, marker).
    pub phases: Phases,
    pub seconds: f64,
    /// Every change, by path (`collect_changes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<engine::Itemized>>,
    /// The signature the manifest was verified with (a sync with trusted keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<trust::Signed>,
    /// NFS calls the userspace client made (an `nfs://` source).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nfs_calls: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Phases {
    pub walk: f64,
    pub links: f64,
    pub finish: f64,
}

/// Escapes a relative path for messages: control bytes, backslash and invalid
/// UTF-8 as \xNN, so every name prints on one line and unambiguously.
pub fn display_rel(rel: &[u8]) -> String {
    let mut out = String::from("/");
    for chunk in rel.utf8_chunks() {
        for ch in chunk.valid().chars() {
            if ch.is_control() || ch == '\\' {
                for b in ch.to_string().bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            } else {
                out.push(ch);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn refuse_nesting(src: &Path, dst: &Path, dst_inside_src: bool) -> Result<(), SyncError> {
    let canon = |p: &Path| {
        p.canonicalize()
            .map_err(|e| SyncError::Setup(format!("{}: {e}", p.display())))
    };
    let (s, d) = (canon(src)?, canon(dst)?);
    if s.starts_with(&d) || (d.starts_with(&s) && !dst_inside_src) {
        return Err(SyncError::Setup(format!(
            "source {} and destination {} overlap",
            s.display(),
            d.display()
        )));
    }
    Ok(())
}

/// The source's generation stamp, written by `init-agent manifest`; "unstamped"
/// when the standard root has none.
fn source_generation<S: Source>(src: &S, root: &S::Dir) -> String {
    let rel = format!("{STATE_DIR}/generation");
    source::read_small(src, root, rel.as_bytes(), 4096)
        .ok()
        .flatten()
        .and_then(|g| String::from_utf8(g).ok())
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty() && !g.contains(char::is_whitespace))
        .unwrap_or_else(|| "unstamped".into())
}

/// What a sync reads: a directory (a kernel mount, a local tree), or an NFS
/// server through the userspace NFSv3 client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncSource {
    Dir(PathBuf),
    Nfs(nfs::Endpoint),
}

impl SyncSource {
    /// A command-line SRC: an `nfs://` URL (the one parser), else a directory.
    pub fn parse(src: &Path) -> Result<SyncSource, SyncError> {
        match src.to_str() {
            Some(s) if s.contains("://") => nfs::Endpoint::from_url(s)
                .map(SyncSource::Nfs)
                .map_err(|e| SyncError::Setup(format!("{s}: {e}"))),
            _ => Ok(SyncSource::Dir(src.to_path_buf())),
        }
    }
}

impl std::fmt::Display for SyncSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncSource::Dir(d) => write!(f, "{}", d.display()),
            SyncSource::Nfs(e) => write!(f, "{e}"),
        }
    }
}

impl SyncSource {
    /// A small file of the source (`rel` below its root, never through a
    /// symlink), or None when it is not there; at most `limit` bytes.
    pub fn read_small(&self, rel: &str, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
        let rel = rel.trim_start_matches('/').as_bytes();
        match self {
            SyncSource::Nfs(at) => {
                let nfs = nfs::Nfs::connect(at, 1)?;
                source::read_small(&nfs, &nfs.root(), rel, limit)
            }
            SyncSource::Dir(d) => source::read_small(&Local, &fsops::open_root(d)?, rel, limit),
        }
    }
}

/// Makes `dst` an exact copy of `src`.
pub fn run(src: &SyncSource, dst: &Path, opts: &Options) -> Result<Report, SyncError> {
    let start = Instant::now();
    let src = match src {
        SyncSource::Nfs(at) => {
            let nfs = nfs::Nfs::connect(at, opts.inflight)
                .map_err(|e| SyncError::Setup(format!("{at}: {e}")))?;
            let root = nfs.root();
            let report = run_from(&nfs, &root, &at.to_string(), dst, opts, start);
            nfs.log_stats();
            return report.map(|r| Report {
                nfs_calls: Some(nfs.calls()),
                ..r
            });
        }
        SyncSource::Dir(d) => d,
    };
    refuse_nesting(src, dst, opts.dst_inside_src)?;
    let root = fsops::open_root(src).map_err(|source| SyncError::Io {
        op: "opening",
        path: src.display().to_string(),
        source,
    })?;
    run_from(&Local, &root, &src.display().to_string(), dst, opts, start)
}

fn run_from<S: Source>(
    src: &S,
    sroot: &S::Dir,
    src_name: &str,
    dst: &Path,
    opts: &Options,
    start: Instant,
) -> Result<Report, SyncError> {
    let mut exclude = opts.exclude.clone();
    exclude.push(format!("/{STATE_DIR}"));
    let mut protect = opts.protect.clone();
    protect.push(ALWAYS_PROTECTED.into());
    let exclude = PatternSet::new(&exclude)?;
    let protect = PatternSet::new(&protect)?;

    let open = |p: &Path| {
        fsops::open_root(p).map_err(|source| SyncError::Io {
            op: "opening",
            path: p.display().to_string(),
            source,
        })
    };
    let droot = open(dst)?;
    raise_fd_limit();
    let previous = state::read(droot.as_fd());
    let generation = source_generation(src, sroot);
    let (manifest, signed, mut manifest_note) = match &opts.trust {
        Some(trust) => {
            let (m, signed) = verified_manifest(
                src,
                sroot,
                src_name,
                opts,
                trust,
                &generation,
                droot.as_fd(),
            )?;
            let note = format!("verified (key {}, serial {})", signed.key, signed.serial);
            (Some(m), Some(signed), note)
        }
        None => {
            let found = find_manifest(src, sroot, src_name, opts);
            let (m, note) = choose_manifest(found, &previous, &generation);
            (m, None, note)
        }
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(if opts.jobs > 0 {
            opts.jobs
        } else {
            src.workers()
        })
        .thread_name(|i| format!("sync-{i}"))
        // Recursion follows the tree depth; deep hostile trees need room.
        .stack_size(64 << 20)
        .build()
        .map_err(|e| SyncError::Setup(format!("starting workers: {e}")))?;

    // A run that may change a complete generation keeps it, so that a cut
    // run can be rolled back to it (or resumed: then its records go on).
    let journal = if opts.dry_run || opts.no_marker || opts.no_rollback {
        None
    } else {
        rollback::Journal::open(droot.as_fd(), &previous).map_err(|source| SyncError::Io {
            op: "opening the rollback area of",
            path: dst.display().to_string(),
            source,
        })?
    };
    let counters = Counters::default();
    let collected = std::sync::Mutex::new(Vec::new());
    let mut phases = Phases::default();
    let walk = |manifest: Option<&Manifest>,
                phases: &mut Phases,
                staged: Option<std::os::fd::BorrowedFd>| {
        let mut engine = Engine::new(
            src,
            sroot,
            droot.as_fd(),
            engine::Settings {
                manifest,
                exclude: &exclude,
                protect: &protect,
                counters: &counters,
                checksum: opts.checksum,
                dry_run: opts.dry_run,
                itemize: opts.itemize,
                collect: opts.collect_changes.then_some(&collected),
                verify: signed.is_some(),
            },
        );
        if opts.no_marker {
            engine = engine.without_marker();
        }
        if let Some(staging) = staged {
            engine = engine.with_staged(staging);
        }
        if let Some(j) = &journal {
            engine = engine.with_journal(j);
        }
        if let State::InProgress(since) = previous {
            engine.suspect_since = Some(since);
        }
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            if !opts.quiet {
                scope.spawn(|| progress(&counters, &done, start));
            }
            let r = pool.install(|| {
                let t = Instant::now();
                let touched = engine.sync_tree();
                phases.walk += t.elapsed().as_secs_f64();
                let t = Instant::now();
                let r = touched.and_then(|t| engine.restore_dir_mtimes(&t));
                phases.links += t.elapsed().as_secs_f64();
                r
            });
            done.store(true, Ordering::Relaxed);
            r.map(|()| engine.changed())
        })
    };
    let staging = match (&signed, &manifest) {
        (Some(_), Some(m)) if !opts.dry_run && !opts.no_marker => {
            let settings = engine::Settings {
                manifest: Some(m),
                exclude: &exclude,
                protect: &protect,
                counters: &counters,
                checksum: opts.checksum,
                dry_run: true,
                itemize: false,
                collect: None,
                verify: true,
            };
            let t = Instant::now();
            let staged = stage(src, sroot, droot.as_fd(), settings, &previous, &pool);
            phases.walk += t.elapsed().as_secs_f64();
            Some(staged?)
        }
        _ => None,
    };
    let staged_fd = staging.as_ref().and_then(|s| s.as_ref()).map(|s| s.as_fd());
    let changed = match staging {
        // The dry run found nothing to change.
        Some(None) => false,
        _ => match walk(manifest.as_ref(), &mut phases, staged_fd) {
            // A signed root is what was signed or nothing: no unverified walk.
            Err(SyncError::StaleManifest(what)) if signed.is_some() => {
                return Err(not_as_signed(&what));
            }
            Err(SyncError::StaleManifest(what)) => {
                manifest_note = format!("stale ({what} differs): full walk");
                eprintln!("init-agent sync: manifest {manifest_note}");
                walk(None, &mut phases, None)?;
                true
            }
            r => r?,
        },
    };
    if let Some(dir) = staged_fd {
        // What the run did not take (entries another way made); best effort:
        // the next run clears it too.
        let _ = engine::stage::clear(dir);
    }

    // A standard root replaced or re-stamped while it was read gives a copy
    // of neither state: it must not be marked complete (the next run, on the
    // new generation, makes it exact).
    let now = source_generation(src, sroot);
    if now != generation {
        return Err(SyncError::Setup(format!(
            "the standard root changed during the sync (generation {generation}, now {now}): the copy is not marked complete; sync again"
        )));
    }
    let t = Instant::now();
    let complete = State::Complete {
        generation: generation.clone(),
        verified: signed.is_some(),
    };
    if !opts.dry_run && !opts.no_marker && (changed || previous != complete) {
        let io_at = |source| SyncError::Io {
            op: "flushing",
            path: dst.display().to_string(),
            source,
        };
        // Everything on disk before the marker says complete.
        fsops::syncfs(&droot).map_err(io_at)?;
        // The floor first: a cut between the two leaves it raised and the copy
        // in progress, never a complete copy below its floor.
        if let Some(s) = &signed {
            state::write_serial(droot.as_fd(), s.serial).map_err(io_at)?;
        }
        state::write(droot.as_fd(), &complete).map_err(io_at)?;
    }
    if let Some(j) = journal {
        // Best effort: with the copy complete the next run removes it anyway.
        if let Err(e) = j.finish() {
            eprintln!("init-agent sync: removing the rollback area: {e}");
        }
    }
    phases.finish = t.elapsed().as_secs_f64();
    Ok(Report {
        source: src_name.to_string(),
        destination: dst.to_path_buf(),
        dry_run: opts.dry_run,
        previous_state: previous.to_string(),
        generation,
        manifest: manifest_note,
        counts: counters.snapshot(),
        bytes_copied: counters.bytes.load(Ordering::Relaxed),
        phases,
        seconds: start.elapsed().as_secs_f64(),
        changes: opts.collect_changes.then(|| {
            let mut list = collected.into_inner().unwrap_or_else(|p| p.into_inner());
            // Stable: one path's changes (a directory deleted, a file
            // made) stay in the order the one worker made them.
            list.sort_by(|a, b| a.path.cmp(&b.path));
            list
        }),
        verified: signed,
        nfs_calls: None,
    })
}

/// A signed root's file whose size or mtime on the server is not the
/// manifest's.
fn not_as_signed(what: &str) -> SyncError {
    SyncError::Untrusted(format!(
        "{what} is not what the signed manifest says (size or mtime): the standard root changed after signing"
    ))
}

/// A signed root's first pass: a dry run lists the files the sync will
/// write, and each is fetched and verified into the staging directory
/// before anything of the copy changes. None when the dry run found nothing
/// to change; the staging directory otherwise.
fn stage<S: Source>(
    src: &S,
    sroot: &S::Dir,
    droot: std::os::fd::BorrowedFd,
    settings: engine::Settings,
    previous: &State,
    pool: &rayon::ThreadPool,
) -> Result<Option<std::os::fd::OwnedFd>, SyncError> {
    use rayon::prelude::*;
    let counters = settings.counters;
    // Its own counts: the real run counts the changes it makes.
    let dry_counts = Counters::default();
    let wanted = std::sync::Mutex::new(Vec::new());
    let mut engine = Engine::new(
        src,
        sroot,
        droot,
        engine::Settings {
            counters: &dry_counts,
            collect: None,
            ..settings
        },
    )
    .listing_wanted(&wanted);
    // A dry run of its own prints each change; this one is the sync's.
    engine.itemize = false;
    if let State::InProgress(since) = previous {
        engine.suspect_since = Some(*since);
    }
    let stale = |e| match e {
        SyncError::StaleManifest(what) => not_as_signed(&what),
        e => e,
    };
    pool.install(|| engine.sync_tree()).map_err(stale)?;
    let changes = [
        &dry_counts.created,
        &dry_counts.updated,
        &dry_counts.deleted,
    ];
    if changes.iter().all(|c| c.load(Ordering::Relaxed) == 0) {
        return Ok(None);
    }
    let staging = engine::stage::open_staging(droot).map_err(|source| SyncError::Io {
        op: "making",
        path: format!("{STATE_DIR}/staging"),
        source,
    })?;
    let wanted = std::mem::take(&mut *wanted.lock().unwrap_or_else(|p| p.into_inner()));
    let r = pool.install(|| {
        wanted
            .par_iter()
            .try_for_each(|&i| engine.stage(i, staging.as_fd()))
    });
    Counters::add(&counters.bytes, dry_counts.bytes.load(Ordering::Relaxed));
    if let Err(e) = r {
        // Best effort: the next run clears it anyway.
        let _ = engine::stage::clear(staging.as_fd());
        return Err(stale(e));
    }
    Ok(Some(staging))
}

/// Where the manifest is, and it read (or why not).
type Found = (String, Result<Manifest, manifest::ManifestError>);

/// The manifest named by the options: a local file, or the one in the source.
fn find_manifest<S: Source>(
    src: &S,
    sroot: &S::Dir,
    src_name: &str,
    opts: &Options,
) -> Option<Found> {
    if let Some(path) = &opts.manifest {
        return Some((path.display().to_string(), manifest::read(path)));
    }
    if !opts.source_manifest {
        return None;
    }
    let rel = format!("{STATE_DIR}/manifest");
    let name = format!("{}/{rel}", src_name.trim_end_matches('/'));
    // A manifest is ~100 bytes per entry: this bounds a million-entry root.
    match source::read_small(src, sroot, rel.as_bytes(), 256 << 20) {
        Ok(None) => None,
        Ok(Some(bytes)) => Some((name.clone(), manifest::decode(&bytes, &name))),
        Err(e) => Some((name.clone(), Err(manifest::ManifestError::Io(name, e)))),
    }
}

/// The signed manifest a sync with keys uses, or why there is none it may:
/// unsigned, signed by an unknown key, altered, of another generation than
/// the source is stamped with, or older than this disk's last verified copy.
fn verified_manifest<S: Source>(
    src: &S,
    sroot: &S::Dir,
    src_name: &str,
    opts: &Options,
    trust: &trust::Trust,
    generation: &str,
    droot: std::os::fd::BorrowedFd,
) -> Result<(Manifest, trust::Signed), SyncError> {
    let refuse =
        |name: &str, e: &dyn std::fmt::Display| SyncError::Untrusted(format!("{name}: {e}"));
    let (name, bytes, sig) = match &opts.manifest {
        Some(path) => {
            let name = path.display().to_string();
            let read = |p: &Path| match std::fs::read(p) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(refuse(&p.display().to_string(), &e)),
            };
            (name, read(path)?, read(&trust::signature_path(path))?)
        }
        None => {
            let rel = format!("{STATE_DIR}/manifest");
            let name = format!("{}/{rel}", src_name.trim_end_matches('/'));
            let read = |rel: &str, limit| {
                source::read_small(src, sroot, rel.as_bytes(), limit)
                    .map_err(|e| refuse(&format!("{}/{rel}", src_name.trim_end_matches('/')), &e))
            };
            // As find_manifest bounds it; a signature is a few hundred bytes.
            (
                name,
                read(&rel, 256 << 20)?,
                read(&trust::signature_name(&rel), 64 << 10)?,
            )
        }
    };
    let (m, signed) = trust::open(&name, bytes.as_deref(), sig.as_deref(), &trust.keys)
        .map_err(|e| SyncError::Untrusted(e.to_string()))?;
    // An unstamped source leaves it to the per-file checks.
    if generation != "unstamped" && generation != m.generation {
        return Err(refuse(
            &name,
            &format!(
                "the standard root is stamped generation {generation}, the signed manifest is {}",
                m.generation
            ),
        ));
    }
    trust::check_serial(&signed, state::read_serial(droot), trust.allow_rollback)
        .map_err(|e| refuse(&name, &e))?;
    Ok((m, signed))
}

/// The manifest is trusted only when it is intact, of our format, of the
/// source's current generation, and the last sync finished; otherwise the full
/// walk runs, with the reason in the report and on stderr.
fn choose_manifest(
    found: Option<Found>,
    previous: &State,
    generation: &str,
) -> (Option<Manifest>, String) {
    let Some((path, read)) = found else {
        return (None, "none".into());
    };
    let why = match read {
        Err(e) => format!("rejected: {e}"),
        Ok(_) if matches!(previous, State::InProgress(_)) => {
            "not used: the previous sync was interrupted, full verify".into()
        }
        Ok(m) if m.generation != generation => format!(
            "rejected: generation {} but the source is {generation}",
            m.generation
        ),
        Ok(m) => return (Some(m), "used".into()),
    };
    eprintln!("init-agent sync: manifest {path}: {why}; walking the source");
    (None, why)
}

/// Copies the non-directory `name` from one directory to another with all its
/// metadata, through the engine's temporary-and-rename path.
pub fn copy_one(
    src: std::os::fd::BorrowedFd,
    dst: std::os::fd::BorrowedFd,
    name: &std::ffi::CStr,
) -> Result<(), SyncError> {
    let (exclude, protect, counters) = (
        PatternSet::default(),
        PatternSet::default(),
        Counters::default(),
    );
    let src = src.try_clone_to_owned().map_err(|source| SyncError::Io {
        op: "opening",
        path: display_rel(name.to_bytes()),
        source,
    })?;
    let settings = engine::Settings {
        manifest: None,
        exclude: &exclude,
        protect: &protect,
        counters: &counters,
        checksum: false,
        dry_run: false,
        itemize: false,
        collect: None,
        verify: false,
    };
    Engine::new(&Local, &src, dst, settings)
        .without_marker()
        .copy_entry(name)
}

/// Every open directory level holds two descriptors per worker.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        // Not fatal: the walk just runs with the lower limit.
        let _ = setrlimit(Resource::Nofile, lim);
    }
}

fn progress(c: &Counters, done: &AtomicBool, start: Instant) {
    let mut last = Instant::now();
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last = Instant::now();
        let secs = start.elapsed().as_secs_f64();
        let bytes = c.bytes.load(Ordering::Relaxed);
        eprintln!(
            "sync: {} entries, {} MiB copied, {:.1} MiB/s, {:.0} s",
            c.entries.load(Ordering::Relaxed),
            bytes >> 20,
            bytes as f64 / 1048576.0 / secs.max(0.001),
            secs
        );
    }
}

/// A file with its metadata, or a directory tree through the sync engine.
pub fn copy_in_root(root: &crate::sys::root::Root, from: &str, to: &str) -> io::Result<()> {
    let parent = to.rsplit_once('/').map_or("/", |(d, _)| d);
    root.mkdir_p(parent)?;
    let src = root.reach(from, true)?;
    let st = rustix::fs::fstat(&src)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
        root.mkdir_p(to)?;
        let dst = root.reach(to, true)?;
        let opts = Options {
            quiet: true,
            no_marker: true,
            ..Default::default()
        };
        run(
            &SyncSource::Dir(crate::sys::root::Root::proc(&src)),
            &crate::sys::root::Root::proc(&dst),
            &opts,
        )
        .map(drop)
        .map_err(io::Error::other)
    } else {
        let (sdir, name) = root.parent(from)?;
        let (ddir, _) = root.parent(to)?;
        // Statelite copies keep the base name (/etc/x to /.statelite/tmpfs/etc/x);
        // the sync engine's single-entry path keeps owner, mode, xattrs, mtime.
        copy_one(sdir.as_fd(), ddir.as_fd(), &name).map_err(io::Error::other)
    }
}
