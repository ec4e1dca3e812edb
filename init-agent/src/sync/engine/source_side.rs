//! The source side of an entry: its directory's listing, its metadata, xattrs,
//! link target and contents. They come from the manifest where there is one,
//! so that the source is opened only for the contents of changed files, else
//! from the source tree; the steps ask here and need not know which.

use std::ffi::{CStr, CString};
use std::io;

use super::{at, vanished, Engine, Entry, Result, SrcAt};
use crate::source::tree::{self as source, Source};
use crate::sync::manifest;
use crate::sync::meta::{Meta, Xattrs};
use crate::sync::{display_rel, SyncError};

/// A source directory being walked.
pub(super) enum SrcDir<D> {
    Tree(D),
    Listed(usize),
}

impl<D> SrcDir<D> {
    pub(super) fn at(&self, idx: Option<usize>) -> SrcAt<'_, D> {
        match (self, idx) {
            (_, Some(i)) => SrcAt::Listed(i),
            (SrcDir::Tree(d), None) => SrcAt::Tree(d),
            (SrcDir::Listed(i), None) => SrcAt::Listed(*i),
        }
    }
}

/// A source entry: its manifest index where there is a manifest, its metadata.
pub(super) type SrcEntry = (Option<usize>, Meta);

impl<S: Source> Engine<'_, S> {
    pub(super) fn src_list(
        &self,
        dir: &SrcDir<S::Dir>,
        rel: &[u8],
    ) -> Result<Vec<(CString, SrcEntry)>> {
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

    pub(super) fn listed(&self, i: usize) -> Result<&manifest::Entry> {
        self.manifest
            .and_then(|m| m.entries.get(i))
            .ok_or(SyncError::Aborted)
    }

    pub(super) fn src_meta(
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
    pub(super) fn src_lstat(&self, dir: &S::Dir, name: &CStr, rel: &[u8]) -> Result<Option<Meta>> {
        match self.src.lstat(dir, name) {
            Ok(m) => Ok(Some(m)),
            Err(e) if vanished(&e) => Ok(None),
            Err(e) => Err(at("lstat", rel)(e)),
        }
    }

    /// None where the source cannot tell (NFSv3 without a manifest).
    pub(super) fn src_xattrs(&self, e: &Entry<S::Dir>) -> Result<Option<Xattrs>> {
        match e.src {
            SrcAt::Listed(i) => Ok(Some(self.listed(i)?.xattrs.clone())),
            SrcAt::Tree(dir) => self
                .src
                .xattrs(dir, e.name)
                .map_err(at("reading xattrs", e.rel)),
        }
    }

    pub(super) fn src_readlink(&self, e: &Entry<S::Dir>) -> Result<CString> {
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
    pub(super) fn src_open_file(&self, e: &Entry<S::Dir>) -> Result<S::File> {
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
                // A signed root takes metadata from the manifest only; a server
                // that says otherwise (a setuid bit, other permissions) is not
                // serving what was signed.
                if self.verify && now.perm != want.perm {
                    return Err(SyncError::Untrusted(format!(
                        "{}: the server gives mode {:04o}, the signed manifest {:04o}",
                        display_rel(rel),
                        now.perm,
                        want.perm
                    )));
                }
                Ok(f)
            }
        }
    }

    pub(super) fn src_open_dir(&self, e: &Entry<S::Dir>) -> Result<SrcDir<S::Dir>> {
        match e.src {
            SrcAt::Listed(i) => Ok(SrcDir::Listed(i)),
            SrcAt::Tree(dir) => Ok(SrcDir::Tree(
                self.src
                    .open_dir(dir, e.name)
                    .map_err(at("opening", e.rel))?,
            )),
        }
    }
}
