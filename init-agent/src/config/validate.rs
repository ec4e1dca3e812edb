//! Checks that types alone cannot express: paths, uniqueness, layouts, tables.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use super::{is_xcat_column, Attributes, Config, FsType, Size, LITEFILE_OPTIONS, XCAT_TABLES};
use crate::cmdline::{parse_abs_path, parse_name, Mode};
use crate::modes::statelite::plan::{Reason, TableRow, Variables};
use crate::source::spec;

/// One step into the document: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(&'static str),
    Index(usize),
    /// A key the admin chose (a `[hosts]` name).
    Name(String),
}

/// A semantic problem at a place in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: Vec<Seg>,
    pub message: String,
}

/// Collects problems under a path prefix.
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    /// The typed errors of every parser become the messages `check-config`
    /// prints beside their line and column.
    fn check<T, E: Display>(&mut self, path: &[Seg], result: Result<T, E>) {
        if let Err(e) = result {
            self.problems.push(Problem {
                path: path.to_vec(),
                message: e.to_string(),
            });
        }
    }

    fn fail(&mut self, path: &[Seg], message: String) {
        self.check(path, Err::<(), _>(message));
    }
}

use Seg::{Index as I, Key as K};

/// Every semantic problem of `c`, in document order of the sections.
pub fn validate(c: &Config) -> Vec<Problem> {
    let mut ck = Checker {
        problems: Vec::new(),
    };

    if let Some(init) = &c.boot.init {
        ck.check(&[K("boot"), K("init")], parse_abs_path(init));
    }
    ck.check(&[K("boot"), K("shell")], parse_abs_path(&c.boot.shell));
    for (i, m) in c.boot.modules.iter().enumerate() {
        ck.check(&[K("boot"), K("modules"), I(i)], parse_name(m));
    }
    if c.boot.retry_max_delay == 0 {
        ck.fail(
            &[K("boot"), K("retry_max_delay")],
            "must be at least 1 second".into(),
        );
    }
    if c.net.dhcp_timeout == 0 {
        ck.fail(
            &[K("net"), K("dhcp_timeout")],
            "must be at least 1 second".into(),
        );
    }
    if c.net.dhcp_retries == 0 {
        ck.fail(&[K("net"), K("dhcp_retries")], "must be at least 1".into());
    }
    if c.net.dns_timeout == 0 {
        ck.fail(
            &[K("net"), K("dns_timeout")],
            "must be at least 1 second".into(),
        );
    }
    if c.net.dns_attempts == 0 {
        ck.fail(&[K("net"), K("dns_attempts")], "must be at least 1".into());
    }
    for (i, d) in c.net.search.iter().enumerate() {
        ck.check(&[K("net"), K("search"), I(i)], spec::parse_hostname(d));
    }
    // Host names, not addresses: an address needs no entry.
    for name in c.hosts.keys() {
        let at = [K("hosts"), Seg::Name(name.clone())];
        if name.parse::<std::net::IpAddr>().is_ok() {
            ck.fail(&at, format!("`{name}` is an address, not a name"));
        } else {
            ck.check(&at, spec::parse_hostname(name));
        }
    }

    for (i, s) in c.source.servers.iter().enumerate() {
        ck.check(&[K("source"), K("servers"), I(i)], spec::parse_host(s));
    }
    if let Some(p) = &c.source.path {
        ck.check(&[K("source"), K("path")], parse_abs_path(p));
    }
    check_nfs_options(&mut ck, &[K("source"), K("options")], &c.source.options);

    for (key, list) in [("exclude", &c.sync.exclude), ("protect", &c.sync.protect)] {
        for (i, pat) in list.iter().enumerate() {
            ck.check(
                &[K("sync"), K(key), I(i)],
                crate::sync::pattern::validate(pat),
            );
        }
    }

    check_disks(&mut ck, c);
    check_statelite(&mut ck, c);

    for (key, p) in [
        ("tree", &c.cdsl.tree),
        ("shared", &c.cdsl.shared),
        ("link", &c.cdsl.link),
    ] {
        ck.check(&[K("cdsl"), K(key)], parse_abs_path(p));
    }
    ck.check(
        &[K("cdsl"), K("default_dir")],
        parse_name(&c.cdsl.default_dir),
    );

    check_nodes(&mut ck, c);
    check_litetree_variables(&mut ck, c);

    ck.check(&[K("hooks"), K("dir")], parse_abs_path(&c.hooks.dir));
    if c.hooks.timeout == 0 {
        ck.fail(
            &[K("hooks"), K("timeout")],
            "must be at least 1 second".into(),
        );
    }
    // Twice is a slip, perhaps where the new key of a rotation was meant.
    let mut ids = BTreeSet::new();
    for (i, key) in c.trust.parsed().enumerate() {
        let at = [K("trust"), K("keys"), I(i)];
        match key {
            Ok(k) if !ids.insert(k.id()) => ck.fail(&at, format!("key {} is listed twice", k.id())),
            Ok(_) => {}
            Err(e) => ck.fail(&at, e),
        }
    }
    ck.problems
}

fn check_nfs_options(ck: &mut Checker, path: &[Seg], opts: &[String]) {
    for (i, o) in opts.iter().enumerate() {
        let mut p = path.to_vec();
        p.push(I(i));
        ck.check(&p, spec::parse_options(o));
    }
    ck.check(path, spec::version_from_options(opts));
}

/// Label limits of the file systems we create (ext4 16 bytes, XFS 12, FAT 11).
fn label_limit(fs: FsType) -> usize {
    match fs {
        FsType::Ext4 | FsType::Swap => 16,
        FsType::Xfs => 12,
        FsType::Vfat => 11,
        // GPT partition names hold 36 UTF-16 units.
        FsType::None => 36,
    }
}

fn check_disks(ck: &mut Checker, c: &Config) {
    let mut devices = BTreeSet::new();
    let mut mounts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (d, disk) in c.disk.iter().enumerate() {
        let at = |k: &'static str| vec![K("disk"), I(d), K(k)];
        if !disk.device.starts_with("/dev/") {
            ck.fail(
                &at("device"),
                format!("`{}` is not a device under /dev/", disk.device),
            );
        } else {
            ck.check(&at("device"), parse_abs_path(&disk.device));
        }
        if !devices.insert(disk.device.as_str()) {
            ck.fail(
                &at("device"),
                format!("disk `{}` is listed twice", disk.device),
            );
        }
        if disk.partition.is_empty() {
            ck.fail(
                &[K("disk"), I(d)],
                "a disk needs at least one [[disk.partition]]".into(),
            );
        }
        if let Some(loader) = disk.bootloader {
            // extlinux boots the `/` partition from its own boot sector.
            let root = disk
                .partition
                .iter()
                .find(|p| p.mount.as_deref() == Some("/"));
            match root {
                None => ck.fail(
                    &at("bootloader"),
                    "a boot loader boots the disk's `/` partition: this disk has none".into(),
                ),
                Some(p) if p.fs != FsType::Ext4 => ck.fail(
                    &at("bootloader"),
                    format!(
                        "{} boots the `/` partition from ext4 here, not {}",
                        format!("{loader:?}").to_lowercase(),
                        format!("{:?}", p.fs).to_lowercase()
                    ),
                ),
                Some(_) => {}
            }
        }
        let mut names = BTreeSet::new();
        let last = disk.partition.len().saturating_sub(1);
        for (p, part) in disk.partition.iter().enumerate() {
            let at = |k: &'static str| vec![K("disk"), I(d), K("partition"), I(p), K(k)];
            let name_ok = !part.name.is_empty()
                && part.name.len() <= label_limit(part.fs)
                && part
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            if !name_ok {
                ck.fail(
                    &at("name"),
                    format!(
                        "`{}` is not a label (1-{} of letters, digits, `-`, `_`)",
                        part.name,
                        label_limit(part.fs)
                    ),
                );
            }
            if !names.insert(part.name.as_str()) {
                ck.fail(
                    &at("name"),
                    format!("partition name `{}` is used twice", part.name),
                );
            }
            if part.size == Size::Rest && p != last {
                ck.fail(
                    &at("size"),
                    "only the last partition can take the `rest`".into(),
                );
            }
            match (&part.mount, part.fs) {
                (Some(_), FsType::Swap | FsType::None) => {
                    ck.fail(
                        &at("mount"),
                        format!("a `{:?}` partition cannot be mounted", part.fs).to_lowercase(),
                    );
                }
                (Some(m), _) => {
                    ck.check(&at("mount"), parse_abs_path(m));
                    if let Some((d0, p0)) = mounts.insert(m, (d, p)) {
                        ck.fail(
                            &at("mount"),
                            format!(
                                "`{m}` is also the mount point of disk {} partition {}",
                                d0 + 1,
                                p0 + 1
                            ),
                        );
                    }
                }
                (None, _) => {}
            }
            for (i, o) in part.mkfs_options.iter().enumerate() {
                if o.is_empty() {
                    let mut path = at("mkfs_options");
                    path.push(I(i));
                    ck.fail(&path, "empty option".into());
                }
            }
        }
    }
}

/// liteimg's parent/child matrix, for every image the table names, reported
/// at the child's row (the per-row checks above cover the rest).
fn check_litefile_tree(ck: &mut Checker, s: &super::Statelite) {
    let mut images: BTreeSet<&str> = s
        .litefile
        .iter()
        .map(|r| r.image.trim())
        .filter(|i| !i.is_empty() && *i != "ALL")
        .collect();
    images.insert("");
    let mut reported = BTreeSet::new();
    for image in images {
        let Err(errors) = crate::modes::statelite::plan::entries(&s.litefile, image) else {
            continue;
        };
        for e in errors {
            let (TableRow::Litefile(path), Reason::Parent(rule)) = (e.row, e.reason) else {
                continue;
            };
            let row = s
                .litefile
                .iter()
                .position(|r| r.file.trim_end_matches('/') == path.trim_end_matches('/'));
            if let Some(i) = row {
                let message = rule.to_string();
                if reported.insert((i, message.clone())) {
                    ck.fail(&[K("statelite"), K("litefile"), I(i), K("file")], message);
                }
            }
        }
    }
}

/// A STATEMNT value: a mountable location; the key left out means no store.
fn check_statemnt(ck: &mut Checker, path: &[Seg], v: &str) {
    match spec::parse_store(v) {
        Ok(Some(_)) => {}
        Ok(None) => ck.fail(
            path,
            "empty; leave the key out for no persistent store".into(),
        ),
        Err(e) => ck.fail(path, e.to_string()),
    }
}

fn check_statelite(ck: &mut Checker, c: &Config) {
    let s = &c.statelite;
    if let Some(v) = &s.statemnt {
        check_statemnt(ck, &[K("statelite"), K("statemnt")], v);
    }
    check_nfs_options(ck, &[K("statelite"), K("mntopts")], &s.mntopts);
    let mut seen = BTreeSet::new();
    for (i, row) in s.litefile.iter().enumerate() {
        let at = |k: &'static str| vec![K("statelite"), K("litefile"), I(i), K(k)];
        ck.check(&at("file"), parse_abs_path(&row.file));
        if !LITEFILE_OPTIONS.contains(&row.options.as_str()) {
            ck.fail(
                &at("options"),
                format!(
                    "unknown option `{}` (one of: {})",
                    row.options,
                    LITEFILE_OPTIONS[1..].join(", ")
                ),
            );
        } else if let Err(e) = crate::modes::statelite::plan::Kind::parse(&row.options) {
            // Known to xCAT, not done by the boot: refused here in its words.
            ck.fail(&at("options"), e.to_string());
        }
        if row.file.ends_with('/') && row.options.split(',').any(|o| o == "con") {
            ck.fail(
                &at("options"),
                "`con` applies to files, not directories".into(),
            );
        }
        let image = if row.image == "ALL" {
            ""
        } else {
            row.image.as_str()
        };
        if !seen.insert((image, row.file.as_str())) {
            ck.fail(
                &at("file"),
                format!("`{}` is listed twice for this image", row.file),
            );
        }
    }
    check_litefile_tree(ck, s);
    for (i, row) in s.litetree.iter().enumerate() {
        let at = |k: &'static str| vec![K("statelite"), K("litetree"), I(i), K(k)];
        if row.directory.is_empty() {
            ck.fail(&at("directory"), "empty directory".into());
        } else if !row.directory.contains('$') {
            // With variables it is checked per node, once they are known.
            ck.check(&at("directory"), spec::parse_location(&row.directory));
        }
        if !row.priority.is_finite() {
            ck.fail(&at("priority"), "not a number".into());
        }
        if let Some(o) = &row.mntopts {
            ck.check(&at("mntopts"), spec::parse_options(o));
        }
    }
    let mut nodes = BTreeSet::new();
    for (i, row) in s.node.iter().enumerate() {
        let at = |k: &'static str| vec![K("statelite"), K("node"), I(i), K(k)];
        ck.check(&at("node"), parse_name(&row.node));
        // xCAT: a node (or group) may appear only once in the statelite table.
        if !nodes.insert(row.node.as_str()) {
            ck.fail(&at("node"), format!("`{}` has two rows", row.node));
        }
        check_statemnt(ck, &at("statemnt"), &row.statemnt);
        if let Some(o) = &row.mntopts {
            ck.check(&at("mntopts"), spec::parse_options(o));
        }
    }
}

fn check_nodes(ck: &mut Checker, c: &Config) {
    let mut macs = BTreeMap::new();
    let mut names = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for (i, n) in c.node.iter().enumerate() {
        let at = |k: &'static str| vec![K("node"), I(i), K(k)];
        if n.mac.is_empty() && n.name.is_none() {
            ck.fail(
                &at("mac"),
                "a node needs a MAC or a name to be matched by (BOOTIF=, NODE=, ip= host name)"
                    .into(),
            );
        }
        for m in &n.mac {
            if let Some(j) = macs.insert(*m, i) {
                ck.fail(
                    &at("mac"),
                    format!("{m} also belongs to node entry {}", j + 1),
                );
            }
        }
        if let Some(name) = &n.name {
            ck.check(&at("name"), parse_name(name));
            if !names.insert(name.as_str()) {
                ck.fail(&at("name"), format!("node name `{name}` is used twice"));
            }
        }
        if let Some(id) = &n.nodeid {
            ck.check(&at("nodeid"), parse_name(id));
            if !ids.insert(id.as_str()) {
                ck.fail(&at("nodeid"), format!("node id `{id}` is used twice"));
            }
        }
        for (g, group) in n.groups.iter().enumerate() {
            let mut path = at("groups");
            path.push(I(g));
            ck.check(&path, parse_name(group));
        }
        if let Some(d) = &n.disk {
            ck.check(&at("disk"), parse_abs_path(d));
        }
        if let Some(img) = &n.image {
            ck.check(&at("image"), parse_name(img));
        }
        check_attributes(ck, &[K("node"), I(i)], n.tables());
    }
    let mut groups = BTreeSet::new();
    for (i, g) in c.group.iter().enumerate() {
        let at = [K("group"), I(i), K("name")];
        ck.check(&at, parse_name(&g.name));
        if !groups.insert(g.name.as_str()) {
            ck.fail(&at, format!("group `{}` has two rows", g.name));
        }
        // xCAT keeps one namespace: a name is a node or a group.
        if names.contains(g.name.as_str()) {
            ck.fail(&at, format!("`{}` is both a node and a group", g.name));
        }
        check_attributes(ck, &[K("group"), I(i)], g.tables());
    }
}

/// Litetree directories with variables, expanded for each `[[node]]` row as
/// its boot would (its image, name and attributes), except rows whose mode
/// (their own, else `[boot]`'s) mounts no litetrees; with no rows, once for a
/// node the config does not know, which still finds unknown variables.
fn check_litetree_variables(ck: &mut Checker, c: &Config) {
    let s = &c.statelite;
    let stranger = super::Node::default();
    let rows: Vec<&super::Node> = if c.node.is_empty() {
        vec![&stranger]
    } else {
        c.node
            .iter()
            .filter(|n| {
                !matches!(
                    n.mode.or(c.boot.mode),
                    Some(Mode::Sync | Mode::Nfsroot | Mode::Update)
                )
            })
            .collect()
    };
    let mut reported = BTreeSet::new();
    for n in rows {
        let attributes = c.attributes(n);
        let vars = Variables {
            node: n.name.as_deref(),
            image: n
                .image
                .as_deref()
                .or(s.image.as_deref())
                .unwrap_or_default(),
            attributes: &attributes,
        };
        let Err(errors) = crate::modes::statelite::plan::trees(&s.litetree, &vars) else {
            continue;
        };
        for e in errors {
            let TableRow::Litetree(row) = e.row else {
                continue;
            };
            let i = row.saturating_sub(1);
            // Rows without variables are checked once, above.
            let with_variables = s.litetree.get(i).is_some_and(|r| r.directory.contains('$'));
            let message = e.reason.to_string();
            if with_variables && reported.insert((i, message.clone())) {
                ck.fail(
                    &[K("statelite"), K("litetree"), I(i), K("directory")],
                    message,
                );
            }
        }
    }
}

/// Column names of `[node.noderes]`-style tables: a typo would leave a
/// `$table.column` without a value, so it is caught here.
fn check_attributes(ck: &mut Checker, row: &[Seg], tables: [(&'static str, &Attributes); 3]) {
    for (table, columns) in tables {
        let mut at = row.to_vec();
        at.push(K(table));
        for (column, value) in columns {
            if !is_xcat_column(table, column) {
                ck.fail(
                    &at,
                    format!(
                        "`{column}` is not a column of xCAT's {table} table ({})",
                        XCAT_TABLES
                            .iter()
                            .find(|(t, _)| *t == table)
                            .map_or_else(String::new, |(_, c)| c.join(", "))
                    ),
                );
            } else if value.chars().any(char::is_control) {
                ck.fail(
                    &at,
                    format!("{table}.{column}: control character in the value"),
                );
            }
        }
    }
}
