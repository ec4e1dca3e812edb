//! The export as the sync engine's `Source`. Directories remember what their
//! listing said of each entry, so that opening an entry costs no LOOKUP; a
//! handle remembers where it was found, so that one the server calls stale is
//! looked up again; a big file is read with every pooled connection at once.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use nfs3_client::nfs3_types::nfs3::{nfs_fh3, READ3args, READLINK3args};

use super::client::Nfs;
use super::convert::{is_stale, result};
use crate::source::tree::{Copied, Source};
use crate::sync::digest::{self, Pieces};
use crate::sync::meta::{Kind, Meta, Xattrs};
use crate::sys::fsops;

/// A file handle, and where it was found: a handle the server calls stale
/// (the entry was replaced, or a server cache held an old one) is looked up
/// again by name once, as the kernel client revalidates.
struct Handle {
    fh: Mutex<nfs_fh3>,
    origin: Option<(nfs_fh3, CString)>,
}

impl Handle {
    fn new(fh: nfs_fh3, origin: Option<(nfs_fh3, CString)>) -> Handle {
        Handle {
            fh: Mutex::new(fh),
            origin,
        }
    }

    fn get(&self) -> nfs_fh3 {
        match self.fh.lock() {
            Ok(fh) => fh.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, fh: nfs_fh3) {
        if let Ok(mut h) = self.fh.lock() {
            *h = fh;
        }
    }

    fn same(&self) -> Handle {
        Handle::new(self.get(), self.origin.clone())
    }
}

/// A source directory: its handle, and what its listing said of each entry,
/// so that opening an entry costs no LOOKUP.
pub struct Dir {
    h: Handle,
    listed: Mutex<HashMap<CString, (nfs_fh3, Meta)>>,
}

impl Dir {
    fn new(h: Handle) -> Dir {
        Dir {
            h,
            listed: Mutex::new(HashMap::new()),
        }
    }
}

/// A regular file being read; sparse by the server's attributes (a manifest's
/// record of the file has no block count).
pub struct File {
    h: Handle,
    sparse: bool,
}

impl Nfs {
    /// The directory the URL names, where a sync starts.
    pub fn root(&self) -> Dir {
        Dir::new(Handle::new(self.root.clone(), None))
    }

    /// `op` on the handle; once more on a freshly looked-up one if it is stale.
    fn with_handle<T>(&self, h: &Handle, op: impl Fn(&nfs_fh3) -> io::Result<T>) -> io::Result<T> {
        let fh = h.get();
        match op(&fh) {
            Err(e) if is_stale(&e) => {
                let Some((parent, name)) = &h.origin else {
                    return Err(e);
                };
                log::debug!(
                    "nfs {}: stale handle for {name:?}, looking it up again",
                    self.what
                );
                let (new, _) = self.lookup_fresh(parent, name)?;
                h.set(new.clone());
                op(&new)
            }
            r => r,
        }
    }

    /// The entry's handle (with where it came from) and attributes: from the
    /// directory's listing when it has one, else by LOOKUP.
    fn lookup(&self, dir: &Dir, name: &CStr) -> io::Result<(Handle, Meta)> {
        if let Some((fh, m)) = dir.listed.lock().ok().and_then(|l| l.get(name).cloned()) {
            return Ok((Handle::new(fh, Some((dir.h.get(), name.to_owned()))), m));
        }
        self.with_handle(&dir.h, |d| {
            let (fh, m) = self.lookup_fresh(d, name)?;
            Ok((Handle::new(fh, Some((d.clone(), name.to_owned()))), m))
        })
    }

    fn file_handle(&self, dir: &Dir, name: &CStr, want: Kind) -> io::Result<(Handle, Meta)> {
        let (h, m) = self.lookup(dir, name)?;
        if m.kind != want {
            return Err(match want {
                Kind::Dir => io::Error::from_raw_os_error(20),
                _ => io::Error::other("changed type while being read"),
            });
        }
        Ok((h, m))
    }
}

impl Source for Nfs {
    type Dir = Dir;
    type File = File;

    fn open_dir(&self, dir: &Dir, name: &CStr) -> io::Result<Dir> {
        if name == c"." {
            return Ok(Dir::new(dir.h.same()));
        }
        let parent = dir.h.get();
        let key = (parent.data.to_vec(), name.to_owned());
        let known = self.dirs.lock().ok().and_then(|d| d.get(&key).cloned());
        let h = match known {
            Some(fh) => Handle::new(fh, Some((parent, name.to_owned()))),
            None => {
                let (h, _) = self.file_handle(dir, name, Kind::Dir)?;
                if let Ok(mut d) = self.dirs.lock() {
                    d.insert(key, h.get());
                }
                h
            }
        };
        Ok(Dir::new(h))
    }

    fn list(&self, dir: &Dir) -> io::Result<Vec<(CString, Meta)>> {
        let mut entries = self.with_handle(&dir.h, |fh| self.readdirplus(fh))?;
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut listed = dir
            .listed
            .lock()
            .map_err(|_| io::Error::other("listing poisoned"))?;
        Ok(entries
            .into_iter()
            .map(|(name, fh, m)| {
                listed.insert(name.clone(), (fh, m.clone()));
                (name, m)
            })
            .collect())
    }

    fn lstat(&self, dir: &Dir, name: &CStr) -> io::Result<Meta> {
        if name == c"." {
            return self.with_handle(&dir.h, |fh| self.getattr(fh));
        }
        Ok(self.lookup(dir, name)?.1)
    }

    fn readlink(&self, dir: &Dir, name: &CStr) -> io::Result<CString> {
        let (h, _) = self.file_handle(dir, name, Kind::Symlink)?;
        self.with_handle(&h, |fh| {
            let args = READLINK3args {
                symlink: fh.clone(),
            };
            let ok = result(
                self.pool
                    .call("READLINK", async |c| c.readlink(&args).await)?,
            )?;
            CString::new(ok.data.0.to_vec()).map_err(io::Error::other)
        })
    }

    fn xattrs(&self, _dir: &Dir, _name: &CStr) -> io::Result<Option<Xattrs>> {
        Ok(None)
    }

    fn open_file(&self, dir: &Dir, name: &CStr) -> io::Result<(File, Meta)> {
        let (h, m) = self.file_handle(dir, name, Kind::File)?;
        let sparse = m.looks_sparse();
        Ok((File { h, sparse }, m))
    }

    fn read_at(&self, file: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
        let count = u32::try_from(buf.len()).unwrap_or(u32::MAX).min(self.rsize);
        let ok = self.with_handle(&file.h, |fh| {
            let args = READ3args {
                file: fh.clone(),
                offset: off,
                count,
            };
            result(self.pool.call("READ", async |c| c.read(&args).await)?)
        })?;
        let data = ok.data.as_ref();
        if data.len() > buf.len() {
            return Err(io::Error::other("READ returned more than asked"));
        }
        buf[..data.len()].copy_from_slice(data);
        Ok(data.len())
    }

    fn copy_to(
        &self,
        file: &File,
        meta: &Meta,
        dst: &OwnedFd,
        buf: &mut Vec<u8>,
        hash: bool,
    ) -> io::Result<Copied> {
        // NFSv3 cannot say where the holes are: all-zero blocks of a file that
        // uses fewer blocks than its size are left as holes.
        // Hashed, the READs are pieces of BLAKE3's tree: a power of two each.
        let pieces = Pieces::piece_len(self.rsize).filter(|_| hash);
        let chunk = pieces.unwrap_or(u64::from(self.rsize));
        if meta.size <= 2 * chunk || (hash && pieces.is_none()) {
            let mut h = hash.then(blake3::Hasher::new);
            let mut nfs_read = |b: &mut [u8], off| self.read_at(file, b, off);
            let bytes = fsops::copy_by_reads(
                &mut digest::hashing(h.as_mut(), &mut nfs_read),
                dst,
                meta.size,
                file.sparse,
                self.rsize as usize,
                buf,
            )?;
            let digest = h.as_ref().map(digest::finish);
            return Ok(Copied { bytes, digest });
        }
        // A big file: its READs in flight together, one thread per pooled
        // connection taking the next chunk, each written where it belongs
        // (and hashed there, as a subtree).
        // Threads of its own, not the walk's pool: a pool worker waiting here
        // would pick up the walk's other work in the middle of this copy.
        let chunks = meta.size.div_ceil(chunk);
        let tree = pieces.map(|len| Pieces::new(len, meta.size));
        let next = AtomicU64::new(0);
        let written = AtomicU64::new(0);
        let readers = (self.pool.limit() as u64).min(chunks);
        let worker = || -> io::Result<()> {
            let mut b = vec![0u8; chunk as usize];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= chunks {
                    return Ok(());
                }
                let off = i * chunk;
                let want = (meta.size - off).min(chunk) as usize;
                let copied = crate::source::tree::read_full(self, file, &mut b[..want], off)
                    .and_then(|n| {
                        if let Some(t) = &tree {
                            t.add(i, &b[..n], want);
                        }
                        fsops::write_data_at(dst, &b[..n], off, file.sparse)
                    });
                match copied {
                    Ok(w) => written.fetch_add(w, Ordering::Relaxed),
                    Err(e) => {
                        // The others stop at their next chunk.
                        next.store(chunks, Ordering::Relaxed);
                        return Err(e);
                    }
                };
            }
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..readers).map(|_| s.spawn(worker)).collect();
            handles.into_iter().try_for_each(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("a reader thread panicked")))
            })
        })?;
        rustix::fs::ftruncate(dst, meta.size)?;
        Ok(Copied {
            bytes: written.into_inner(),
            digest: tree.and_then(Pieces::finish),
        })
    }

    fn workers(&self) -> usize {
        self.pool.limit()
    }
}
