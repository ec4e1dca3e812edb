//! The walk: both trees are read directory by directory, in parallel; each
//! directory's entries are merged by name and brought in line, children before
//! the directory's own metadata. Hardlink groups are linked in a second pass
//! (their members may sit in any directory), and the directories that pass
//! touched get their mtimes back in a third.

use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use rayon::prelude::*;

use super::manifest::{self, Manifest};
use super::meta::{decide, dir_meta_differs, Decision, Facts, Kind, Meta, Xattrs};
use super::pattern::PatternSet;
use super::state::{self, State};
use super::{display_rel, Counters, SyncError};
use crate::source::tree::{self as source, Local, Source};
use crate::sys::fsops::{self, TEMP_PREFIX};

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `f` with this thread's copy buffer. The buffer is taken out for the call,
/// not borrowed: a worker that picks up other work while it waits (rayon
/// does) finds an empty buffer, never a borrowed one.
fn with_buf<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    let mut buf = BUF.with(RefCell::take);
    let r = f(&mut buf);
    BUF.with(|b| b.replace(buf));
    r
}

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

/// A source directory being walked.
enum SrcDir<D> {
    Tree(D),
    Listed(usize),
}

impl<D> SrcDir<D> {
    fn at(&self, idx: Option<usize>) -> SrcAt<'_, D> {
        match (self, idx) {
            (_, Some(i)) => SrcAt::Listed(i),
            (SrcDir::Tree(d), None) => SrcAt::Tree(d),
            (SrcDir::Listed(i), None) => SrcAt::Listed(*i),
        }
    }
}

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
}

pub struct Engine<'a, S: Source> {
    src: &'a S,
    src_root: &'a S::Dir,
    dst_root: BorrowedFd<'a>,
    /// Set by the first change: the marker then says in-progress. A sync that
    /// changes nothing writes nothing.
    marked: OnceLock<std::result::Result<(), String>>,
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
    pub counters: &'a Counters,
    links: Mutex<Vec<LinkMember>>,
    failed: AtomicBool,
    /// The error that stopped the walk; the others only say "aborted".
    first_error: Mutex<Option<SyncError>>,
    print: Mutex<()>,
}

struct LinkMember {
    dev: u64,
    ino: u64,
    rel: Vec<u8>,
    idx: Option<usize>,
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
#[derive(Clone, Copy)]
enum Change {
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

/// A source entry: its manifest index where there is a manifest, its metadata.
type SrcEntry = (Option<usize>, Meta);
/// A merged name: in the source, its destination metadata when it exists there.
type Merged = (CString, Option<SrcEntry>, Option<Meta>);

/// Merges the sorted source and destination listings of one directory.
fn merge(src: Vec<(CString, SrcEntry)>, dst: Vec<(CString, Meta)>) -> Vec<Merged> {
    let mut out = Vec::with_capacity(src.len().max(dst.len()));
    let mut d = dst.into_iter().peekable();
    for (s, entry) in src {
        while let Some((x, m)) = d.next_if(|x| x.0 < s) {
            out.push((x, None, Some(m)));
        }
        let both = d.next_if(|x| x.0 == s).map(|x| x.1);
        out.push((s, Some(entry), both));
    }
    out.extend(d.map(|(x, m)| (x, None, Some(m))));
    out
}

/// lstat of every entry of a destination directory, in inode order: a cold
/// ext4 then reads its inode tables forward, with readahead, instead of hopping.
/// Sorted by name for the merge; entries that vanished meanwhile are left out.
fn stat_dir(dir: BorrowedFd, rel: &[u8]) -> Result<Vec<(CString, Meta)>> {
    let mut entries = fsops::read_entries(dir).map_err(at("reading directory", rel))?;
    entries.sort_unstable_by_key(|e| e.1);
    let mut out = Vec::with_capacity(entries.len());
    for (name, _) in entries {
        if let Some(m) = lstat_opt(dir, &name, rel)? {
            out.push((name, m));
        }
    }
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Opens the local directory holding `rel` (components never followed
/// through symlinks).
pub fn open_parent(root: BorrowedFd, rel: &[u8]) -> io::Result<(OwnedFd, CString)> {
    source::open_parent(&Local, &root.try_clone_to_owned()?, rel)
}

/// The last component of a relative path.
fn base_name(rel: &[u8]) -> Result<CString> {
    let last = rel.rsplit(|&b| b == b'/').next().unwrap_or_default();
    CString::new(last).map_err(|e| at("naming", rel)(io::Error::other(e)))
}

/// Puts what `write` makes under a temporary name in `dst` in the place of
/// `e` with one rename: a crash leaves either the old or the new entry, plus
/// at most a temporary the next run removes.
fn swap_in<D>(
    e: &Entry<D>,
    dst: BorrowedFd,
    write: impl FnOnce(&CStr) -> Result<()>,
) -> Result<()> {
    let tmp = fsops::temp_name();
    let r = write(&tmp)
        .and_then(|()| fsops::rename(dst, &tmp, e.name).map_err(at("renaming into place", e.rel)));
    if r.is_err() {
        // Best effort: a leftover temporary is removed by the next run anyway.
        let _ = fsops::unlink(dst, &tmp, false);
    }
    r
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
                state::write(self.dst_root, &State::InProgress(since)).map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|e| SyncError::Setup(format!("writing the state marker: {e}")))
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
        if self.itemize {
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

    // The source side: from the manifest where there is one, else the tree.

    fn src_list(&self, dir: &SrcDir<S::Dir>, rel: &[u8]) -> Result<Vec<(CString, SrcEntry)>> {
        match (dir, self.manifest) {
            (SrcDir::Listed(i), Some(m)) => m
                .children(*i)
                .map(|c| {
                    let name = CString::new(m.name(c))
                        .map_err(|e| at("reading manifest", rel)(io::Error::other(e)))?;
                    Ok((name, (Some(c), self.listed(c)?.meta.clone())))
                })
                .collect(),
            (SrcDir::Tree(d), _) => Ok(self
                .src
                .list(d)
                .map_err(at("reading directory", rel))?
                .into_iter()
                .map(|(n, m)| (n, (None, m)))
                .collect()),
            (SrcDir::Listed(_), None) => Err(SyncError::Aborted),
        }
    }

    fn listed(&self, i: usize) -> Result<&manifest::Entry> {
        self.manifest
            .and_then(|m| m.entries.get(i))
            .ok_or(SyncError::Aborted)
    }

    fn src_meta(
        &self,
        at_: SrcAt<S::Dir>,
        name: &CStr,
        idx: Option<usize>,
        rel: &[u8],
    ) -> Result<Option<Meta>> {
        match (at_, idx) {
            (_, Some(i)) | (SrcAt::Listed(i), None) => Ok(Some(self.listed(i)?.meta.clone())),
            (SrcAt::Tree(dir), None) => self.src_lstat(dir, name, rel),
        }
    }

    /// The source's lstat, a vanished entry as None.
    fn src_lstat(&self, dir: &S::Dir, name: &CStr, rel: &[u8]) -> Result<Option<Meta>> {
        match self.src.lstat(dir, name) {
            Ok(m) => Ok(Some(m)),
            Err(e) if vanished(&e) => Ok(None),
            Err(e) => Err(at("lstat", rel)(e)),
        }
    }

    /// None where the source cannot tell (NFSv3 without a manifest).
    fn src_xattrs(&self, e: &Entry<S::Dir>) -> Result<Option<Xattrs>> {
        match e.src {
            SrcAt::Listed(i) => Ok(Some(self.listed(i)?.xattrs.clone())),
            SrcAt::Tree(dir) => self
                .src
                .xattrs(dir, e.name)
                .map_err(at("reading xattrs", e.rel)),
        }
    }

    fn src_readlink(&self, e: &Entry<S::Dir>) -> Result<CString> {
        match e.src {
            SrcAt::Listed(i) => CString::new(self.listed(i)?.target.clone())
                .map_err(|err| at("reading manifest", e.rel)(io::Error::other(err))),
            SrcAt::Tree(dir) => self
                .src
                .readlink(dir, e.name)
                .map_err(at("readlink", e.rel)),
        }
    }

    /// Opens a source file for its contents. Through the manifest, the file must
    /// still be what the manifest says (`e.s`), or the manifest is stale.
    fn src_open_file(&self, e: &Entry<S::Dir>) -> Result<S::File> {
        let rel = e.rel;
        match e.src {
            SrcAt::Tree(dir) => self
                .src
                .open_file(dir, e.name)
                .map(|(f, _)| f)
                .map_err(at("opening", rel)),
            SrcAt::Listed(_) => {
                let stale = || SyncError::StaleManifest(display_rel(rel));
                // Gone, or no longer a file (or below one): the manifest is old.
                // Any other error (the server, the network) is reported as such.
                let is_stale = |err: &io::Error| {
                    matches!(
                        err.kind(),
                        io::ErrorKind::NotFound
                            | io::ErrorKind::NotADirectory
                            | io::ErrorKind::Other
                    )
                };
                let opened = source::open_parent(self.src, self.src_root, rel)
                    .and_then(|(dir, base)| self.src.open_file(&dir, &base));
                let (f, now) = match opened {
                    Ok(x) => x,
                    Err(err) if is_stale(&err) => return Err(stale()),
                    Err(err) => return Err(at("opening", rel)(err)),
                };
                // Seconds modulo 2^32: NFSv3 carries no more (times before
                // 1970 arrive as after 2106); size and nanoseconds still count.
                let want = e.s;
                if now.size != want.size
                    || now.mtime_sec as u32 != want.mtime_sec as u32
                    || now.mtime_nsec != want.mtime_nsec
                {
                    return Err(stale());
                }
                Ok(f)
            }
        }
    }

    fn src_open_dir(&self, e: &Entry<S::Dir>) -> Result<SrcDir<S::Dir>> {
        match e.src {
            SrcAt::Listed(i) => Ok(SrcDir::Listed(i)),
            SrcAt::Tree(dir) => Ok(SrcDir::Tree(
                self.src
                    .open_dir(dir, e.name)
                    .map_err(at("opening", e.rel))?,
            )),
        }
    }

    fn sync_dir(&self, src: &SrcDir<S::Dir>, dst: Option<BorrowedFd>, rel: &[u8]) -> Result<()> {
        let src_names = self.src_list(src, rel)?;
        let dst_entries = match dst {
            Some(d) => stat_dir(d, rel)?,
            None => Vec::new(),
        };
        merge(src_names, dst_entries)
            .into_par_iter()
            .try_for_each(|(name, in_src, d)| {
                if self.failed.load(Ordering::Relaxed) {
                    return Err(SyncError::Aborted);
                }
                let r = self.sync_entry(src, dst, rel, &name, in_src, d);
                if let Err(e) = r {
                    self.failed.store(true, Ordering::Relaxed);
                    return Err(self.keep_first(e));
                }
                Ok(())
            })
    }

    /// Remembers the first real error and answers every error with Aborted,
    /// so that `first_error` is what the caller reports.
    fn keep_first(&self, e: SyncError) -> SyncError {
        if !matches!(e, SyncError::Aborted) {
            if let Ok(mut first) = self.first_error.lock() {
                first.get_or_insert(e);
            }
        }
        SyncError::Aborted
    }

    fn sync_entry(
        &self,
        src: &SrcDir<S::Dir>,
        dst: Option<BorrowedFd>,
        parent: &[u8],
        name: &CStr,
        in_src: Option<SrcEntry>,
        d: Option<Meta>,
    ) -> Result<()> {
        let rel = join(parent, name);
        Counters::add(&self.counters.entries, 1);
        let idx = in_src.as_ref().and_then(|e| e.0);
        let s_at = src.at(idx);
        let s = in_src.map(|e| e.1);
        let Some(kind) = s.as_ref().or(d.as_ref()).map(|m| m.kind) else {
            return Ok(());
        };
        if self.exclude.matches(&rel, kind == Kind::Dir) {
            Counters::add(&self.counters.excluded, 1);
            return Ok(());
        }
        let dst_protected = d
            .as_ref()
            .is_some_and(|d| self.protect.matches(&rel, d.kind == Kind::Dir))
            && !name.to_bytes().starts_with(TEMP_PREFIX);
        if dst_protected {
            Counters::add(&self.counters.protected, 1);
            return Ok(());
        }
        let entry = |s| Entry {
            rel: &rel,
            name,
            src: s_at,
            s,
            d: d.as_ref(),
        };
        let Some(dst) = dst else {
            // Dry run below a directory that does not exist yet.
            return match &s {
                Some(s) => self.create_missing(&entry(s)),
                None => Ok(()),
            };
        };
        match (&s, &d) {
            (None, None) => Ok(()),
            (None, Some(d)) => self.remove(dst, name, &rel, d).map(drop),
            (Some(s), _) => {
                if s.kind == Kind::Socket {
                    self.note("socket not copied", &rel);
                    Counters::add(&self.counters.skipped, 1);
                    return Ok(());
                }
                if s.is_linked() {
                    return self.defer_link(s, rel, idx);
                }
                if s.kind == Kind::Dir {
                    self.sync_subdir(&entry(s), dst)
                } else {
                    self.sync_nondir(&entry(s), Some(dst), false).map(drop)
                }
            }
        }
    }

    /// Pass 1 meets a member of a hardlink group (`idx`: its manifest index).
    fn defer_link(&self, s: &Meta, rel: Vec<u8>, idx: Option<usize>) -> Result<()> {
        let member = LinkMember {
            dev: s.dev,
            ino: s.ino,
            rel,
            idx,
        };
        self.links
            .lock()
            .map_err(|_| SyncError::Aborted)?
            .push(member);
        Ok(())
    }

    /// Dry run: everything below a missing directory would be created.
    fn create_missing(&self, e: &Entry<S::Dir>) -> Result<()> {
        if e.s.kind == Kind::Socket {
            return Ok(());
        }
        self.change(Change::Create, e.s.kind, e.rel);
        if e.s.kind == Kind::Dir {
            let sub = self.src_open_dir(e)?;
            self.sync_dir(&sub, None, e.rel)?;
        }
        Ok(())
    }

    fn sync_subdir(&self, e: &Entry<S::Dir>, dst: BorrowedFd) -> Result<()> {
        let sub = self.src_open_dir(e)?;
        let created = match e.d {
            Some(d) if d.kind == Kind::Dir => false,
            other => {
                if let Some(d) = other {
                    self.remove(dst, e.name, e.rel, d)?;
                }
                self.change(Change::Create, Kind::Dir, e.rel);
                if self.dry_run {
                    return self.sync_dir(&sub, None, e.rel);
                }
                self.begin_change()?;
                fsops::mkdir(dst, e.name).map_err(at("creating directory", e.rel))?;
                true
            }
        };
        let dfd = fsops::open_dir(dst, e.name).map_err(at("opening", e.rel))?;
        self.sync_dir(&sub, Some(dfd.as_fd()), e.rel)?;
        self.finish_dir(e, dst, created)
    }

    /// A directory's own metadata, once its contents are final (their changes
    /// moved its mtime).
    fn finish_dir(&self, e: &Entry<S::Dir>, dst: BorrowedFd, created: bool) -> Result<()> {
        let now = fsops::lstat(dst, e.name).map_err(at("lstat", e.rel))?;
        let dx = fsops::read_xattrs(dst, e.name).map_err(at("reading xattrs", e.rel))?;
        let (sx, same_xattrs) = self.wanted_xattrs(e, &dx)?;
        if dir_meta_differs(e.s, &now, same_xattrs) {
            if !created {
                self.change(Change::Meta, Kind::Dir, e.rel);
            }
            if !self.dry_run {
                self.apply_meta(e, dst, &now, dx, &sx)?;
            }
        } else if !created {
            Counters::add(&self.counters.unchanged, 1);
        }
        Ok(())
    }

    /// Owner, xattrs (ACLs, capabilities), permissions, mtime, in the order that
    /// keeps each: chown clears setuid bits and capabilities, an ACL write
    /// changes group permission bits. `d` is the entry as it stands at the
    /// destination, `have` its xattrs.
    fn apply_meta(
        &self,
        e: &Entry<S::Dir>,
        dst: BorrowedFd,
        d: &Meta,
        mut have: Xattrs,
        want: &Xattrs,
    ) -> Result<()> {
        let (name, rel, s) = (e.name, e.rel, e.s);
        self.begin_change()?;
        if s.uid != d.uid || s.gid != d.gid {
            fsops::chown(dst, name, s.uid, s.gid).map_err(at("chown", rel))?;
            have = fsops::read_xattrs(dst, name).map_err(at("reading xattrs", rel))?;
        }
        fsops::write_xattrs(dst, name, &have, want).map_err(at("writing xattrs", rel))?;
        fsops::chmod(dst, name, s.kind, s.perm).map_err(at("chmod", rel))?;
        fsops::set_mtime(dst, name, s).map_err(at("setting mtime", rel))
    }

    /// The xattrs the entry must end up with, and whether `have` already are
    /// them. A source that cannot carry xattrs leaves the destination's alone.
    fn wanted_xattrs(&self, e: &Entry<S::Dir>, have: &Xattrs) -> Result<(Xattrs, bool)> {
        Ok(match self.src_xattrs(e)? {
            Some(sx) => {
                let same = sx == *have;
                (sx, same)
            }
            None => (have.clone(), true),
        })
    }

    /// Brings one non-directory in line; true when something changed. `dst`,
    /// the directory it goes into, is None in a dry run where that directory
    /// is only planned.
    fn sync_nondir(
        &self,
        e: &Entry<S::Dir>,
        dst: Option<BorrowedFd>,
        in_group: bool,
    ) -> Result<bool> {
        let (s, d) = (e.s, e.d);
        let same_kind = d.is_some_and(|d| d.kind == s.kind);
        let same_payload = match (s.kind, dst) {
            (Kind::Symlink, Some(dst)) if same_kind => {
                self.src_readlink(e)?
                    == fsops::readlink(dst, e.name).map_err(at("readlink", e.rel))?
            }
            (Kind::Char | Kind::Block, _) => d.is_some_and(|d| d.rdev == s.rdev),
            _ => true,
        };
        let dx = match dst {
            Some(dst) if same_kind => {
                fsops::read_xattrs(dst, e.name).map_err(at("reading xattrs", e.rel))?
            }
            _ => Xattrs::default(),
        };
        let (sx, same_xattrs) = self.wanted_xattrs(e, &dx)?;
        // ext4 and others may commit a rename before the renamed file's data:
        // after a power cut such a file has its final size and mtime, and zeros.
        let suspect = match (self.suspect_since, d) {
            (Some(since), Some(d)) if d.kind == Kind::File => {
                since.is_none_or(|t| d.ctime_sec >= t - 2)
            }
            _ => false,
        };
        let mut facts = Facts {
            in_group,
            checksum: self.checksum || suspect,
            same_xattrs,
            same_payload,
        };
        let mut decision = decide(s, d, facts);
        if let (Decision::CompareContent, Some(dst)) = (decision, dst) {
            facts.checksum = false;
            facts.same_payload = self.same_content(e, dst)?;
            decision = decide(s, d, facts);
        }
        match (decision, dst, d) {
            (Decision::Unchanged, _, _) => {
                Counters::add(&self.counters.unchanged, 1);
                Ok(false)
            }
            (Decision::FixMeta, Some(dst), Some(d)) => {
                self.change(Change::Meta, s.kind, e.rel);
                if !self.dry_run {
                    self.apply_meta(e, dst, d, dx, &sx)?;
                }
                Ok(true)
            }
            (_, dst, d) => {
                self.change(Change::write(d.is_some()), s.kind, e.rel);
                match dst {
                    Some(dst) if !self.dry_run => self.replace(e, dst, &sx),
                    _ => Ok(true),
                }
            }
        }
    }

    /// `--checksum`: the source's bytes, or the manifest's hash of them, against
    /// the destination file.
    fn same_content(&self, e: &Entry<S::Dir>, dst: BorrowedFd) -> Result<bool> {
        let b = fsops::open_file(dst, e.name).map_err(at("opening", e.rel))?;
        if let SrcAt::Listed(i) = e.src {
            let local = manifest::hash_fd(&b).map_err(at("reading", e.rel))?;
            return Ok(Some(local) == self.listed(i)?.hash);
        }
        let a = self.src_open_file(e)?;
        with_buf(|buf| source::same_content(self.src, &a, &b, buf)).map_err(at("comparing", e.rel))
    }

    /// Writes the new entry with all its metadata in the place of the old one.
    fn replace(&self, e: &Entry<S::Dir>, dst: BorrowedFd, sx: &Xattrs) -> Result<bool> {
        self.begin_change()?;
        if !self.make_room(e, dst, "not replaced")? {
            return Ok(false);
        }
        swap_in(e, dst, |tmp| self.write_temp(e, dst, tmp, sx))?;
        Ok(true)
    }

    /// A directory where a non-directory is to go is deleted first. False, and
    /// a note that the entry is `not_done`, when it holds protected entries.
    fn make_room(&self, e: &Entry<S::Dir>, dst: BorrowedFd, not_done: &str) -> Result<bool> {
        if let Some(d) = e.d.filter(|d| d.kind == Kind::Dir) {
            if !self.remove(dst, e.name, e.rel, d)? {
                let what = format!("{not_done}: the directory holds protected entries");
                self.note(&what, e.rel);
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn write_temp(
        &self,
        e: &Entry<S::Dir>,
        dst: BorrowedFd,
        tmp: &CStr,
        sx: &Xattrs,
    ) -> Result<()> {
        let (s, rel) = (e.s, e.rel);
        match s.kind {
            Kind::File => {
                let from = self.src_open_file(e)?;
                let to = fsops::create_temp_file(dst, tmp).map_err(at("creating", rel))?;
                let n = with_buf(|buf| self.src.copy_to(&from, s, &to, buf))
                    .map_err(at("copying", rel))?;
                Counters::add(&self.counters.bytes, n);
            }
            Kind::Symlink => {
                let target = self.src_readlink(e)?;
                fsops::symlink(&target, dst, tmp).map_err(at("creating symlink", rel))?;
            }
            _ => fsops::mknod(dst, tmp, s).map_err(at("creating node", rel))?,
        }
        fsops::chown(dst, tmp, s.uid, s.gid).map_err(at("chown", rel))?;
        // A default ACL on the directory gives new entries an inherited ACL.
        let have = fsops::read_xattrs(dst, tmp).map_err(at("reading xattrs", rel))?;
        fsops::write_xattrs(dst, tmp, &have, sx).map_err(at("writing xattrs", rel))?;
        fsops::chmod(dst, tmp, s.kind, s.perm).map_err(at("chmod", rel))?;
        fsops::set_mtime(dst, tmp, s).map_err(at("setting mtime", rel))
    }

    /// Deletes a destination entry and, for a directory, everything below it but
    /// protected and excluded entries (and what holds them). False when something
    /// was kept.
    fn remove(&self, dst: BorrowedFd, name: &CStr, rel: &[u8], d: &Meta) -> Result<bool> {
        if d.kind == Kind::Dir {
            let dir = fsops::open_dir(dst, name).map_err(at("opening", rel))?;
            let mut kept = false;
            for child in fsops::read_names(dir.as_fd()).map_err(at("reading directory", rel))? {
                let crel = join(rel, &child);
                let Some(c) = lstat_opt(dir.as_fd(), &child, &crel)? else {
                    continue;
                };
                let is_dir = c.kind == Kind::Dir;
                let stale_temp = child.to_bytes().starts_with(TEMP_PREFIX);
                if !stale_temp
                    && (self.protect.matches(&crel, is_dir) || self.exclude.matches(&crel, is_dir))
                {
                    Counters::add(&self.counters.protected, 1);
                    kept = true;
                    continue;
                }
                kept |= !self.remove(dir.as_fd(), &child, &crel, &c)?;
            }
            if kept {
                return Ok(false);
            }
        }
        self.change(Change::Delete, d.kind, rel);
        if !self.dry_run {
            self.begin_change()?;
            fsops::unlink(dst, name, d.kind == Kind::Dir).map_err(at("deleting", rel))?;
        }
        Ok(true)
    }

    /// Pass 2: every hardlink group of the source becomes one inode at the
    /// destination. The first name (bytewise) is synced like a file; the others
    /// are linked to it (link to a temporary, rename over). Returns the
    /// directories whose mtime the pass disturbed.
    fn sync_links(&self) -> Result<Vec<Vec<u8>>> {
        let dst = self.dst_root;
        let mut members = std::mem::take(&mut *self.links.lock().map_err(|_| SyncError::Aborted)?);
        members.sort_unstable_by(|a, b| (a.dev, a.ino, &a.rel).cmp(&(b.dev, b.ino, &b.rel)));
        let mut touched = Vec::new();
        for group in members.chunk_by(|a, b| (a.dev, a.ino) == (b.dev, b.ino)) {
            let mut leader: Option<&[u8]> = None;
            for m in group {
                let rel = m.rel.as_slice();
                let name = base_name(rel)?;
                // With a manifest, the source is opened only for file contents.
                let sp;
                let s_at = match m.idx {
                    Some(i) => SrcAt::Listed(i),
                    None => {
                        sp = source::open_parent(self.src, self.src_root, rel)
                            .map_err(at("opening", rel))?
                            .0;
                        SrcAt::Tree(&sp)
                    }
                };
                let Some(s) = self.src_meta(s_at, &name, m.idx, rel)? else {
                    continue;
                };
                let dp = match open_parent(dst, rel) {
                    Ok((dp, _)) => Some(dp),
                    Err(_) if self.dry_run => None,
                    Err(e) => return Err(at("opening", rel)(e)),
                };
                let d = match &dp {
                    Some(dp) => lstat_opt(dp.as_fd(), &name, rel)?,
                    None => None,
                };
                if d.as_ref()
                    .is_some_and(|d| self.protect.matches(rel, d.kind == Kind::Dir))
                {
                    Counters::add(&self.counters.protected, 1);
                    continue;
                }
                let e = Entry {
                    rel,
                    name: &name,
                    src: s_at,
                    s: &s,
                    d: d.as_ref(),
                };
                let dfd = dp.as_ref().map(|f| f.as_fd());
                let Some(lrel) = leader else {
                    if self.sync_nondir(&e, dfd, true)? {
                        touched.push(parent_of(rel));
                    }
                    leader = Some(rel);
                    continue;
                };
                if self.link_member(&e, dfd, lrel)? {
                    touched.push(parent_of(rel));
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        Ok(touched)
    }

    /// Links `e` to the group's `leader`, in `dp`, its directory at the
    /// destination (None in a dry run where that is only planned).
    fn link_member(
        &self,
        e: &Entry<S::Dir>,
        dp: Option<BorrowedFd>,
        leader: &[u8],
    ) -> Result<bool> {
        let lead = open_parent(self.dst_root, leader).and_then(|(lp, lname)| {
            let m = fsops::lstat(lp.as_fd(), &lname)?;
            Ok((lp, lname, m))
        });
        let (Some(dp), Ok((lp, lname, lm))) = (dp, lead) else {
            if self.dry_run {
                // The leader or this directory is only planned, not there yet.
                self.change(Change::Create, e.s.kind, e.rel);
                return Ok(true);
            }
            return Err(SyncError::Setup(format!(
                "hardlink leader {} vanished",
                display_rel(leader)
            )));
        };
        if e.d.is_some_and(|d| d.dev == lm.dev && d.ino == lm.ino) {
            Counters::add(&self.counters.unchanged, 1);
            return Ok(false);
        }
        self.change(Change::write(e.d.is_some()), e.s.kind, e.rel);
        if self.dry_run {
            return Ok(true);
        }
        if !self.make_room(e, dp, "not linked")? {
            return Ok(false);
        }
        self.begin_change()?;
        swap_in(e, dp, |tmp| {
            fsops::link(lp.as_fd(), &lname, dp, tmp).map_err(at("linking", e.rel))
        })?;
        Ok(true)
    }

    /// Pass 3: directory mtimes the link pass disturbed, back to the source's.
    pub fn restore_dir_mtimes(&self, dirs: &[Vec<u8>]) -> Result<()> {
        let dst = self.dst_root;
        if self.dry_run || dirs.is_empty() {
            return Ok(());
        }
        self.begin_change()?;
        for rel in dirs {
            let s = match self.manifest {
                Some(m) => {
                    let i = m.find(rel).ok_or(SyncError::Aborted)?;
                    self.listed(i)?.meta.clone()
                }
                None if rel.is_empty() => self
                    .src
                    .lstat(self.src_root, c".")
                    .map_err(at("lstat", rel))?,
                None => {
                    let (sp, name) = source::open_parent(self.src, self.src_root, rel)
                        .map_err(at("opening", rel))?;
                    self.src.lstat(&sp, &name).map_err(at("lstat", rel))?
                }
            };
            let dfd = open_dir_path(dst, rel).map_err(at("opening", rel))?;
            fsops::set_mtime(dfd.as_fd(), c".", &s).map_err(at("setting mtime", rel))?;
        }
        Ok(())
    }
}

fn parent_of(rel: &[u8]) -> Vec<u8> {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => rel[..i].to_vec(),
        None => Vec::new(),
    }
}

fn open_dir_path(root: BorrowedFd, rel: &[u8]) -> io::Result<OwnedFd> {
    if rel.is_empty() {
        return fsops::open_dir(root, c".");
    }
    let (parent, name) = open_parent(root, rel)?;
    fsops::open_dir(parent.as_fd(), &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn merge_pairs_names_from_both_sides() {
        let m = |size| Meta {
            kind: Kind::File,
            perm: 0o644,
            uid: 0,
            gid: 0,
            size,
            mtime_sec: 0,
            mtime_nsec: 0,
            rdev: 0,
            nlink: 1,
            dev: 0,
            ino: 0,
            blocks: 0,
            ctime_sec: 0,
        };
        let src = vec![
            (c("a"), (None, m(4))),
            (c("c"), (Some(3), m(5))),
            (c("d"), (None, m(6))),
        ];
        let got = merge(src, vec![(c("b"), m(1)), (c("c"), m(2)), (c("e"), m(3))]);
        let want = vec![
            (c("a"), Some((None, m(4))), None),
            (c("b"), None, Some(m(1))),
            (c("c"), Some((Some(3), m(5))), Some(m(2))),
            (c("d"), Some((None, m(6))), None),
            (c("e"), None, Some(m(3))),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn join_and_parent_are_inverse() {
        assert_eq!(join(b"", &c("etc")), b"etc");
        assert_eq!(join(b"etc", &c("ssh")), b"etc/ssh");
        assert_eq!(parent_of(b"etc/ssh"), b"etc");
        assert_eq!(parent_of(b"etc"), b"");
    }
}
