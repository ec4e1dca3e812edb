//! Pass 1, directory by directory: a directory's source and destination
//! listings are merged by name, and its entries are handled in parallel:
//! excluded and protected ones left alone, sockets skipped, hardlink group
//! members put aside for pass 2, subdirectories walked, other entries handed
//! to `compare`, and names only the destination has deleted. A directory's
//! own metadata is set after its contents, whose changes move its mtime.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::source_side::{SrcDir, SrcEntry};
use super::{at, join, lstat_opt, Change, Engine, Entry, Result, SrcAt};
use crate::source::tree::Source;
use crate::sync::meta::{dir_meta_differs, Kind, Meta};
use crate::sync::rollback::Change as Kept;
use crate::sync::{Counters, SyncError};
use crate::sys::fsops;

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

impl<S: Source> Engine<'_, S> {
    pub(super) fn sync_dir(
        &self,
        src: &SrcDir<S::Dir>,
        dst: Option<BorrowedFd>,
        rel: &[u8],
    ) -> Result<()> {
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
            && !fsops::is_temp(name.to_bytes());
        if dst_protected {
            Counters::add(&self.counters.protected, 1);
            return Ok(());
        }
        // For the steps below, once the source side is known to exist.
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

    /// Dry run: everything below a missing directory would be created.
    fn create_missing(&self, e: &Entry<S::Dir>) -> Result<()> {
        if e.s.kind == Kind::Socket {
            return Ok(());
        }
        // As the real run: a group member is linked in pass 2, where it may
        // lead its group (the others are then relinked to it).
        if e.s.is_linked() {
            let idx = match e.src {
                SrcAt::Listed(i) => Some(i),
                SrcAt::Tree(_) => None,
            };
            return self.defer_link(e.s, e.rel.to_vec(), idx);
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
                self.keep(e.rel, Kept::Entry)?;
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
    pub(super) fn finish_dir(
        &self,
        e: &Entry<S::Dir>,
        dst: BorrowedFd,
        created: bool,
    ) -> Result<()> {
        let now = fsops::lstat(dst, e.name).map_err(at("lstat", e.rel))?;
        let dx = fsops::read_xattrs(dst, e.name).map_err(at("reading xattrs", e.rel))?;
        let (sx, same_xattrs) = self.wanted_xattrs(e, &dx)?;
        // A change is what differed before the walk: an mtime this run's own
        // writes below moved is set back, but is no change (a dry run, which
        // writes nothing, could not list it).
        let before = e.d.filter(|d| d.kind == Kind::Dir).unwrap_or(&now);
        if !created && dir_meta_differs(e.s, before, same_xattrs) {
            self.change(Change::Meta, Kind::Dir, e.rel);
        } else if !created {
            Counters::add(&self.counters.unchanged, 1);
        }
        if dir_meta_differs(e.s, &now, same_xattrs) && !self.dry_run {
            self.apply_meta(e, dst, &now, dx, &sx)?;
        }
        Ok(())
    }
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
}
