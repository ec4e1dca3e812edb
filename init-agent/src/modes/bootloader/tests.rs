use std::path::PathBuf;
use std::process::Command;

use super::*;
use crate::config::{FsType, Partition, Size};
use crate::modes::disk::tests::{scratch_image, write_table};
use crate::modes::disk::{classify, sfdisk_script, GPT_PREPARING};

fn v(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

fn part(attrs: Option<&str>, bootable: bool) -> TablePartition {
    TablePartition {
        node: "/dev/vda1".into(),
        name: Some("root".into()),
        attrs: attrs.map(String::from),
        bootable,
    }
}

#[test]
fn the_disk_boots_with_this_command_line_minus_what_the_loader_adds() {
    let tokens = v(&[
        "BOOT_IMAGE=/boot/extlinux/vmlinuz",
        "initrd=initrd-agent.img",
        "root=nfs:10.0.0.1:/srv/root",
        "initagent.mode=sync",
        "initagent.disk=/dev/sda",
        "quoted=\"a b\"",
    ]);
    assert_eq!(
        append(&tokens, &[]),
        "root=nfs:10.0.0.1:/srv/root initagent.mode=sync initagent.disk=/dev/sda quoted=\"a b\""
    );
    assert_eq!(append(&v(&["ro"]), &v(&["single", "x"])), "ro -- single x");
    // The tokens the command line parser keeps are those a re-boot gives again.
    let p = crate::cmdline::parse(
        "BOOT_IMAGE=/boot/extlinux/vmlinuz initrd=/boot/extlinux/initrd.img root=nfs:10.0.0.1:/r NODE=cn01 -- single",
    );
    let once = append(&p.tokens, &p.init_args);
    assert_eq!(once, "root=nfs:10.0.0.1:/r NODE=cn01 -- single");
    let again = crate::cmdline::parse(&format!(
        "BOOT_IMAGE=/boot/extlinux/vmlinuz initrd=/boot/extlinux/initrd.img {once}"
    ));
    assert_eq!(append(&again.tokens, &again.init_args), once);
}

#[test]
fn extlinux_conf_boots_one_entry_at_once() {
    let c = extlinux_conf("root=nfs:10.0.0.1:/r initagent.mode=sync");
    assert!(c.contains("\nDEFAULT init-agent\nPROMPT 0\nTIMEOUT 0\nLABEL init-agent\n"));
    assert!(c.contains("\n  LINUX /boot/extlinux/vmlinuz\n  INITRD /boot/extlinux/initrd.img\n"));
    assert!(c.ends_with("\n  APPEND root=nfs:10.0.0.1:/r initagent.mode=sync\n"));
}

#[test]
fn the_partition_is_marked_by_its_table_kind_keeping_other_attributes() {
    assert!(!marked(TableType::Gpt, &part(None, false)));
    assert!(!marked(
        TableType::Gpt,
        &part(Some("RequiredPartition"), true)
    ));
    assert!(marked(
        TableType::Gpt,
        &part(Some("RequiredPartition LegacyBIOSBootable"), false)
    ));
    assert!(!marked(TableType::Dos, &part(None, false)));
    assert!(marked(TableType::Dos, &part(None, true)));
    assert_eq!(
        mark_args(
            TableType::Gpt,
            "/dev/vda",
            2,
            &part(Some("RequiredPartition"), false)
        ),
        v(&[
            "--no-reread",
            "--no-tell-kernel",
            "--part-attrs",
            "/dev/vda",
            "2",
            "RequiredPartition,LegacyBIOSBootable"
        ])
    );
    assert_eq!(
        mark_args(TableType::Dos, "/dev/sda", 1, &part(None, false)),
        v(&[
            "--no-reread",
            "--no-tell-kernel",
            "--activate",
            "/dev/sda",
            "1"
        ])
    );
    assert_eq!(
        boot_code_file(TableType::Gpt),
        "/usr/lib/syslinux/mbr/gptmbr.bin"
    );
    assert_eq!(
        boot_code_file(TableType::Dos),
        "/usr/lib/syslinux/mbr/mbr.bin"
    );
}

/// A loop device of a 64 MiB image with our layout (`table`), made ours as
/// the disk stage makes it; detached and removed when dropped.
struct LoopDisk {
    dir: PathBuf,
    device: String,
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn layout(device: &str, table: TableType) -> Disk {
    Disk {
        device: device.into(),
        wipe: false,
        table,
        partition: vec![Partition {
            name: "root".into(),
            size: Size::Rest,
            fs: FsType::Ext4,
            mount: Some("/".into()),
            mkfs_options: Vec::new(),
        }],
        bootloader: Some(Bootloader::Extlinux),
    }
}

fn loop_disk(test: &str, table: TableType) -> Option<LoopDisk> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (a loop device)");
        return None;
    }
    let (dir, img) = scratch_image(&format!("bootloader-{test}-{table:?}"));
    let out = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(out.status.success(), "losetup: {out:?}");
    let device = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let disk = LoopDisk { dir, device };
    let script = sfdisk_script(&layout(&disk.device, table));
    let ready = match table {
        TableType::Gpt => script.replace(GPT_PREPARING, "0D3C0F4E-1111-4222-8333-444455556666"),
        TableType::Dos => script.replace(disk::DOS_PREPARING, disk::DOS_READY),
    };
    write_table(Path::new(&disk.device), &ready);
    Some(disk)
}

/// The synced root as the step finds it: the running kernel's image, the
/// root's syslinux MBR code, and extlinux already installed (its boot
/// sector is extlinux's own business, tested in QEMU).
fn synced_root(at: &Path) {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    std::fs::create_dir_all(at.join("boot/extlinux")).unwrap();
    std::fs::write(at.join(format!("boot/vmlinuz-{release}")), b"kernel image").unwrap();
    std::fs::write(at.join("boot/extlinux/ldlinux.sys"), b"extlinux's").unwrap();
    std::fs::create_dir_all(at.join("usr/lib/syslinux/mbr")).unwrap();
    std::fs::write(at.join("usr/lib/syslinux/mbr/gptmbr.bin"), [0xeb; 440]).unwrap();
    std::fs::write(at.join("usr/lib/syslinux/mbr/mbr.bin"), [0xfa; 440]).unwrap();
}

fn first_sector(device: &str) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    std::fs::File::open(device)
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b
}

/// The executor on a real table, twice and after a change: each part is
/// written once, a re-sync rewrites nothing, the disk stays ours.
#[test]
fn install_marks_the_partition_writes_the_boot_code_once_and_keeps_the_disk_ours() {
    for table in [TableType::Gpt, TableType::Dos] {
        let Some(disk) = loop_disk("install", table) else {
            return;
        };
        let root = disk.dir.join("root");
        synced_root(&root);
        let image = disk.dir.join("initramfs");
        std::fs::create_dir_all(image.join("etc")).unwrap();
        std::fs::write(image.join("init"), b"the agent").unwrap();
        std::fs::write(image.join("etc/init-agent.toml"), b"[boot]\n").unwrap();
        let before = first_sector(&disk.device);
        let mut i = Install {
            loader: Bootloader::Extlinux,
            disk: layout(&disk.device, table),
            partition: 1,
            root: root.display().to_string(),
            append: "root=nfs:10.0.2.2:/export initagent.mode=sync".into(),
        };
        let changed = install(&i, &image).unwrap();
        assert_eq!(
            changed,
            [
                "/boot/extlinux/vmlinuz".to_string(),
                "/boot/extlinux/extlinux.conf".into(),
                "/boot/extlinux/initrd.img".into(),
                "partition 1 marked bootable".into(),
                format!("{} MBR boot code", disk.device),
            ],
            "{table:?}"
        );
        let after = first_sector(&disk.device);
        let code = if table == TableType::Gpt { 0xeb } else { 0xfa };
        assert!(after[..440].iter().all(|&b| b == code), "{table:?}");
        // The disk id and the table are the layout's still (but for the
        // DOS active flag, the first entry's first byte).
        let mut expected = before[440..].to_vec();
        if table == TableType::Dos {
            expected[446 - 440] = 0x80;
        }
        assert_eq!(after[440..], expected, "{table:?}");
        let t = disk::read_table(Path::new(&disk.device)).unwrap().unwrap();
        assert!(marked(table, &t.partitions[0]), "{table:?}");
        assert_eq!(classify(&i.disk, Some(&t), false), Found::Ours);
        assert_eq!(
            std::fs::read(root.join("boot/extlinux/vmlinuz")).unwrap(),
            b"kernel image"
        );
        let conf = std::fs::read_to_string(root.join("boot/extlinux/extlinux.conf")).unwrap();
        assert!(conf.ends_with("  APPEND root=nfs:10.0.2.2:/export initagent.mode=sync\n"));
        // The initramfs written back holds the running image's files.
        let mut cpio = Vec::new();
        flate2::read::GzDecoder::new(
            std::fs::File::open(root.join("boot/extlinux/initrd.img")).unwrap(),
        )
        .read_to_end(&mut cpio)
        .unwrap();
        let text = String::from_utf8_lossy(&cpio);
        for wanted in ["etc/init-agent.toml\0", "[boot]\n", "init\0", "the agent"] {
            assert!(text.contains(wanted), "{table:?}: no {wanted:?}");
        }
        // A re-sync: nothing to write.
        assert_eq!(install(&i, &image).unwrap(), Vec::<String>::new());
        // Another command line: only the configuration.
        i.append.push_str(" NODE=cn01");
        assert_eq!(
            install(&i, &image).unwrap(),
            ["/boot/extlinux/extlinux.conf"]
        );
    }
}

#[test]
fn install_refuses_a_disk_that_is_not_ours_and_a_root_without_the_kernel() {
    let Some(disk) = loop_disk("refuse", TableType::Gpt) else {
        return;
    };
    let root = disk.dir.join("root");
    synced_root(&root);
    let mut i = Install {
        loader: Bootloader::Extlinux,
        disk: layout(&disk.device, TableType::Gpt),
        partition: 1,
        root: root.display().to_string(),
        append: String::new(),
    };
    let sector = first_sector(&disk.device);
    // Another layout's names: foreign, never written.
    i.disk.partition[0].name = "data".into();
    let e = install(&i, &disk.dir).unwrap_err().to_string();
    assert!(e.contains("not our prepared layout"), "{e}");
    assert_eq!(first_sector(&disk.device), sector);
    i.disk.partition[0].name = "root".into();
    for e in std::fs::read_dir(root.join("boot")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::remove_file(p).unwrap();
        }
    }
    let e = install(&i, &disk.dir).unwrap_err().to_string();
    assert!(
        e.contains("the standard root needs the running kernel"),
        "{e}"
    );
    assert_eq!(first_sector(&disk.device), sector);
}
