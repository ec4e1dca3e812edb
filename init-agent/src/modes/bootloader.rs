//! `[[disk]] bootloader`: after a complete sync, the root disk made to boot
//! its local copy by itself (BIOS), for when the network gives the node no
//! kernel at all (the master down: no DHCP or TFTP answer, so the `local`
//! fallback of the PXE-loaded initramfs never runs). The plan's [`Install`]
//! carries every value; [`install`] does it, each part only where it
//! differs from what the disk has, so a re-sync rewrites nothing:
//!
//! - `/boot/extlinux/` in the synced root (protected from the sync, which
//!   would otherwise delete what the standard root lacks): the standard
//!   root's kernel of the running release, this initramfs written back out
//!   (the same agent with the same embedded configuration and hooks: it
//!   tries the master first and falls back to the local copy), and
//!   `extlinux.conf` with the running kernel command line;
//! - extlinux's boot sector and `ldlinux.sys`, by the standard root's own
//!   `extlinux --install`, chrooted like the hooks: the initramfs carries
//!   no extlinux, and the root's binary matches its own syslinux files;
//! - the `/` partition marked for the BIOS (GPT: `LegacyBIOSBootable`, DOS:
//!   active), then the MBR boot code of the root's syslinux-common
//!   (`gptmbr.bin` / `mbr.bin`) on the disk the configuration names, and no
//!   other: its first 440 bytes only, the disk id and the table stay.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Bootloader, Disk, TableType};
use crate::modes::disk::{self, DiskError, Found, TablePartition};
use crate::sys::fsops;
use crate::sys::machine::DISK_WAIT;
use crate::sys::root::Root;

/// Where the loader's files live in the node's root.
pub const DIR: &str = "/boot/extlinux";
/// The sync leaves them alone: they are the node's, not the standard's.
pub const PROTECT: &str = "/boot/extlinux/***";
const CONF: &str = "extlinux.conf";
const KERNEL: &str = "vmlinuz";
const INITRD: &str = "initrd.img";
/// What `extlinux --install` leaves; its boot sector points at it.
const LDLINUX: &str = "ldlinux.sys";
/// The MBR's boot code ends where the disk id and the table begin.
const BOOT_CODE: usize = 440;
/// extlinux writes a few files and one sector.
const EXTLINUX_TIMEOUT: Duration = Duration::from_secs(120);

/// The boot loader step: every value its executor needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Install {
    pub loader: Bootloader,
    /// The disk the configuration names (its MBR is written, no other).
    pub disk: Disk,
    /// 1-based number of its `/` partition, which the loader boots.
    pub partition: usize,
    /// The synced root, mounted.
    pub root: String,
    /// The kernel command line the loader hands on: this boot's.
    pub append: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BootloaderError {
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{0}")]
    Refused(String),
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> BootloaderError {
    let what = what.to_string();
    move |source| BootloaderError::Io { what, source }
}

/// The command line the disk boots with: this boot's, without what a boot
/// loader adds itself (`BOOT_IMAGE=`, `initrd=`); extlinux would take an
/// `initrd=` from PXE as another initramfs to load.
pub fn append(tokens: &[String], init_args: &[String]) -> String {
    let mut out: Vec<&str> = tokens
        .iter()
        .map(String::as_str)
        .filter(|t| !t.starts_with("initrd=") && !t.starts_with("BOOT_IMAGE="))
        .collect();
    if !init_args.is_empty() {
        out.push("--");
        out.extend(init_args.iter().map(String::as_str));
    }
    out.join(" ")
}

/// `extlinux.conf`: one entry, booted at once.
pub fn extlinux_conf(append: &str) -> String {
    format!(
        "# init-agent ([[disk]] bootloader): rewritten after each complete sync when it changes.\n\
         # The standard root's kernel and the initramfs that synced this copy: it tries the\n\
         # master first and boots this copy when the master is down.\n\
         DEFAULT init-agent\nPROMPT 0\nTIMEOUT 0\nLABEL init-agent\n  LINUX {DIR}/{KERNEL}\n  INITRD {DIR}/{INITRD}\n  APPEND {append}\n"
    )
}

/// syslinux-common's MBR boot code for the table: `gptmbr.bin` boots the
/// partition marked LegacyBIOSBootable, `mbr.bin` the active one.
pub fn boot_code_file(table: TableType) -> &'static str {
    match table {
        TableType::Gpt => "/usr/lib/syslinux/mbr/gptmbr.bin",
        TableType::Dos => "/usr/lib/syslinux/mbr/mbr.bin",
    }
}

const GPT_BIOS: &str = "LegacyBIOSBootable";

/// Whether the partition is marked for that boot code already.
pub fn marked(table: TableType, p: &TablePartition) -> bool {
    match table {
        TableType::Gpt => p
            .attrs
            .as_deref()
            .is_some_and(|a| a.split_whitespace().any(|w| w == GPT_BIOS)),
        TableType::Dos => p.bootable,
    }
}

/// The sfdisk arguments that mark partition `n` (GPT: its other attributes
/// kept). Only the table changes: the kernel need not re-read it, and
/// cannot while the partition is mounted.
pub fn mark_args(table: TableType, device: &str, n: usize, p: &TablePartition) -> Vec<String> {
    let mut args: Vec<String> = vec!["--no-reread".into(), "--no-tell-kernel".into()];
    match table {
        TableType::Gpt => {
            let mut attrs: Vec<&str> = p
                .attrs
                .as_deref()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            attrs.push(GPT_BIOS);
            args.extend([
                "--part-attrs".into(),
                device.into(),
                n.to_string(),
                attrs.join(","),
            ]);
        }
        TableType::Dos => args.extend(["--activate".into(), device.into(), n.to_string()]),
    }
    args
}

/// Installs the loader as `i` says; `initramfs` is the running image's
/// tree (`/` before switch_root). Returns what it changed (nothing on a
/// re-sync where nothing did).
pub fn install(i: &Install, initramfs: &Path) -> Result<Vec<String>, BootloaderError> {
    // extlinux is the one loader; another would be matched here.
    let Bootloader::Extlinux = i.loader;
    let (device, _, found) = disk::inspect(&i.disk, DISK_WAIT)?;
    if found != Found::Ours {
        return Err(BootloaderError::Refused(format!(
            "disk {}: not our prepared layout ({found:?}): its boot sector is left alone",
            device.display()
        )));
    }
    let dev = device.display().to_string();
    let root = Root::open(Path::new(&i.root)).map_err(io_err(&i.root))?;
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let vmlinuz = format!("/boot/vmlinuz-{release}");
    let kernel = read_regular(&root, &vmlinuz).map_err(|e| {
        BootloaderError::Refused(format!(
            "{}{vmlinuz}: {e}: the standard root needs the running kernel ({release}), whose modules this initramfs carries",
            i.root
        ))
    })?;
    let mut changed = Vec::new();
    root.mkdir_p(DIR)
        .map_err(io_err(format!("{}{DIR}", i.root)))?;
    for (name, data) in [
        (KERNEL, kernel),
        (CONF, extlinux_conf(&i.append).into_bytes()),
    ] {
        let path = format!("{DIR}/{name}");
        let same = read_regular(&root, &path).is_ok_and(|have| have == data);
        if !same {
            replace(&root, &path, &data).map_err(io_err(format!("{}{path}", i.root)))?;
            changed.push(path);
        }
    }
    // The initramfs is compared uncompressed: unpacking the disk's copy
    // costs a fraction of packing this one (about 1 s against 5 under TCG).
    let cpio = crate::initramfs::running_image(initramfs).map_err(io_err(format!(
        "the running initramfs {}",
        initramfs.display()
    )))?;
    let path = format!("{DIR}/{INITRD}");
    let have = read_regular(&root, &path).ok().and_then(|gz| {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut out)
            .ok()
            .map(|_| out)
    });
    if have.as_deref() != Some(cpio.as_slice()) {
        let mut gz = Vec::new();
        crate::initramfs::gzip(&cpio, &mut gz).map_err(io_err("compressing the initramfs"))?;
        replace(&root, &path, &gz).map_err(io_err(format!("{}{path}", i.root)))?;
        changed.push(path);
    }
    if root.kind(&format!("{DIR}/{LDLINUX}"), false).is_none() {
        let ran = crate::hooks::run_in_root(
            Path::new(&i.root),
            "extlinux",
            &["--install", DIR],
            EXTLINUX_TIMEOUT,
        )
        .map_err(|e| BootloaderError::Refused(format!("extlinux: {e}")))?;
        if !ran.ok {
            return Err(BootloaderError::Refused(format!(
                "extlinux --install {DIR} in {}: {} (the standard root needs Debian's extlinux)",
                i.root, ran.status
            )));
        }
        changed.push(format!("extlinux boot sector of partition {}", i.partition));
    }
    let table = disk::read_table(&device)?
        .ok_or_else(|| BootloaderError::Refused(format!("disk {dev}: no partition table")))?;
    let part = i
        .partition
        .checked_sub(1)
        .and_then(|n| table.partitions.get(n))
        .ok_or_else(|| {
            BootloaderError::Refused(format!("disk {dev}: no partition {}", i.partition))
        })?;
    if !marked(i.disk.table, part) {
        disk::tool(
            &device,
            "marking the partition bootable",
            Command::new("sfdisk").args(mark_args(i.disk.table, &dev, i.partition, part)),
        )?;
        changed.push(format!("partition {} marked bootable", i.partition));
    }
    // After the table: sfdisk rewrites the first sector as it read it.
    let code_file = boot_code_file(i.disk.table);
    let code = read_regular(&root, code_file)
        .map_err(|e| {
            BootloaderError::Refused(format!(
                "{}{code_file}: {e} (the standard root needs Debian's syslinux-common)",
                i.root
            ))
        })?
        .into_iter()
        .take(BOOT_CODE)
        .collect::<Vec<u8>>();
    if write_boot_code(&device, &code).map_err(io_err(format!("{dev}: the MBR boot code")))? {
        changed.push(format!("{dev} MBR boot code"));
    }
    let fd = root.open_dir("/").map_err(io_err(&i.root))?;
    fsops::syncfs(&fd).map_err(io_err(&i.root))?;
    Ok(changed)
}

/// A regular file of the root (symlinks resolved inside it), whole.
fn read_regular(root: &Root, path: &str) -> io::Result<Vec<u8>> {
    let fd = root.open_file(path)?;
    if !rustix::fs::fstat(&fd)
        .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_file())
        .unwrap_or(false)
    {
        return Err(io::Error::other("not a regular file"));
    }
    let mut data = Vec::new();
    std::fs::File::from(fd).read_to_end(&mut data)?;
    Ok(data)
}

/// Replaces `path` in the root with `data`: a temporary file, synced, then
/// renamed over it, so a power cut leaves the old file or the new one.
fn replace(root: &Root, path: &str, data: &[u8]) -> io::Result<()> {
    let (dir, name) = root.parent(path)?;
    let tmp = fsops::temp_name();
    let fd = fsops::create_temp_file(std::os::fd::AsFd::as_fd(&dir), &tmp)?;
    let mut f = std::fs::File::from(fd);
    let written = f
        .write_all(data)
        .and_then(|()| fsops::fsync(&f))
        .and_then(|()| fsops::rename(std::os::fd::AsFd::as_fd(&dir), &tmp, &name));
    if written.is_err() {
        let _ = fsops::unlink(std::os::fd::AsFd::as_fd(&dir), &tmp, false);
    }
    written
}

/// Writes `code` over the start of the disk unless it is there already.
fn write_boot_code(device: &Path, code: &[u8]) -> io::Result<bool> {
    if code.len() != BOOT_CODE {
        return Err(io::Error::other(format!(
            "{} bytes of boot code, not {BOOT_CODE}",
            code.len()
        )));
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)?;
    let mut have = vec![0u8; BOOT_CODE];
    f.read_exact(&mut have)?;
    if have == code {
        return Ok(false);
    }
    f.seek(SeekFrom::Start(0))?;
    f.write_all(code)?;
    f.sync_all()?;
    Ok(true)
}

#[cfg(test)]
mod tests;
