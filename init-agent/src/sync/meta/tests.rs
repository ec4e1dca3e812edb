use super::*;

fn file() -> Meta {
    Meta {
        kind: Kind::File,
        perm: 0o644,
        uid: 0,
        gid: 0,
        size: 10,
        mtime_sec: 1_700_000_000,
        mtime_nsec: 123_456_789,
        rdev: 0,
        nlink: 1,
        dev: 1,
        ino: 2,
        blocks: 8,
        ctime_sec: 0,
    }
}

fn facts() -> Facts {
    Facts {
        in_group: false,
        checksum: false,
        same_xattrs: true,
        same_payload: true,
    }
}

#[test]
fn identical_entries_are_unchanged() {
    assert_eq!(decide(&file(), Some(&file()), facts()), Decision::Unchanged);
}

#[test]
fn missing_destination_is_created() {
    assert_eq!(decide(&file(), None, facts()), Decision::Replace);
}

#[test]
fn same_second_different_nanosecond_is_a_content_change() {
    let mut d = file();
    d.mtime_nsec += 1;
    assert_eq!(decide(&file(), Some(&d), facts()), Decision::Replace);
}

#[test]
fn size_and_type_changes_replace() {
    let mut d = file();
    d.size = 11;
    assert_eq!(decide(&file(), Some(&d), facts()), Decision::Replace);
    let mut d = file();
    d.kind = Kind::Symlink;
    assert_eq!(decide(&file(), Some(&d), facts()), Decision::Replace);
}

#[test]
fn owner_mode_and_xattr_changes_are_fixed_in_place() {
    for change in [
        |m: &mut Meta| m.perm = 0o4755,
        |m: &mut Meta| m.uid = 12345,
        |m: &mut Meta| m.gid = 54321,
    ] {
        let mut d = file();
        change(&mut d);
        assert_eq!(decide(&file(), Some(&d), facts()), Decision::FixMeta);
    }
    let f = Facts {
        same_xattrs: false,
        ..facts()
    };
    assert_eq!(decide(&file(), Some(&file()), f), Decision::FixMeta);
}

#[test]
fn a_destination_sharing_its_inode_is_replaced_unless_the_source_shares_too() {
    let mut d = file();
    d.nlink = 2;
    assert_eq!(decide(&file(), Some(&d), facts()), Decision::Replace);
    let f = Facts {
        in_group: true,
        ..facts()
    };
    assert_eq!(decide(&file(), Some(&d), f), Decision::Unchanged);
}

#[test]
fn checksum_asks_for_content_only_when_size_and_mtime_agree() {
    let f = Facts {
        checksum: true,
        ..facts()
    };
    assert_eq!(decide(&file(), Some(&file()), f), Decision::CompareContent);
    let mut d = file();
    d.size = 1;
    assert_eq!(decide(&file(), Some(&d), f), Decision::Replace);
}

#[test]
fn symlink_targets_and_device_numbers_are_payload() {
    let mut l = file();
    l.kind = Kind::Symlink;
    l.perm = 0o777;
    let mut d = l.clone();
    d.perm = 0o700; // symlink permissions cannot be set and do not count
    assert_eq!(decide(&l, Some(&d), facts()), Decision::Unchanged);
    let f = Facts {
        same_payload: false,
        ..facts()
    };
    assert_eq!(decide(&l, Some(&d), f), Decision::Replace);
}

#[test]
fn directory_metadata_compares_owner_perm_mtime_xattrs() {
    let mut s = file();
    s.kind = Kind::Dir;
    let mut d = s.clone();
    assert!(!dir_meta_differs(&s, &d, true));
    assert!(dir_meta_differs(&s, &d, false));
    d.mtime_nsec = 0;
    assert!(dir_meta_differs(&s, &d, true));
}

#[test]
fn sparse_detection_uses_allocated_blocks() {
    let mut m = file();
    m.size = 64 << 20;
    m.blocks = 16;
    assert!(m.looks_sparse());
    assert!(!file().looks_sparse());
}
