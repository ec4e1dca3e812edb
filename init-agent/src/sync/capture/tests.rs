use super::*;

fn mount(target: &str, fstype: &str, source: &str) -> Mount {
    Mount {
        target: PathBuf::from(target),
        fstype: fstype.into(),
        source: source.into(),
        read_only: false,
    }
}

fn patterns(l: &[LeftOut]) -> Vec<&str> {
    l.iter().map(|l| l.pattern.as_str()).collect()
}

/// A running golden node: its disk on /, a separate /var partition, the
/// kernel's and memory file systems, a tmpfs /tmp, an NFS /home, the
/// master's export mounted for the capture, a swap file.
fn node_mounts() -> Vec<Mount> {
    vec![
        mount("/", "ext4", "/dev/vda1"),
        mount("/proc", "proc", "proc"),
        mount("/sys", "sysfs", "sysfs"),
        mount("/sys/fs/cgroup", "cgroup2", "cgroup2"),
        mount("/dev", "devtmpfs", "udev"),
        mount("/dev/pts", "devpts", "devpts"),
        mount("/run", "tmpfs", "tmpfs"),
        mount("/run/user/0", "tmpfs", "tmpfs"),
        mount("/tmp", "tmpfs", "tmpfs"),
        mount("/var", "ext4", "/dev/vda2"),
        mount("/home", "nfs4", "10.0.0.1:/home"),
        mount("/mnt/master", "nfs4", "10.0.0.1:/srv/captures"),
        mount("/mnt/odd*[name]", "tmpfs", "tmpfs"),
    ]
}

#[test]
fn a_running_node_leaves_out_its_identity_state_and_what_is_not_its_disk() {
    let swaps = vec![PathBuf::from("/swapfile"), PathBuf::from("/elsewhere/swap")];
    let l = left_out(
        Path::new("/"),
        Path::new("/mnt/master/golden-2"),
        &node_mounts(),
        &swaps,
        &["/opt/node-own/**".to_string()],
    )
    .unwrap();
    let p = patterns(&l);
    // What a sync keeps per node or never copies, first, as the boot has it.
    for b in SYNC_EXCLUDE.iter().chain(SYNC_PROTECT) {
        assert!(p.contains(b), "{b} not left out: {p:?}");
    }
    for want in [
        "/tmp/**",
        "/lost+found",
        "/etc/udev/rules.d/70-persistent-net.rules",
        "/swapfile",
        "/elsewhere/swap",
        "/home/**",
        "/mnt/master/**",
        // Glob characters of a mount point are escaped: it is matched literally.
        "/mnt/odd\\*\\[name]/**",
        "/opt/node-own/**",
    ] {
        assert!(p.contains(&want), "{want} not left out: {p:?}");
    }
    // The disk's partitions are captured; mounts below a left-out one, the
    // mount points the boot's lists cover and the destination (on a mount
    // already left out) are not listed again.
    for not in [
        "/var/**",
        "/sys/fs/cgroup/**",
        "/dev/pts/**",
        "/run/user/0/**",
        "/proc/**/**",
        "/tmp/**/**",
        "/mnt/master/golden-2/***",
    ] {
        assert!(!p.contains(&not), "{not} left out: {p:?}");
    }
    assert_eq!(
        p.len(),
        p.iter().collect::<std::collections::HashSet<_>>().len()
    );
    let why = |pat: &str| l.iter().find(|l| l.pattern == pat).unwrap().why.clone();
    assert_eq!(
        why("/home/**"),
        "nfs4 10.0.0.1:/home is mounted there: not the node's disk"
    );
    assert_eq!(why("/opt/node-own/**"), "the site's pattern");
}

#[test]
fn a_destination_on_the_nodes_own_disk_is_left_out_of_the_capture() {
    let l = left_out(
        Path::new("/"),
        Path::new("/srv/new-standard"),
        &[mount("/", "ext4", "/dev/vda1")],
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(
        l.last().map(|l| (l.pattern.as_str(), l.why.as_str())),
        Some(("/srv/new-standard/***", "the capture itself"))
    );
}

#[test]
fn a_source_directory_only_has_its_own_mounts_left_out() {
    // The golden node's disk mounted on the master: mounts elsewhere, the
    // destination beside it, and swap files of the master are not its own.
    let l = left_out(
        Path::new("/mnt/golden"),
        Path::new("/srv/captures/new"),
        &[
            mount("/", "ext4", "/dev/sda1"),
            mount("/mnt/golden", "ext4", "/dev/loop0"),
            mount("/mnt/golden/proc", "proc", "proc"),
            mount("/mnt/golden/media/stick", "nfs", "10.0.0.9:/x"),
            mount("/home", "nfs4", "10.0.0.1:/home"),
        ],
        &[PathBuf::from("/swapfile")],
        &[],
    )
    .unwrap();
    let p = patterns(&l);
    assert!(p.contains(&"/media/stick/**"), "{p:?}");
    assert!(
        !p.iter()
            .any(|x| x.contains("home") || x.contains("swapfile") || x.contains("captures")),
        "{p:?}"
    );
    // A topmost mount on a block device over a network one is the disk's.
    let l = left_out(
        Path::new("/"),
        Path::new("/x"),
        &[
            mount("/data", "nfs", "h:/d"),
            mount("/data", "xfs", "/dev/vdb1"),
        ],
        &[],
        &[],
    )
    .unwrap();
    assert!(!patterns(&l).contains(&"/data/**"));
}
