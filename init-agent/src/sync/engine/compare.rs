//! What a non-directory needs: the facts `meta::decide` weighs (link target,
//! device number, xattrs, whether an interrupted run may have left it
//! unwritten), read only where they can matter; its contents compared only
//! when the decision asks for it; then the change the decision calls for.

use std::os::fd::BorrowedFd;

use super::buffer::with_buf;
use super::{at, Change, Engine, Entry, Result, SrcAt};
use crate::source::tree::{self as source, Source};
use crate::sync::meta::{decide, Decision, Facts, Kind, Xattrs};
use crate::sync::Counters;
use crate::sys::fsops;

impl<S: Source> Engine<'_, S> {
    /// Brings one non-directory in line; true when something changed. `dst`,
    /// the directory it goes into, is None in a dry run where that directory
    /// is only planned.
    pub(super) fn sync_nondir(
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
                if self.dry_run && s.kind == Kind::File {
                    self.want_contents(e);
                }
                match dst {
                    Some(dst) if !self.dry_run => self.replace(e, dst, &sx),
                    // A dry run lists the deletions a directory in the way takes.
                    Some(dst) => self.make_room(e, dst, "not replaced"),
                    None => Ok(true),
                }
            }
        }
    }

    /// `--checksum`: the source's bytes, or the manifest's hash of them, against
    /// the destination file.
    fn same_content(&self, e: &Entry<S::Dir>, dst: BorrowedFd) -> Result<bool> {
        let b = fsops::open_file(dst, e.name).map_err(at("opening", e.rel))?;
        if let SrcAt::Listed(i) = e.src {
            let local = crate::sync::digest::of_fd(&b).map_err(at("reading", e.rel))?;
            return Ok(Some(local) == self.listed(i)?.hash);
        }
        let a = self.src_open_file(e)?;
        with_buf(|buf| source::same_content(self.src, &a, &b, buf)).map_err(at("comparing", e.rel))
    }

    /// The xattrs the entry must end up with, and whether `have` already are
    /// them. A source that cannot carry xattrs leaves the destination's alone.
    pub(super) fn wanted_xattrs(&self, e: &Entry<S::Dir>, have: &Xattrs) -> Result<(Xattrs, bool)> {
        Ok(match self.src_xattrs(e)? {
            Some(sx) => {
                let same = sx == *have;
                (sx, same)
            }
            None => (have.clone(), true),
        })
    }
}
