use super::*;

fn part(name: &str, size: Size, fs: FsType, mount: Option<&str>) -> Partition {
    Partition {
        name: name.into(),
        size,
        fs,
        mount: mount.map(String::from),
        mkfs_options: Vec::new(),
    }
}

/// A fresh directory for `test` with a zeroed 64 MiB `disk.img` in it.
pub(crate) fn scratch_image(test: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("ia-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("disk.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    (dir, img)
}

/// sfdisk writes the table `script` to `device` (an image or a loop device).
pub(crate) fn write_table(device: &Path, script: &str) {
    use std::io::Write;
    let mut child = Command::new("sfdisk")
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(device)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

fn layout(table: TableType, wipe: bool) -> Disk {
    Disk {
        device: "/dev/vda".into(),
        wipe,
        table,
        partition: vec![
            part("swap", Size::Bytes(512 << 20), FsType::Swap, None),
            part("root", Size::Rest, FsType::Ext4, Some("/")),
        ],
        bootloader: None,
    }
}

fn table(label: &str, id: &str, names: &[&str]) -> Table {
    Table {
        label: label.into(),
        id: Some(id.into()),
        partitions: names
            .iter()
            .enumerate()
            .map(|(i, n)| TablePartition {
                node: format!("/dev/vda{}", i + 1),
                name: (!n.is_empty()).then(|| n.to_string()),
                attrs: None,
                bootable: false,
            })
            .collect(),
    }
}

#[test]
fn blank_preparing_ours_and_foreign_are_told_apart() {
    let l = layout(TableType::Gpt, false);
    assert_eq!(classify(&l, None, true), Found::Blank);
    assert!(matches!(classify(&l, None, false), Found::Foreign(_)));
    let ours = table(
        "gpt",
        "0D3C0F4E-1111-4222-8333-444455556666",
        &["swap", "root"],
    );
    assert_eq!(classify(&l, Some(&ours), false), Found::Ours);
    let half = table("gpt", GPT_PREPARING, &["swap", "root"]);
    assert_eq!(classify(&l, Some(&half), false), Found::Preparing);
    let other_names = table("gpt", GPT_PREPARING, &["EFI", "root"]);
    assert!(
        matches!(classify(&l, Some(&other_names), false), Found::Foreign(w) if w.contains("EFI"))
    );
    let fewer = table("gpt", "x", &["swap"]);
    assert!(matches!(
        classify(&l, Some(&fewer), false),
        Found::Foreign(_)
    ));
    let dos = table("dos", DOS_READY, &["", ""]);
    assert!(matches!(classify(&l, Some(&dos), false), Found::Foreign(w) if w.contains("dos")));

    let d = layout(TableType::Dos, false);
    assert_eq!(classify(&d, Some(&dos), false), Found::Ours);
    assert_eq!(
        classify(&d, Some(&table("dos", DOS_PREPARING, &["", ""])), false),
        Found::Preparing
    );
    // A DOS table someone else made: same partition count, other identifier.
    assert!(matches!(
        classify(&d, Some(&table("dos", "0x5eed0001", &["", ""])), false),
        Found::Foreign(_)
    ));
}

#[test]
fn only_wipe_true_lets_a_foreign_disk_be_written() {
    let foreign = Found::Foreign("2 partition(s)".into());
    let e = decide(&layout(TableType::Gpt, false), &foreign).unwrap_err();
    assert_eq!(
        e.to_string(),
        "refused: it holds 2 partition(s); set wipe = true for exactly this [[disk]] to repartition it"
    );
    assert!(decide(&layout(TableType::Gpt, true), &foreign)
        .unwrap()
        .is_some());
    assert!(decide(&layout(TableType::Gpt, false), &Found::Blank)
        .unwrap()
        .is_some());
    assert!(decide(&layout(TableType::Gpt, false), &Found::Preparing)
        .unwrap()
        .is_some());
    // Ours is used, never repartitioned, wipe or not.
    assert!(matches!(
        decide(&layout(TableType::Gpt, true), &Found::Ours),
        Ok(None)
    ));
}

#[test]
fn a_device_that_never_appears_is_named_with_the_wait() {
    let e = wait_for(Path::new("/dev/ia-no-such-disk"), Duration::ZERO).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/dev/ia-no-such-disk did not appear within 0 s"
    );
    let e = size_of(Path::new("/dev/ia-no-such-disk")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/sys/class/block/ia-no-such-disk/size: No such file"),
        "{e}"
    );
}

#[test]
fn a_layout_larger_than_the_disk_is_refused() {
    let l = layout(TableType::Gpt, false);
    assert!(check_fits(&l, 1 << 30).is_ok());
    let e = check_fits(&l, 256 << 20).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the layout needs 530 MiB, the disk has 256 MiB"
    );
}

#[test]
fn scripts_name_partitions_and_carry_the_preparing_id() {
    assert_eq!(
        sfdisk_script(&layout(TableType::Gpt, false)),
        format!("label: gpt\nlabel-id: {GPT_PREPARING}\nsize=524288KiB, type=S, name=swap\ntype=L, name=root\n")
    );
    assert_eq!(
        sfdisk_script(&layout(TableType::Dos, false)),
        format!("label: dos\nlabel-id: {DOS_PREPARING}\nsize=524288KiB, type=S\ntype=L\n")
    );
}

#[test]
fn partition_paths_follow_the_kernel_names() {
    assert_eq!(
        partition_path(Path::new("/dev/vda"), 1),
        PathBuf::from("/dev/vda1")
    );
    assert_eq!(
        partition_path(Path::new("/dev/nvme0n1"), 2),
        PathBuf::from("/dev/nvme0n1p2")
    );
    assert_eq!(
        partition_path(Path::new("/dev/mmcblk0"), 1),
        PathBuf::from("/dev/mmcblk0p1")
    );
}

#[test]
fn mkfs_and_fstab_come_from_the_layout() {
    let mut root = part("root", Size::Rest, FsType::Ext4, Some("/"));
    root.mkfs_options = vec!["-m".into(), "1".into()];
    assert_eq!(
        mkfs_command(&root, Path::new("/dev/vda2")),
        Some((
            "mke2fs",
            [
                "-q",
                "-F",
                "-t",
                "ext4",
                "-L",
                "root",
                "-m",
                "1",
                "/dev/vda2"
            ]
            .map(String::from)
            .to_vec()
        ))
    );
    assert_eq!(
        mkfs_command(
            &part("raw", Size::Rest, FsType::None, None),
            Path::new("/dev/x1")
        ),
        None
    );
    let mut l = layout(TableType::Gpt, false);
    l.partition
        .push(part("scratch", Size::Rest, FsType::Xfs, Some("/scratch")));
    assert_eq!(
        fstab_lines(&[l]),
        [
            "LABEL=swap none swap sw 0 0",
            "LABEL=root / ext4 defaults 0 0",
            "LABEL=scratch /scratch xfs defaults 0 2"
        ]
    );
}

/// sfdisk itself, on an image file: what it writes is what `classify` reads.
#[test]
fn sfdisk_round_trip_on_an_image_file() {
    if Command::new("sfdisk").arg("--version").output().is_err() {
        // ./test.sh installs it; only a bare `cargo test` elsewhere skips.
        assert!(std::env::var_os("CI").is_none(), "sfdisk is missing");
        eprintln!("sfdisk not installed: skipped");
        return;
    }
    let (dir, img) = scratch_image("disk");
    let l = Disk {
        device: img.display().to_string(),
        wipe: false,
        table: TableType::Gpt,
        partition: vec![
            part("swap", Size::Bytes(8 << 20), FsType::Swap, None),
            part("root", Size::Rest, FsType::Ext4, Some("/")),
        ],
        bootloader: None,
    };
    assert_eq!(read_table(&img).unwrap().map(|t| t.label), None);
    assert!(ends_zero(&img, 64 << 20).unwrap());
    write_table(&img, &sfdisk_script(&l));
    let t = read_table(&img).unwrap().unwrap();
    assert_eq!(classify(&l, Some(&t), false), Found::Preparing);
    assert!(!ends_zero(&img, 64 << 20).unwrap());
    let ok = Command::new("sfdisk")
        .args(["--disk-id", &img.display().to_string()])
        .arg("0D3C0F4E-1111-4222-8333-444455556666")
        .status()
        .unwrap();
    assert!(ok.success());
    let t = read_table(&img).unwrap().unwrap();
    assert_eq!(classify(&l, Some(&t), false), Found::Ours);
    let mut other = l.clone();
    other.partition[0].name = "data".into();
    assert!(matches!(
        classify(&other, Some(&t), false),
        Found::Foreign(_)
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A partition node that udev removes and re-adds between finding it and
/// using it: the operation is tried again once it is back, not failed.
#[test]
fn an_operation_on_a_partition_that_went_away_is_tried_again() {
    let (dir, _) = scratch_image("on-partition");
    let node = dir.join("vda1");
    let mut calls = 0;
    let r: Result<&str, String> = on_partition(&node, Duration::from_secs(5), || {
        calls += 1;
        if calls == 1 {
            // Gone now, back a moment later.
            let back = node.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                std::fs::write(back, b"").unwrap();
            });
            return Err("does not exist".into());
        }
        Ok("made")
    });
    assert_eq!((r, calls), (Ok("made"), 2));
    // A failure with the node present is the operation's own: not repeated.
    let mut calls = 0;
    let r: Result<(), String> = on_partition(&node, Duration::from_secs(5), || {
        calls += 1;
        Err("bad superblock".into())
    });
    assert_eq!((r, calls), (Err("bad superblock".to_string()), 1));
    std::fs::remove_dir_all(&dir).unwrap();
}
