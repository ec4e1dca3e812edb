//! The content digest the manifest records for a regular file: BLAKE3 of its
//! bytes, the first 16 bytes of the hash. A signed root's files are hashed
//! while they are copied, never read a second time: in order through a
//! sequential copy ([`hashing`]), or piece by piece where READs are in flight
//! together and land in any order ([`Pieces`], BLAKE3's tree mode: each piece
//! is a subtree whose chaining value is computed where it arrives, and the
//! root is merged from them at the end).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use blake3::hazmat::{
    merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};
use blake3::{Hasher, CHUNK_LEN};

pub type Digest = [u8; 16];

pub fn finish(h: &Hasher) -> Digest {
    truncate(h.finalize())
}

fn truncate(h: blake3::Hash) -> Digest {
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.as_bytes()[..16]);
    out
}

pub fn of_bytes(contents: &[u8]) -> Digest {
    truncate(blake3::hash(contents))
}

/// A file's digest, read from its descriptor.
pub fn of_fd(fd: &OwnedFd) -> io::Result<Digest> {
    let mut h = Hasher::new();
    // Sized to the file: most files of a root are small, and zeroing a
    // 256 KiB buffer for each cost more than hashing them. One byte more
    // than the size sees EOF at once.
    let size = rustix::fs::fstat(fd)?.st_size.max(0) as usize;
    let mut buf = vec![0u8; size.saturating_add(1).clamp(4096, 256 * 1024)];
    let mut off = 0u64;
    loop {
        let n = rustix::io::pread(fd, &mut buf[..], off)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        off += n as u64;
    }
    Ok(finish(&h))
}

/// `read` (reads taken in order from offset 0, as a sequential copy makes
/// them), with every byte read also fed to `h` when there is one.
pub fn hashing<'a>(
    mut h: Option<&'a mut Hasher>,
    read: &'a mut dyn FnMut(&mut [u8], u64) -> io::Result<usize>,
) -> impl FnMut(&mut [u8], u64) -> io::Result<usize> + 'a {
    move |b, off| {
        let n = read(b, off)?;
        if let Some(h) = h.as_deref_mut() {
            h.update(&b[..n]);
        }
        Ok(n)
    }
}

/// A file's digest from pieces of `len` bytes (a power of two) hashed in
/// any order, each where it was read. A piece that came back short (the file
/// shrank while copied) spoils the digest: no subtree can stand for it.
pub struct Pieces {
    len: u64,
    count: u64,
    cvs: Mutex<Vec<Option<ChainingValue>>>,
    short: std::sync::atomic::AtomicBool,
}

impl Pieces {
    /// The largest piece that fits in `max` bytes (one READ), or None where
    /// that is below BLAKE3's chunk (no subtree is that small).
    pub fn piece_len(max: u32) -> Option<u64> {
        let max = u64::from(max);
        let len = 1u64 << (63 - max.max(1).leading_zeros());
        (len >= CHUNK_LEN as u64).then_some(len)
    }

    pub fn new(len: u64, size: u64) -> Self {
        let count = size.div_ceil(len);
        Pieces {
            len,
            count,
            cvs: Mutex::new(vec![None; count as usize]),
            short: Default::default(),
        }
    }

    /// Piece `i` (at offset `i * len`) read in full as `bytes`, or short.
    pub fn add(&self, i: u64, bytes: &[u8], want: usize) {
        if bytes.is_empty() || bytes.len() != want || i >= self.count {
            self.short.store(true, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        let cv = Hasher::new()
            .set_input_offset(i * self.len)
            .update(bytes)
            .finalize_non_root();
        if let Ok(mut cvs) = self.cvs.lock() {
            cvs[i as usize] = Some(cv);
        }
    }

    /// The file's digest, or None where a piece is missing or was short.
    /// Only for files of two pieces or more (a single piece is the root
    /// itself, hashed as a whole).
    pub fn finish(self) -> Option<Digest> {
        if self.short.into_inner() || self.count < 2 {
            return None;
        }
        let cvs: Option<Vec<ChainingValue>> = self.cvs.into_inner().ok()?.into_iter().collect();
        let cvs = cvs?;
        let (l, r) = cvs.split_at(left_len(cvs.len()));
        Some(truncate(merge_subtrees_root(
            &merge(l),
            &merge(r),
            Mode::Hash,
        )))
    }
}

/// BLAKE3's left subtree of `n` >= 2 equal pieces (the last may be short):
/// the largest power of two below `n`.
fn left_len(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

fn merge(cvs: &[ChainingValue]) -> ChainingValue {
    if let [one] = cvs {
        return *one;
    }
    let (l, r) = cvs.split_at(left_len(cvs.len()));
    merge_subtrees_non_root(&merge(l), &merge(r), Mode::Hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces_digest(data: &[u8], len: u64, order: &[usize]) -> Option<Digest> {
        let p = Pieces::new(len, data.len() as u64);
        let chunks: Vec<&[u8]> = data.chunks(len as usize).collect();
        for &i in order {
            p.add(i as u64, chunks[i], chunks[i].len());
        }
        p.finish()
    }

    #[test]
    fn pieces_in_any_order_give_the_files_digest() {
        let data: Vec<u8> = (0..(5 * 4096 + 777))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let whole = truncate(blake3::hash(&data));
        // 6 pieces of 4 KiB, the last short, arriving out of order.
        assert_eq!(pieces_digest(&data, 4096, &[3, 0, 5, 1, 4, 2]), Some(whole));
        for n in 2..=17 {
            let d = &data[..n * 1024];
            let order: Vec<usize> = (0..n).rev().collect();
            assert_eq!(
                pieces_digest(d, 1024, &order),
                Some(truncate(blake3::hash(d))),
                "{n} pieces"
            );
        }
    }

    #[test]
    fn a_short_or_missing_piece_spoils_the_digest() {
        let data = vec![7u8; 3 * 2048];
        let p = Pieces::new(2048, data.len() as u64);
        p.add(0, &data[..2048], 2048);
        p.add(1, &data[..100], 2048);
        p.add(2, &data[..2048], 2048);
        assert_eq!(p.finish(), None);
        let p = Pieces::new(2048, data.len() as u64);
        p.add(0, &data[..2048], 2048);
        p.add(2, &data[..2048], 2048);
        assert_eq!(p.finish(), None);
    }

    #[test]
    fn piece_len_is_a_power_of_two_within_one_read() {
        assert_eq!(Pieces::piece_len(1 << 20), Some(1 << 20));
        assert_eq!(Pieces::piece_len(61440), Some(32768));
        assert_eq!(Pieces::piece_len(1024), Some(1024));
        assert_eq!(Pieces::piece_len(1023), None);
        assert_eq!(Pieces::piece_len(0), None);
    }

    #[test]
    fn hashing_reads_feed_the_hasher_in_order() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut h = Hasher::new();
        let mut read = |b: &mut [u8], off: u64| {
            let off = off as usize;
            let n = b.len().min(data.len() - off);
            b[..n].copy_from_slice(&data[off..off + n]);
            Ok(n)
        };
        {
            let mut r = hashing(Some(&mut h), &mut read);
            let mut buf = [0u8; 3000];
            let mut off = 0;
            loop {
                let n = r(&mut buf, off).unwrap();
                if n == 0 {
                    break;
                }
                off += n as u64;
            }
        }
        assert_eq!(finish(&h), truncate(blake3::hash(&data)));
    }
}
