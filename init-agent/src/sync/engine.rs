//! The walk: both trees are read directory by directory, in parallel; each
//! directory's entries are merged by name and brought in line, children before
//! the directory's own metadata. Hardlink groups are linked in a second pass
//! (their members may sit in any directory), and the directories that pass
//! touched get their mtimes back in a third.
//!
//! This file holds what every step shares: the engine's state, its entry
//! points, and the `Entry` the steps hand each other. The steps live in
//! `engine/`, one concern each, so that a change to how an entry is compared
//! or written is read (and reviewed) apart from how the trees are walked:
//! `walk` (pass 1, directory by directory), `source_side` (the source's facts,
//! from the manifest or the tree), `compare` (what a non-directory needs),
//! `apply` (every write to the destination), `links` (passes 2 and 3) and
//! `buffer` (the per-thread copy buffer).

mod apply;
mod buffer;
mod compare;
mod links;
mod source_side;
pub mod stage;
mod walk;

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, OnceLock};

use super::manifest::Manifest;
use super::meta::{Kind, Meta};
use super::pattern::PatternSet;
use super::rollback::{self, Journal};
use super::state::{self, State};
use super::{display_rel, Counters, SyncError};
use crate::source::tree::{self as source, Local, Source};
use crate::sys::fsops;
use links::LinkMember;
use source_side::SrcDir;

/// Where a source entry's facts come from: a directory of the source tree
/// (the entry is named within it), or the manifest (the entry's index). With a
/// manifest, the source is opened only for the contents of changed files.
pub enum SrcAt<'f, D> {
    Tree(&'f D),
    Listed(usize),
}

// By hand: a derive would ask `D: Copy`, and a reference is always copied.
impl<D> Clone for SrcAt<'_, D> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<D> Copy for SrcAt<'_, D> {}

/// What a run is asked to do, beside the trees it works on.
pub struct Settings<'a> {
    /// The source's facts, read instead of walking the source tree.
    pub manifest: Option<&'a Manifest>,
    pub exclude: &'a PatternSet,
    pub protect: &'a PatternSet,
    pub counters: &'a Counters,
    pub checksum: bool,
    pub dry_run: bool,
    /// Print one line per change on stdout (dry runs always do).
    pub itemize: bool,
    /// Collect the changes here instead of printing them (`sync --json`).
    pub collect: Option<&'a Mutex<Vec<Itemized>>>,
    /// Every file written must hash to its manifest entry's value, and the
    /// source must give the manifest's permissions (a signed root).
    pub verify: bool,
}

pub struct Engine<'a, S: Source> {
    src: &'a S,
    src_root: &'a S::Dir,
    dst_root: BorrowedFd<'a>,
    /// Set by the first change: the marker then says in-progress. A sync that
    /// changes nothing writes nothing.
    /// Every writer thread sees the one outcome; `Arc` because io::Error
    /// cannot be cloned.
    marked: OnceLock<std::result::Result<(), std::sync::Arc<io::Error>>>,
    /// Statelite copies and other single-entry uses keep no marker.
    marker: bool,
    manifest: Option<&'a Manifest>,
    pub exclude: &'a PatternSet,
    pub protect: &'a PatternSet,
    pub checksum: bool,
    /// After an interrupted sync: destination files changed since this time
    /// (seconds; `Some(None)`: any file) may hold unwritten data, so their
    /// contents are compared even when size and mtime agree.
    pub suspect_since: Option<Option<i64>>,
    pub dry_run: bool,
    /// Print one line per change on stdout (dry runs always do).
    pub itemize: bool,
    collect: Option<&'a Mutex<Vec<Itemized>>>,
    verify: bool,
    /// Dry run: the manifest entries whose contents a real run would write.
    wanted: Option<&'a Mutex<Vec<usize>>>,
    /// Real run: contents fetched and verified beforehand, by entry index.
    staged: Option<BorrowedFd<'a>>,
    /// What the last complete generation had, kept before each change.
    journal: Option<&'a Journal<'a>>,
    pub counters: &'a Counters,
    links: Mutex<Vec<LinkMember>>,
    failed: AtomicBool,
    /// The error that stopped the walk; the others only say "aborted".
    first_error: Mutex<Option<SyncError>>,
    print: Mutex<()>,
}

/// One entry as the steps hand it on, so that each step takes the entry
/// rather than its parts: its path below the roots (for patterns and
/// messages), its name in its directory (the same on both sides), where its
/// source facts come from, and both sides' metadata. The destination
/// directory travels beside it: a dry run may have none yet.
struct Entry<'e, D> {
    rel: &'e [u8],
    name: &'e CStr,
    src: SrcAt<'e, D>,
    s: &'e Meta,
    /// The destination's metadata as its directory was listed: None where it
    /// lacks the entry, and for the root, which no listing holds.
    d: Option<&'e Meta>,
}

/// What a change does to a destination entry: the letter an itemized line
/// starts with, and the counter it adds to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// The destination lacked the entry.
    Create,
    /// The destination's entry is written anew.
    Replace,
    /// Only the entry's metadata is set.
    Meta,
    /// The destination's entry is deleted.
    Delete,
}

impl Change {
    /// Writing an entry whole: a creation, or a replacement where it `exists`.
    fn write(exists: bool) -> Change {
        if exists {
            Change::Replace
        } else {
            Change::Create
        }
    }

    fn letter(self) -> char {
        match self {
            Change::Create => '+',
            Change::Replace => '>',
            Change::Meta => '.',
            Change::Delete => '-',
        }
    }
}

/// One change as `sync --json` lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Itemized {
    pub change: Change,
    pub kind: Kind,
    pub path: String,
}

type Result<T> = std::result::Result<T, SyncError>;

fn at<'r>(op: &'static str, rel: &'r [u8]) -> impl FnOnce(io::Error) -> SyncError + 'r {
    move |source| SyncError::Io {
        op,
        path: display_rel(rel),
        source,
    }
}

fn join(parent: &[u8], name: &CStr) -> Vec<u8> {
    let mut rel = Vec::with_capacity(parent.len() + 1 + name.to_bytes().len());
    rel.extend_from_slice(parent);
    if !parent.is_empty() {
        rel.push(b'/');
    }
    rel.extend_from_slice(name.to_bytes());
    rel
}

fn parent_of(rel: &[u8]) -> Vec<u8> {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => rel[..i].to_vec(),
        None => Vec::new(),
    }
}

/// The last component of a relative path.
fn base_name(rel: &[u8]) -> Result<CString> {
    let last = rel.rsplit(|&b| b == b'/').next().unwrap_or_default();
    CString::new(last).map_err(|e| at("naming", rel)(io::Error::other(e)))
}

fn vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// lstat that reports a vanished entry as None.
fn lstat_opt(dir: BorrowedFd, name: &CStr, rel: &[u8]) -> Result<Option<Meta>> {
    match fsops::lstat(dir, name) {
        Ok(m) => Ok(Some(m)),
        Err(e) if vanished(&e) => Ok(None),
        Err(e) => Err(at("lstat", rel)(e)),
    }
}

/// Opens the local directory holding `rel` (components never followed
/// through symlinks).
pub fn open_parent(root: BorrowedFd, rel: &[u8]) -> io::Result<(OwnedFd, CString)> {
    source::open_parent(&Local, &root.try_clone_to_owned()?, rel)
}

impl<'a, S: Source> Engine<'a, S> {
    pub fn new(
        src: &'a S,
        src_root: &'a S::Dir,
        dst_root: BorrowedFd<'a>,
        settings: Settings<'a>,
    ) -> Self {
        let Settings {
            manifest,
            exclude,
            protect,
            counters,
            checksum,
            dry_run,
            itemize,
            collect,
            verify,
        } = settings;
        Engine {
            src,
            src_root,
            dst_root,
            marked: OnceLock::new(),
            marker: true,
            manifest,
            exclude,
            protect,
            checksum,
            suspect_since: None,
            dry_run,
            itemize: itemize || dry_run,
            collect,
            verify,
            wanted: None,
            staged: None,
            journal: None,
            counters,
            links: Mutex::new(Vec::new()),
            failed: AtomicBool::new(false),
            first_error: Mutex::new(None),
            print: Mutex::new(()),
        }
    }

    /// Called before every write to the destination.
    fn begin_change(&self) -> Result<()> {
        if !self.marker {
            return Ok(());
        }
        self.marked
            .get_or_init(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                // Recovering from an interrupted run keeps its start: if this
                // run is cut too, the next one still checks what that one wrote.
                let since = match self.suspect_since {
                    Some(Some(t)) => Some(t.min(now)),
                    Some(None) => None,
                    None => Some(now),
                };
                state::write(self.dst_root, &State::InProgress(since)).map_err(std::sync::Arc::new)
            })
            .clone()
            .map_err(|e| SyncError::Setup(format!("writing the state marker: {e}")))
    }

    /// A dry run that lists the entries whose contents a run would write.
    pub fn listing_wanted(mut self, wanted: &'a Mutex<Vec<usize>>) -> Self {
        self.wanted = Some(wanted);
        self
    }

    /// A run that takes contents from the staging directory first.
    pub fn with_staged(mut self, staging: BorrowedFd<'a>) -> Self {
        self.staged = Some(staging);
        self
    }

    /// A run that keeps the last complete generation in `journal`.
    pub fn with_journal(mut self, journal: &'a Journal<'a>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Called before each change to `rel`, ahead of its first write.
    fn keep(&self, rel: &[u8], change: rollback::Change) -> Result<()> {
        match self.journal {
            Some(j) if !self.dry_run => j
                .keep(rel, change)
                .map_err(at("keeping for roll-back", rel)),
            _ => Ok(()),
        }
    }

    /// No state marker: the destination is not a synced root.
    pub fn without_marker(mut self) -> Self {
        self.marker = false;
        self
    }

    /// Copies one non-directory entry `name` from `src` to `dst` (same name).
    pub fn copy_entry(&self, name: &CStr) -> Result<()> {
        let rel = name.to_bytes();
        let s = self
            .src_lstat(self.src_root, name, rel)?
            .ok_or_else(|| at("opening", rel)(io::ErrorKind::NotFound.into()))?;
        if s.kind == Kind::Dir {
            return Err(SyncError::Setup(format!(
                "{}: is a directory",
                display_rel(rel)
            )));
        }
        let d = lstat_opt(self.dst_root, name, rel)?;
        let entry = Entry {
            rel,
            name,
            src: SrcAt::Tree(self.src_root),
            s: &s,
            d: d.as_ref(),
        };
        self.sync_nondir(&entry, Some(self.dst_root), false)
            .map(drop)
    }

    /// Whether this run wrote to the destination.
    pub fn changed(&self) -> bool {
        self.marked.get().is_some()
    }

    /// Itemizes and counts one change.
    fn change(&self, change: Change, kind: Kind, rel: &[u8]) {
        if let Some(list) = self.collect {
            // A poisoned list only means another worker panicked: keep going.
            let mut list = list.lock().unwrap_or_else(|p| p.into_inner());
            list.push(Itemized {
                change,
                kind,
                path: display_rel(rel),
            });
        } else if self.itemize {
            let _guard = self.print.lock();
            println!("{}{} {}", change.letter(), kind.letter(), display_rel(rel));
        }
        let counter = match change {
            Change::Create => &self.counters.created,
            Change::Replace | Change::Meta => &self.counters.updated,
            Change::Delete => &self.counters.deleted,
        };
        Counters::add(counter, 1);
    }

    fn note(&self, what: &str, rel: &[u8]) {
        let _guard = self.print.lock();
        eprintln!("init-agent sync: {}: {what}", display_rel(rel));
    }

    /// Passes 1 and 3 around pass 2: the whole tree below the two roots.
    pub fn sync_tree(&self) -> Result<Vec<Vec<u8>>> {
        self.sync_all().map_err(|e| {
            let first = self.first_error.lock().ok().and_then(|mut f| f.take());
            first.unwrap_or(e)
        })
    }

    fn sync_all(&self) -> Result<Vec<Vec<u8>>> {
        let dst = self.dst_root;
        let (root, idx) = match self.manifest {
            Some(_) => (SrcDir::Listed(0), Some(0)),
            None => (
                SrcDir::Tree(
                    self.src
                        .open_dir(self.src_root, c".")
                        .map_err(at("opening", b""))?,
                ),
                None,
            ),
        };
        self.sync_dir(&root, Some(dst), b"")?;
        let top = SrcAt::Tree(self.src_root);
        let s = self
            .src_meta(top, c".", idx, b"")?
            .ok_or_else(|| SyncError::Setup("the source root vanished".into()))?;
        let root = Entry {
            rel: b"",
            name: c".",
            src: idx.map_or(top, SrcAt::Listed),
            s: &s,
            d: None,
        };
        self.finish_dir(&root, dst, false)?;
        self.sync_links()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_and_parent_are_inverse() {
        assert_eq!(join(b"", c"etc"), b"etc");
        assert_eq!(join(b"etc", c"ssh"), b"etc/ssh");
        assert_eq!(parent_of(b"etc/ssh"), b"etc");
        assert_eq!(parent_of(b"etc"), b"");
    }
}
