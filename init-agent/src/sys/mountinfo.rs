//! The kernel's mount and swap tables as text (`/proc/self/mountinfo`,
//! `/proc/swaps`): read by the hosted driver (what dracut mounted) and by
//! `capture` (what below the captured root is not the node's disk).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted, unescaped.
    pub target: PathBuf,
    pub fstype: String,
    /// What is mounted: a device (`/dev/vda1`), `server:path`, or a name
    /// (`proc`, `tmpfs`).
    pub source: String,
    pub read_only: bool,
}

impl Mount {
    /// A file system on a block device: part of the machine's disks, unlike
    /// kernel, memory and network file systems.
    pub fn on_block_device(&self) -> bool {
        self.source.starts_with("/dev/")
    }
}

/// The mounts of a mountinfo text, in its order (a later one on the same
/// target is on top); malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            // ID PARENT MAJ:MIN ROOT TARGET OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some(Mount {
                target: unescape(f.get(4)?),
                read_only: f.get(5)?.split(',').any(|o| o == "ro"),
                fstype: f.get(sep + 1)?.to_string(),
                source: f.get(sep + 2)?.to_string(),
            })
        })
        .collect()
}

/// The swap files of a /proc/swaps text (not partitions).
pub fn swap_files(text: &str) -> Vec<PathBuf> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (name, kind) = (f.next()?, f.next()?);
            (kind == "file").then(|| unescape(name))
        })
        .collect()
}

/// The kernel writes space, tab, newline and backslash in these tables as
/// `\ooo` octal escapes.
fn unescape(field: &str) -> PathBuf {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = b.get(i + 1..i + 4).filter(|d| {
            b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        match code {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_and_swap_files_are_read_with_their_escapes() {
        let info = "22 1 0:21 / / rw,relatime - ext4 /dev/vda1 rw\n\
                    40 22 0:35 / /mnt/my\\040master ro,relatime shared:1 - nfs4 10.0.2.2:/export ro,vers=4.2\n\
                    41 22 0:36 / /run rw - tmpfs tmpfs rw\n\
                    garbage\n";
        let m = parse(info);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].target, PathBuf::from("/mnt/my master"));
        assert_eq!(
            (m[1].fstype.as_str(), m[1].source.as_str(), m[1].read_only),
            ("nfs4", "10.0.2.2:/export", true)
        );
        assert!(m[0].on_block_device() && !m[1].on_block_device() && !m[2].on_block_device());
        let swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                     /dev/vda2                               partition\t1048572\t\t0\t\t-2\n\
                     /swap\\040file                           file\t\t524284\t\t0\t\t-3\n";
        assert_eq!(swap_files(swaps), vec![PathBuf::from("/swap file")]);
        // A backslash not starting an escape stays.
        assert_eq!(unescape("a\\9b\\"), PathBuf::from("a\\9b\\"));
    }
}
