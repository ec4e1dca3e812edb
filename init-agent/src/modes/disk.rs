//! Sync mode's local disk: decide whether a disk may be written (pure, from
//! what `sfdisk --json` and the first and last MiB show), then partition it
//! with sfdisk and format it with mke2fs & co. Only the disk the configuration
//! or `initagent.disk=` names is ever opened, and it is only written when it
//! is blank, half-prepared by us, ours, or `wipe = true` names exactly it.
//!
//! Crash safety of the first boot: the table is written with a *preparing*
//! disk identifier; only after every file system is made does the identifier
//! become final. A power cut in between leaves a disk that the next boot
//! recognises as its own unfinished work and prepares again from scratch.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::config::{Disk, FsType, Partition, Size, TableType};

/// GPT disk GUID while a layout is being made (a constant no tool picks).
pub const GPT_PREPARING: &str = "1A9E17A5-0000-4000-8000-1A9E17A50000";
/// DOS disk identifiers: ours while preparing, and ours when done.
pub const DOS_PREPARING: &str = "0x1a9e17a4";
pub const DOS_READY: &str = "0x1a9e17a5";
/// Space sfdisk keeps before the first partition and, on GPT, for the backup table.
const OVERHEAD: u64 = 2 << 20;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("disk {device}: {why}")]
    Refused { device: String, why: Refusal },
    #[error("disk {device}: {op}: {why}")]
    Tool {
        device: String,
        op: String,
        why: String,
    },
}

/// Why a disk is not used, or not yet: what follows `disk <device>: `.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("refused: it holds {0}; set wipe = true for exactly this [[disk]] to repartition it")]
    Foreign(String),
    #[error("the layout needs {} MiB, the disk has {} MiB", .needs >> 20, .has >> 20)]
    TooSmall { needs: u64, has: u64 },
    #[error("{} did not appear within {} s", .path.display(), .timeout.as_secs())]
    Missing { path: PathBuf, timeout: Duration },
    /// The size in sysfs unreadable, or not a number.
    #[error("{path}: {error}")]
    Size { path: String, error: io::Error },
    #[error("opening: {0}")]
    Open(io::Error),
    #[error("reading at {at}: {error}")]
    Read { at: u64, error: io::Error },
    #[error("a disk GUID: {0}")]
    Guid(io::Error),
    #[error("no partition has mount = \"/\"")]
    NoRoot,
    #[error("{}: not mountable", .0.display())]
    NotMountable(PathBuf),
    #[error("{at}: {error}")]
    MountPoint { at: String, error: io::Error },
    #[error("{0}")]
    Mount(crate::sys::MountError),
}

/// What is on a disk, as far as writing it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No partition table and only zeros at both ends.
    Blank,
    /// Our layout, left half-made by an interrupted first boot.
    Preparing,
    /// Our layout, prepared.
    Ours,
    /// Anything else, with what makes it foreign.
    Foreign(String),
}

/// `sfdisk --json` output, the parts we read.
#[derive(Debug, Deserialize)]
pub struct SfdiskJson {
    pub partitiontable: Table,
}

#[derive(Debug, Deserialize)]
pub struct Table {
    pub label: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub partitions: Vec<TablePartition>,
}

#[derive(Debug, Deserialize)]
pub struct TablePartition {
    pub node: String,
    #[serde(default)]
    pub name: Option<String>,
    /// GPT attribute names, space separated (`LegacyBIOSBootable`).
    #[serde(default)]
    pub attrs: Option<String>,
    /// DOS: the active (boot) flag.
    #[serde(default)]
    pub bootable: bool,
}

/// Classifies a disk against its layout. `table` is None when sfdisk found
/// no partition table; `ends_zero` says whether the first and last MiB are
/// all zeros (a file system without a table is not blank).
pub fn classify(layout: &Disk, table: Option<&Table>, ends_zero: bool) -> Found {
    let Some(t) = table else {
        return if ends_zero {
            Found::Blank
        } else {
            Found::Foreign("no partition table, but data at its start or end".into())
        };
    };
    let id = t.id.as_deref().unwrap_or_default();
    let (want_label, ours_when) = match layout.table {
        TableType::Gpt => ("gpt", names_match(layout, t)),
        TableType::Dos => (
            "dos",
            t.partitions.len() == layout.partition.len()
                && (id.eq_ignore_ascii_case(DOS_READY) || id.eq_ignore_ascii_case(DOS_PREPARING)),
        ),
    };
    if t.label != want_label {
        return Found::Foreign(format!(
            "a {} partition table, the layout wants {want_label}",
            t.label
        ));
    }
    if !ours_when {
        let names: Vec<&str> = t
            .partitions
            .iter()
            .map(|p| p.name.as_deref().unwrap_or("-"))
            .collect();
        return Found::Foreign(format!(
            "{} partition(s) ({}) that the layout did not make",
            t.partitions.len(),
            names.join(", ")
        ));
    }
    if id.eq_ignore_ascii_case(GPT_PREPARING) || id.eq_ignore_ascii_case(DOS_PREPARING) {
        Found::Preparing
    } else {
        Found::Ours
    }
}

fn names_match(layout: &Disk, t: &Table) -> bool {
    t.partitions.len() == layout.partition.len()
        && t.partitions
            .iter()
            .zip(&layout.partition)
            .all(|(have, want)| have.name.as_deref() == Some(want.name.as_str()))
}

/// What may be done to a disk: `Ok(Some(why))` = (re)partition and format,
/// `Ok(None)` = use as it is, `Err` = refused, untouched.
pub fn decide(layout: &Disk, found: &Found) -> Result<Option<String>, Refusal> {
    match found {
        Found::Blank => Ok(Some("blank".into())),
        Found::Preparing => Ok(Some(
            "left half-prepared by an interrupted first boot".into(),
        )),
        Found::Ours => Ok(None),
        Found::Foreign(why) if layout.wipe => Ok(Some(format!("wipe = true and it holds {why}"))),
        Found::Foreign(why) => Err(Refusal::Foreign(why.clone())),
    }
}

/// Refuses a layout that does not fit: every fixed size plus sfdisk's
/// alignment and table space, and at least 16 MiB for a `rest` partition.
pub fn check_fits(layout: &Disk, disk_bytes: u64) -> Result<(), Refusal> {
    let fixed: u64 = layout
        .partition
        .iter()
        .map(|p| match p.size {
            Size::Bytes(b) => b,
            Size::Rest => 16 << 20,
        })
        .fold(OVERHEAD, u64::saturating_add);
    if fixed > disk_bytes {
        return Err(Refusal::TooSmall {
            needs: fixed,
            has: disk_bytes,
        });
    }
    Ok(())
}

/// The sfdisk script of a layout, with the preparing identifier.
pub fn sfdisk_script(layout: &Disk) -> String {
    let mut s = String::new();
    match layout.table {
        TableType::Gpt => s.push_str(&format!("label: gpt\nlabel-id: {GPT_PREPARING}\n")),
        TableType::Dos => s.push_str(&format!("label: dos\nlabel-id: {DOS_PREPARING}\n")),
    }
    for p in &layout.partition {
        let mut fields = Vec::new();
        if let Size::Bytes(b) = p.size {
            fields.push(format!("size={}KiB", b.div_ceil(1024)));
        }
        fields.push(format!("type={}", partition_type(layout.table, p.fs)));
        if layout.table == TableType::Gpt {
            fields.push(format!("name={}", p.name));
        }
        s.push_str(&fields.join(", "));
        s.push('\n');
    }
    s
}

fn partition_type(table: TableType, fs: FsType) -> &'static str {
    match (table, fs) {
        (_, FsType::Swap) => "S",
        (TableType::Gpt, FsType::Vfat) => "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
        (TableType::Dos, FsType::Vfat) => "c",
        _ => "L",
    }
}

/// `/dev/sda` → `/dev/sda3`, `/dev/nvme0n1` → `/dev/nvme0n1p3`: the kernel
/// puts a `p` between names ending in a digit and the number.
pub fn partition_path(disk: &Path, number: usize) -> PathBuf {
    let s = disk.to_string_lossy();
    let sep = if s.ends_with(|c: char| c.is_ascii_digit()) {
        "p"
    } else {
        ""
    };
    PathBuf::from(format!("{s}{sep}{number}"))
}

/// The mkfs command line for one partition.
pub fn mkfs_command(p: &Partition, device: &Path) -> Option<(&'static str, Vec<String>)> {
    let (tool, fixed): (&str, &[&str]) = match p.fs {
        FsType::Ext4 => ("mke2fs", &["-q", "-F", "-t", "ext4", "-L"]),
        FsType::Xfs => ("mkfs.xfs", &["-q", "-f", "-L"]),
        FsType::Vfat => ("mkfs.vfat", &["-n"]),
        FsType::Swap => ("mkswap", &["-L"]),
        FsType::None => return None,
    };
    let mut args: Vec<String> = fixed.iter().map(|a| a.to_string()).collect();
    args.push(p.name.clone());
    args.extend(p.mkfs_options.iter().cloned());
    args.push(device.display().to_string());
    Some((tool, args))
}

/// The file system type mount(2) takes for a partition.
pub fn mount_type(fs: FsType) -> Option<&'static str> {
    match fs {
        FsType::Ext4 => Some("ext4"),
        FsType::Xfs => Some("xfs"),
        FsType::Vfat => Some("vfat"),
        FsType::Swap | FsType::None => None,
    }
}

/// fstab lines for the partitions the layouts mount or swap on, by label.
pub fn fstab_lines(disks: &[Disk]) -> Vec<String> {
    let mut out = Vec::new();
    for p in disks.iter().flat_map(|d| &d.partition) {
        match (p.fs, &p.mount) {
            (FsType::Swap, _) => out.push(format!("LABEL={} none swap sw 0 0", p.name)),
            (fs, Some(m)) => {
                if let Some(t) = mount_type(fs) {
                    // The root is mounted (and journal-replayed) by the agent: no fsck pass.
                    let pass = if m == "/" { 0 } else { 2 };
                    out.push(format!("LABEL={} {m} {t} defaults 0 {pass}", p.name));
                }
            }
            _ => {}
        }
    }
    out
}

/// A prepared disk: its canonical device and the partitions' device paths.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub device: PathBuf,
    pub partitions: Vec<PathBuf>,
    /// Partitioned and formatted by this boot.
    pub fresh: bool,
}

/// Runs `op` on the partition node `dev`, again when it failed while the
/// node was gone. Under dracut and initramfs-tools, udev re-reads the
/// partition table when a writer of the whole disk (sfdisk) closes it,
/// removing and re-adding the partition nodes: a node found a moment ago
/// may be missing when mkfs or mount opens it (seen in QEMU: "mke2fs
/// /dev/vda1: The file /dev/vda1 does not exist"). Our own image runs no udev.
pub fn on_partition<T, E>(
    dev: &Path,
    wait: Duration,
    mut op: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut tries = 1;
    loop {
        match op() {
            Err(e) if tries < 3 && !dev.exists() => {
                log::warn!(
                    "{} went away (udev re-reading the table): trying again",
                    dev.display()
                );
                if wait_for(dev, wait).is_err() {
                    return Err(e);
                }
                tries += 1;
            }
            done => return done,
        }
    }
}

/// Waits for a device node: virtio and SCSI disks appear some time after
/// their driver loads, partitions after the table is re-read.
pub fn wait_for(path: &Path, timeout: Duration) -> Result<PathBuf, Refusal> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(p) = path.canonicalize() {
            return Ok(p);
        }
        if Instant::now() >= deadline {
            return Err(Refusal::Missing {
                path: path.to_path_buf(),
                timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn tool(device: &Path, op: &str, cmd: &mut Command) -> Result<Vec<u8>, DiskError> {
    let err = |why: String| DiskError::Tool {
        device: device.display().to_string(),
        op: op.to_string(),
        why,
    };
    let out = cmd.output().map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        return Err(err(format!(
            "{} ({})",
            text.lines().last().unwrap_or_default().trim(),
            out.status
        )));
    }
    Ok(out.stdout)
}

/// Size in bytes from sysfs (`/sys/class/block/<name>/size` counts 512-byte sectors).
fn size_of(device: &Path) -> Result<u64, Refusal> {
    let name = device.file_name().unwrap_or_default().to_string_lossy();
    let path = format!("/sys/class/block/{name}/size");
    std::fs::read_to_string(&path)
        .and_then(|s| {
            // A number that does not parse is bad data in the file, worded as the parser says.
            s.trim()
                .parse::<u64>()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        })
        .map(|s| s * 512)
        .map_err(|error| Refusal::Size { path, error })
}

/// Whether the first and the last MiB of the device are all zeros.
fn ends_zero(device: &Path, size: u64) -> Result<bool, Refusal> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(device).map_err(Refusal::Open)?;
    let span = (1u64 << 20).min(size);
    let mut buf = vec![0u8; span as usize];
    for at in [0, size - span] {
        f.seek(SeekFrom::Start(at))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(|error| Refusal::Read { at, error })?;
        if buf.iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Reads the partition table; `None` when there is none.
pub fn read_table(device: &Path) -> Result<Option<Table>, DiskError> {
    let out = Command::new("sfdisk")
        .arg("--json")
        .arg(device)
        .output()
        .map_err(|e| DiskError::Tool {
            device: device.display().to_string(),
            op: "running sfdisk --json".into(),
            why: e.to_string(),
        })?;
    if !out.status.success() || out.stdout.is_empty() {
        // sfdisk says "does not contain a recognized partition table" and fails.
        return Ok(None);
    }
    serde_json::from_slice::<SfdiskJson>(&out.stdout)
        .map(|j| Some(j.partitiontable))
        .map_err(|e| DiskError::Tool {
            device: device.display().to_string(),
            op: "reading sfdisk --json".into(),
            why: e.to_string(),
        })
}

/// Looks at a disk without writing it: its canonical device, its size and
/// what is on it.
pub fn inspect(layout: &Disk, wait: Duration) -> Result<(PathBuf, u64, Found), DiskError> {
    let refused = |why: Refusal| DiskError::Refused {
        device: layout.device.clone(),
        why,
    };
    let device = wait_for(Path::new(&layout.device), wait).map_err(refused)?;
    let size = size_of(&device).map_err(refused)?;
    let table = read_table(&device)?;
    let zero = if table.is_none() {
        ends_zero(&device, size).map_err(refused)?
    } else {
        false
    };
    Ok((device, size, classify(layout, table.as_ref(), zero)))
}

/// Makes a disk ready by its layout: checks, then (only where [`decide`]
/// allows) partitions and formats it.
pub fn prepare(layout: &Disk, wait: Duration) -> Result<Prepared, DiskError> {
    let refused = |why: Refusal| DiskError::Refused {
        device: layout.device.clone(),
        why,
    };
    let (device, size, found) = inspect(layout, wait)?;
    check_fits(layout, size).map_err(refused)?;
    let why = decide(layout, &found).map_err(refused)?;
    let partitions: Vec<PathBuf> = (1..=layout.partition.len())
        .map(|n| partition_path(&device, n))
        .collect();
    let Some(why) = why else {
        log::info!("disk {}: our layout, kept", device.display());
        for p in &partitions {
            wait_for(p, wait).map_err(refused)?;
        }
        return Ok(Prepared {
            device,
            partitions,
            fresh: false,
        });
    };
    log::warn!(
        "disk {}: {why}: partitioning and formatting ({} MiB)",
        device.display(),
        size >> 20
    );
    let script = sfdisk_script(layout);
    let mut child = Command::new("sfdisk")
        .args(["--quiet", "--wipe", "always", "--wipe-partitions", "always"])
        .arg(&device)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| DiskError::Tool {
            device: device.display().to_string(),
            op: "running sfdisk".into(),
            why: e.to_string(),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| DiskError::Tool {
        device: device.display().to_string(),
        op: "running sfdisk".into(),
        why: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(DiskError::Tool {
            device: device.display().to_string(),
            op: "partitioning".into(),
            why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    for (p, dev) in layout.partition.iter().zip(&partitions) {
        wait_for(dev, wait).map_err(refused)?;
        if let Some((prog, args)) = mkfs_command(p, dev) {
            on_partition(dev, wait, || {
                tool(
                    &device,
                    &format!("{prog} {}", dev.display()),
                    Command::new(prog).args(&args),
                )
            })?;
            log::info!("{}: {:?} `{}` made", dev.display(), p.fs, p.name);
        }
    }
    let final_id = match layout.table {
        TableType::Gpt => std::fs::read_to_string("/proc/sys/kernel/random/uuid")
            .map(|u| u.trim().to_uppercase())
            .map_err(|e| refused(Refusal::Guid(e)))?,
        TableType::Dos => DOS_READY.to_string(),
    };
    tool(
        &device,
        "marking the layout complete",
        Command::new("sfdisk")
            .arg("--disk-id")
            .arg(&device)
            .arg(&final_id),
    )?;
    Ok(Prepared {
        device,
        partitions,
        fresh: true,
    })
}

#[cfg(test)]
pub(crate) mod tests;
