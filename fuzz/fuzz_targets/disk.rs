//! Arbitrary bytes as `sfdisk --json` output of the node's disk (whatever a
//! foreign disk holds ends up here) → `classify` against the built-in layout
//! and a two-partition one → `decide`: a verdict, never a panic; a foreign
//! table is never written without wipe = true.
#![no_main]

use init_agent::config::{Disk, FsType, Partition, Size, TableType};
use init_agent::modes::disk::{classify, decide, Found, SfdiskJson};
use libfuzzer_sys::fuzz_target;

fn layout(table: TableType) -> Disk {
    let part = |name: &str, size, fs, mount: Option<&str>| Partition {
        name: name.into(),
        size,
        fs,
        mount: mount.map(String::from),
        mkfs_options: Vec::new(),
    };
    Disk {
        device: "/dev/vda".into(),
        wipe: false,
        table,
        partition: vec![
            part("swap", Size::Bytes(1 << 30), FsType::Swap, None),
            part("root", Size::Rest, FsType::Ext4, Some("/")),
        ],
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<SfdiskJson>(data) else {
        return;
    };
    for l in [layout(TableType::Gpt), layout(TableType::Dos)] {
        let found = classify(&l, Some(&json.partitiontable), false);
        let verdict = decide(&l, &found);
        if let Found::Foreign(_) = found {
            assert!(verdict.is_err(), "a foreign disk would be written without wipe");
        }
    }
});
