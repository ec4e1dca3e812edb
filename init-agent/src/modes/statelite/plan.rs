//! The statelite planner: litefile/litetree tables, a node and an image in;
//! the ordered mount/copy/link actions of xCAT's rc.statelite out. Pure: what
//! exists in the image and in the litetree mounts is asked of a [`Probe`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::config::{LiteFile, LiteTree};
use crate::source::mount::{nfs_mount, NfsMount};
use crate::source::spec::{self, Host, NfsExport, SpecError};
pub use crate::sys::root::link_target;

/// The xCAT layout inside the new root.
pub const STATELITE: &str = "/.statelite";
pub const TMPFS: &str = "/.statelite/tmpfs";
pub const PERSISTENT: &str = "/.statelite/persistent";
pub const MNT: &str = "/.statelite/mnt";
pub const DEFAULT: &str = "/.default";
pub const LOG: &str = "/.statelite/statelite.log";
/// What `statelite liteimg` made, in the image (hidden at boot by the tmpfs).
pub const LITEIMG_STATE: &str = "/.statelite/liteimg.json";

/// What a litefile option does at boot. A blank option means `Link`, as
/// xCAT's liteimg and rc.statelite really do (blank becomes `tmpfs,rw`, which
/// liteimg turns into link chains), so images prepared by xCAT boot unchanged;
/// its schema and litefile(5) say tmpfs, which is what `tmpfs` written out gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Tmpfs,
    Persistent,
    /// xCAT's `persistent,con`: concatenated once, into the store, on the
    /// first boot that finds no stored copy; later boots bind the stored file.
    PersistentCon,
    Con,
    Ro,
    Link,
    LinkPersistent,
    LinkCon,
    LinkRo,
}

impl Kind {
    pub fn parse(option: &str) -> Result<Kind, Reason> {
        Ok(match option.trim() {
            "tmpfs" | "rw" | "tempfs" => Kind::Tmpfs,
            "persistent" => Kind::Persistent,
            "persistent,con" => Kind::PersistentCon,
            "con" => Kind::Con,
            "ro" => Kind::Ro,
            // liteimg rewrites blank and tmpfs,rw to link.
            "" | "link" | "tmpfs,rw" => Kind::Link,
            "link,persistent" => Kind::LinkPersistent,
            "link,con" => Kind::LinkCon,
            "link,ro" => Kind::LinkRo,
            "localdisk" => return Err(Reason::Localdisk),
            other => return Err(Reason::UnknownOption(other.into())),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Tmpfs => "tmpfs",
            Kind::Persistent => "persistent",
            Kind::PersistentCon => "persistent,con",
            Kind::Con => "con",
            Kind::Ro => "ro",
            Kind::Link => "link",
            Kind::LinkPersistent => "link,persistent",
            Kind::LinkCon => "link,con",
            Kind::LinkRo => "link,ro",
        }
    }

    pub fn is_link(self) -> bool {
        matches!(
            self,
            Kind::Link | Kind::LinkPersistent | Kind::LinkCon | Kind::LinkRo
        )
    }

    /// Kept in the node's STATEMNT store (what the overlay mode binds too).
    pub fn is_persistent(self) -> bool {
        matches!(
            self,
            Kind::Persistent | Kind::PersistentCon | Kind::LinkPersistent
        )
    }

    fn is_con(self) -> bool {
        matches!(self, Kind::Con | Kind::PersistentCon | Kind::LinkCon)
    }

    fn is_ro(self) -> bool {
        matches!(self, Kind::Ro | Kind::LinkRo)
    }
}

/// One resolved litefile entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// Absolute, normalised, without the trailing `/`.
    pub path: String,
    pub dir: bool,
    pub kind: Kind,
    /// Index of the listed ancestor directory, when there is one.
    pub parent: Option<usize>,
}

impl Entry {
    /// "<path>[/] <option>", as explain prints it.
    pub fn describe(&self) -> String {
        format!(
            "{}{} {}",
            self.path,
            if self.dir { "/" } else { "" },
            self.kind.name()
        )
    }
}

/// A litetree source, mounted read-only at `/.statelite/mnt/<index>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    pub priority: f64,
    pub source: Mountable,
}

/// A litetree row for one node: variables expanded, the location parsed;
/// a server name is given its address when the tree is mounted.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeRow {
    pub priority: f64,
    pub location: Location,
}

impl TreeRow {
    /// The tree to mount, its server's address found by `addr`.
    pub fn mount<E>(&self, addr: impl FnMut(&Host) -> Result<IpAddr, E>) -> Result<Tree, E> {
        Ok(Tree {
            priority: self.priority,
            source: self.location.mountable(addr)?,
        })
    }
}

/// A location as the tables and `--state` write it: an NFS export (its
/// server an address or a host name) or a local directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Nfs(NfsExport),
    Dir(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Nfs(e) => write!(f, "{e}"),
            Location::Dir(d) => f.write_str(d),
        }
    }
}

impl Location {
    /// `[<server>:]<path>` by the one NFS location parser; `options` are
    /// NFS options added to the location's own.
    pub fn parse(location: &str, options: &[String]) -> Result<Location, SpecError> {
        let mut export = spec::parse_location(location)?;
        export.options.extend(options.iter().cloned());
        Ok(match &export.server {
            Some(_) => Location::Nfs(export),
            None => Location::Dir(export.path),
        })
    }

    /// The server named, if any.
    pub fn server(&self) -> Option<&Host> {
        match self {
            Location::Nfs(e) => e.server.as_ref(),
            Location::Dir(_) => None,
        }
    }

    /// What to mount, the server's address found by `addr`.
    pub fn mountable<E>(
        &self,
        mut addr: impl FnMut(&Host) -> Result<IpAddr, E>,
    ) -> Result<Mountable, E> {
        Ok(match self {
            Location::Nfs(e) => match &e.server {
                Some(h) => Mountable::Nfs(nfs_mount(e, addr(h)?)),
                None => Mountable::Dir(e.path.clone()),
            },
            Location::Dir(d) => Mountable::Dir(d.clone()),
        })
    }
}

/// What the layout mounts: an NFS export (mount arguments made by the one
/// builder), or a local directory bound (tests, `statelite apply --state DIR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mountable {
    Nfs(NfsMount),
    Dir(String),
}

impl fmt::Display for Mountable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mountable::Nfs(m) => write!(f, "{}", m.source),
            Mountable::Dir(d) => f.write_str(d),
        }
    }
}

/// The persistent store of this node.
pub type Store = Mountable;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    MountTmpfs(String),
    Mkdir(String),
    /// NFS export or local directory onto a path in the root.
    MountSource {
        source: Mountable,
        target: String,
        read_only: bool,
    },
    /// Copy a file or tree (metadata kept); `if_missing`: leave an existing one.
    Copy {
        from: String,
        to: String,
        if_missing: bool,
    },
    /// An empty file (or directory, `dir`) where nothing is yet: xCAT
    /// creates a persistent entry found nowhere.
    Create {
        path: String,
        dir: bool,
    },
    /// Concatenate files into one.
    Concat {
        from: Vec<String>,
        to: String,
    },
    Symlink {
        path: String,
        target: String,
    },
    Bind {
        source: String,
        target: String,
        read_only: bool,
    },
    /// Image preparation (liteimg) for a link entry: original moved to
    /// /.default<path>, `<path>` made a link into /.statelite/tmpfs.
    PrepareLink {
        path: String,
    },
    /// Undoes [`Action::PrepareLink`] for an entry no longer a link entry:
    /// liteimg's link removed, the original moved back from /.default<path>.
    RestoreLink {
        path: String,
    },
    /// The link entries `statelite liteimg` has prepared, in [`LITEIMG_STATE`].
    RecordLinks(Vec<String>),
    Warn(String),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::MountTmpfs(t) => write!(f, "mount tmpfs on {t}"),
            Action::Mkdir(p) => write!(f, "mkdir {p}"),
            Action::MountSource {
                source: Mountable::Nfs(m),
                target,
                read_only,
            } => write!(
                f,
                "mount {} on {target} ({},{})",
                m.source,
                if *read_only { "ro" } else { "rw" },
                m.data
            ),
            Action::MountSource {
                source: Mountable::Dir(d),
                target,
                read_only,
            } => write!(
                f,
                "mount {d} on {target} ({})",
                if *read_only { "ro" } else { "rw" }
            ),
            Action::Copy {
                from,
                to,
                if_missing,
            } => write!(
                f,
                "copy {from} -> {to}{}",
                if *if_missing { " (if missing)" } else { "" }
            ),
            Action::Create { path, dir: true } => write!(f, "create directory {path}"),
            Action::Create { path, dir: false } => write!(f, "create empty file {path}"),
            Action::Concat { from, to } => write!(f, "concatenate {} -> {to}", from.join(" + ")),
            Action::Symlink { path, target } => write!(f, "symlink {path} -> {target}"),
            Action::Bind {
                source,
                target,
                read_only,
            } => write!(
                f,
                "bind {source} on {target}{}",
                if *read_only { " (ro)" } else { "" }
            ),
            Action::PrepareLink { path } => write!(
                f,
                "prepare link {path}: original to {DEFAULT}{path}, {path} -> {}",
                link_target(path, &format!("{TMPFS}{path}"))
            ),
            Action::RestoreLink { path } => write!(
                f,
                "restore {path}: liteimg's link removed, the original moved back from {DEFAULT}{path}"
            ),
            Action::RecordLinks(paths) => write!(
                f,
                "record the link entries in {LITEIMG_STATE}: {}",
                if paths.is_empty() {
                    "none".to_string()
                } else {
                    paths.join(" ")
                }
            ),
            Action::Warn(w) => write!(f, "warning: {w}"),
        }
    }
}

/// What exists in the root (image plus mounted trees), as the planner needs it.
pub trait Probe {
    /// Some(true) for a non-empty directory or any file, Some(false) for an empty
    /// directory (xCAT counts those as not found), None when absent.
    fn found(&self, path: &str) -> Option<bool>;
    /// Whether `path` already is the link chain liteimg makes.
    fn is_prepared_link(&self, path: &str) -> bool;
    /// Whether the image can be changed (preparation for link entries).
    fn writable(&self) -> bool;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{row}: {reason}")]
pub struct TableError {
    pub row: TableRow,
    pub reason: Reason,
}

/// The row a [`TableError`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableRow {
    /// A litefile row, by its file.
    Litefile(String),
    /// A litetree row, 1-based in `[[statelite.litetree]]` order.
    Litetree(usize),
}

impl fmt::Display for TableRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableRow::Litefile(path) => write!(f, "litefile {path}"),
            TableRow::Litetree(n) => write!(f, "litetree row {n}"),
        }
    }
}

/// Why a litefile or litetree row, or the node, is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("not an absolute path")]
    NotAbsolute,
    #[error("the root itself cannot be statelite")]
    Root,
    #[error("path with an empty, '.' or '..' component")]
    Component,
    #[error("control character in path")]
    ControlCharacter,
    #[error("inside the statelite layout itself")]
    InLayout,
    #[error("listed twice with different options")]
    ListedTwice,
    #[error("con applies to files, not directories")]
    ConDirectory,
    #[error("localdisk is not supported: use sync mode for local disks")]
    Localdisk,
    #[error("unknown option {0:?}")]
    UnknownOption(String),
    #[error(transparent)]
    Parent(#[from] ParentRule),
    #[error("unclosed ${{ in {0:?}")]
    Unclosed(String),
    #[error("unknown variable ${name} in {text:?} ($node, $image or $table.column of noderes, nodetype, nodepos)")]
    UnknownVariable { name: String, text: String },
    #[error("${table}.{column} has no value for node {node} (table {table}, column {column})")]
    NoValue {
        table: String,
        column: String,
        node: String,
    },
    #[error(transparent)]
    Location(#[from] SpecError),
    #[error("node name must be a plain name (no '/')")]
    NodeName,
}

/// liteimg's parent/child matrix, broken: each names the parent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParentRule {
    #[error("its parent {0} is ro/con and may not have children")]
    RoCon(String),
    #[error("under the link parent {0} children must be link, link,persistent or link,con")]
    Link(String),
    #[error("under the non-link parent {0} children may not be link*")]
    NonLink(String),
    #[error("under the persistent parent {0} children must be persistent")]
    Persistent(String),
}

fn refuse(path: &str, reason: impl Into<Reason>) -> TableError {
    TableError {
        row: TableRow::Litefile(path.to_string()),
        reason: reason.into(),
    }
}

/// Absolute, no `.`/`..`/empty components: nothing can point outside the root.
pub fn normalise(file: &str) -> Result<(String, bool), TableError> {
    let dir = file.ends_with('/') && file.len() > 1;
    let path = file.trim_end_matches('/');
    if !file.starts_with('/') {
        return Err(refuse(file, Reason::NotAbsolute));
    }
    if path.is_empty() {
        return Err(refuse(file, Reason::Root));
    }
    for c in path[1..].split('/') {
        if c.is_empty() || c == "." || c == ".." {
            return Err(refuse(file, Reason::Component));
        }
    }
    if path.contains('\0') || path.contains('\n') {
        return Err(refuse(file, Reason::ControlCharacter));
    }
    if path == STATELITE || path.starts_with(&format!("{STATELITE}/")) || path == DEFAULT {
        return Err(refuse(file, Reason::InLayout));
    }
    Ok((path.to_string(), dir))
}

pub fn applies(image_column: &str, image: &str) -> bool {
    let col = image_column.trim();
    col.is_empty() || col == "ALL" || col == image
}

/// Rows for `image`: ALL/blank rows first, then the image's own override them
/// (xCAT's server-side order); every table error at once.
pub fn entries(rows: &[LiteFile], image: &str) -> Result<Vec<Entry>, Vec<TableError>> {
    let mut errors = Vec::new();
    let mut chosen: BTreeMap<String, (bool, Kind, bool)> = BTreeMap::new();
    for specific in [false, true] {
        let mut seen = BTreeMap::new();
        for row in rows.iter().filter(|r| {
            let col = r.image.trim();
            let own = !col.is_empty() && col != "ALL" && col == image;
            applies(col, image) && own == specific
        }) {
            let (path, dir) = match normalise(&row.file) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let kind = match Kind::parse(&row.options) {
                Ok(k) => k,
                Err(reason) => {
                    errors.push(refuse(&row.file, reason));
                    continue;
                }
            };
            if let Some(prev) = seen.insert(path.clone(), (dir, kind)) {
                if prev != (dir, kind) {
                    errors.push(refuse(&row.file, Reason::ListedTwice));
                }
            }
            chosen.insert(path, (dir, kind, specific));
        }
    }
    let mut out: Vec<Entry> = chosen
        .into_iter()
        .map(|(path, (dir, kind, _))| Entry {
            path,
            dir,
            kind,
            parent: None,
        })
        .collect();
    // Sorted by path, so a listed ancestor comes before its descendants.
    for i in 0..out.len() {
        let parent = (0..i)
            .rev()
            .find(|&j| out[j].dir && out[i].path.starts_with(&format!("{}/", out[j].path)));
        out[i].parent = parent;
        if let Some(j) = parent {
            if let Err(reason) = child_allowed(&out[j], &out[i]) {
                errors.push(refuse(&out[i].path, reason));
            }
        }
        if out[i].dir && out[i].kind.is_con() {
            errors.push(refuse(&out[i].path, Reason::ConDirectory));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// liteimg's parent/child matrix.
fn child_allowed(parent: &Entry, child: &Entry) -> Result<(), ParentRule> {
    let p = parent.kind;
    let c = child.kind;
    let path = parent.path.clone();
    if p.is_ro() || p.is_con() {
        return Err(ParentRule::RoCon(path));
    }
    if p.is_link() && (!c.is_link() || c == Kind::LinkRo) {
        return Err(ParentRule::Link(path));
    }
    if !p.is_link() && c.is_link() {
        return Err(ParentRule::NonLink(path));
    }
    if p.is_persistent() && !c.is_persistent() {
        return Err(ParentRule::Persistent(path));
    }
    Ok(())
}

/// What litetree directories may name: `$node`, `$image` and the node's
/// `$table.column` attributes (its `[[node]]` row and groups, see
/// `Config::attributes`).
#[derive(Debug, Clone, Copy)]
pub struct Variables<'a> {
    /// `None` while the name is still to come from DHCP: `$node` is checked
    /// with a stand-in and the boot expands it with DHCP's host name.
    pub node: Option<&'a str>,
    pub image: &'a str,
    pub attributes: &'a BTreeMap<String, String>,
}

/// What `$node` stands for while the name is still to come from DHCP.
const NODE_STANDIN: &str = "node";

impl Variables<'_> {
    fn value(&self, name: &str, text: &str) -> Result<&str, Reason> {
        match name {
            "node" => return Ok(self.node.unwrap_or(NODE_STANDIN)),
            "image" => return Ok(self.image),
            _ => {}
        }
        if let Some(v) = self.attributes.get(name) {
            return Ok(v);
        }
        match name.split_once('.') {
            Some((table, column)) if crate::config::is_xcat_column(table, column) => {
                Err(Reason::NoValue {
                    table: table.into(),
                    column: column.into(),
                    node: self.node.unwrap_or("(DHCP host name)").into(),
                })
            }
            _ => Err(Reason::UnknownVariable {
                name: name.into(),
                text: text.into(),
            }),
        }
    }
}

/// Expands `$node`, `$image`, `$table.column` (also as `${…}`); a variable
/// without a value is an error, never silently empty.
pub fn expand(text: &str, vars: &Variables) -> Result<String, Reason> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = if let Some(b) = after.strip_prefix('{') {
            let end = b.find('}').ok_or_else(|| Reason::Unclosed(text.into()))?;
            (&b[..end], &b[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        out.push_str(vars.value(name, text)?);
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

/// Trees for the image, by ascending priority, variables expanded. Errors
/// name the row by its place in `rows`, the `[[statelite.litetree]]` list.
pub fn trees(rows: &[LiteTree], vars: &Variables) -> Result<Vec<TreeRow>, Vec<TableError>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    let mut rows: Vec<(usize, &LiteTree)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| applies(&r.image, vars.image))
        .collect();
    rows.sort_by(|(_, a), (_, b)| a.priority.total_cmp(&b.priority));
    for (i, r) in rows {
        let refuse = |reason: Reason| TableError {
            row: TableRow::Litetree(i + 1),
            reason,
        };
        let options = match r.mntopts.as_deref().map(spec::parse_options) {
            Some(Err(e)) => {
                errors.push(refuse(e.into()));
                continue;
            }
            Some(Ok(o)) => o,
            None => Vec::new(),
        };
        let ro = [vec!["ro".to_string()], options].concat();
        match expand(&r.directory, vars)
            .and_then(|d| Location::parse(&d, &ro).map_err(Reason::from))
        {
            Ok(location) => out.push(TreeRow {
                priority: r.priority,
                location,
            }),
            Err(reason) => errors.push(refuse(reason)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Everything the planner needs beyond the tables.
pub struct Inputs<'a> {
    pub entries: &'a [Entry],
    pub trees: &'a [Tree],
    pub node: &'a str,
    pub store: Option<&'a Store>,
}

/// Stage 1: the layout and its mounts (tmpfs, persistent store, litetrees).
/// Stage 2, [`plan_entries`], looks into what these mounts show.
pub fn plan_layout(inp: &Inputs) -> Result<Vec<Action>, TableError> {
    if inp.node.is_empty() || inp.node.contains('/') || inp.node == "." || inp.node == ".." {
        return Err(refuse(inp.node, Reason::NodeName));
    }
    let mut a = vec![
        Action::MountTmpfs(STATELITE.into()),
        Action::Mkdir(TMPFS.into()),
        Action::Mkdir(PERSISTENT.into()),
        Action::Mkdir(MNT.into()),
    ];
    let node_dir = format!("{PERSISTENT}/{}", inp.node);
    if let Some(store) = inp.store {
        a.push(Action::MountSource {
            source: store.clone(),
            target: PERSISTENT.into(),
            read_only: false,
        });
        a.push(Action::Mkdir(node_dir));
    }
    for (i, t) in inp.trees.iter().enumerate() {
        let target = format!("{MNT}/{i}");
        a.push(Action::Mkdir(target.clone()));
        a.push(Action::MountSource {
            source: t.source.clone(),
            target,
            read_only: true,
        });
    }
    Ok(a)
}

/// Stage 2: each entry's copy, bind or link, parents before children.
pub fn plan_entries(inp: &Inputs, probe: &dyn Probe) -> Vec<Action> {
    let node_dir = format!("{PERSISTENT}/{}", inp.node);
    let mut a = Vec::new();
    for e in inp.entries {
        entry_actions(inp, e, probe, &node_dir, &mut a);
    }
    a
}

/// The image's own copy of `p`: `/.default<p>` once liteimg moved it there,
/// else `<p>` itself unless it is liteimg's link.
fn own_copy(p: &str, prepared: bool, probe: &dyn Probe) -> Option<String> {
    if probe.found(&format!("{DEFAULT}{p}")).is_some() {
        Some(format!("{DEFAULT}{p}"))
    } else if !prepared && probe.found(p).is_some() {
        Some(p.to_string())
    } else {
        None
    }
}

/// liteimg's decision for one entry: a top-level link entry whose image copy
/// is not behind the link chain yet, in an image that can be changed. Both the
/// boot's planner and `statelite liteimg` ask this one question.
pub fn makes_link(e: &Entry, probe: &dyn Probe) -> bool {
    e.kind.is_link()
        && e.parent.is_none()
        && !probe.is_prepared_link(&e.path)
        && probe.writable()
        && own_copy(&e.path, false, probe).is_some()
}

/// `statelite liteimg`, xCAT's image preparation alone: the link chains of
/// the top-level link entries (the boot planner's own [`makes_link`]), and
/// for each path `recorded` by the last run that is no longer a link entry,
/// its link undone. Nothing but warnings when the image is already prepared.
pub fn plan_liteimg(entries: &[Entry], recorded: &[String], probe: &dyn Probe) -> Vec<Action> {
    let mut a = Vec::new();
    let mut links = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.kind.is_link() && e.parent.is_none())
    {
        if makes_link(e, probe) {
            a.push(Action::PrepareLink {
                path: e.path.clone(),
            });
        } else if !probe.is_prepared_link(&e.path) {
            a.push(Action::Warn(format!(
                "{}: not in the image nor in {DEFAULT}: no link made",
                e.path
            )));
            continue;
        }
        links.push(e.path.clone());
    }
    for path in recorded.iter().filter(|r| !links.contains(r)) {
        // Only liteimg's own link is undone: anything else there is the admin's.
        if normalise(path).is_ok() && probe.is_prepared_link(path) {
            a.push(Action::RestoreLink { path: path.clone() });
        } else {
            a.push(Action::Warn(format!(
                "{path}: no longer a link entry, but not liteimg's link any more: left as it is"
            )));
        }
    }
    if links != recorded {
        a.push(Action::RecordLinks(links));
    }
    a
}

/// What `con` concatenates: every litetree copy, else the image's own.
fn concat_sources(hits: &[String], own: Option<&String>) -> Vec<String> {
    if hits.is_empty() {
        own.into_iter().cloned().collect()
    } else {
        hits.to_vec()
    }
}

fn entry_actions(inp: &Inputs, e: &Entry, probe: &dyn Probe, node_dir: &str, a: &mut Vec<Action>) {
    let p = &e.path;
    let tmp = format!("{TMPFS}{p}");
    let hits: Vec<String> = (0..inp.trees.len())
        .map(|i| format!("{MNT}/{i}{p}"))
        .filter(|c| probe.found(c) == Some(true))
        .collect();
    let prepared = probe.is_prepared_link(p);
    let own = own_copy(p, prepared, probe);
    let mut source = hits.first().cloned().or_else(|| own.clone());
    let mut kind = e.kind;
    if kind.is_link() && !prepared && e.parent.is_none() {
        if makes_link(e, probe) {
            a.push(Action::PrepareLink { path: p.clone() });
            // The original is in /.default once prepared.
            source = hits.first().cloned().or(Some(format!("{DEFAULT}{p}")));
        } else {
            // A read-only image without liteimg's links: bind instead, loudly
            // (a path found nowhere gets its own warning below).
            if source.is_some() {
                a.push(Action::Warn(format!(
                    "{p}: the image has no link chain for a link entry; binding instead (prepare the image with `init-agent statelite liteimg` on the master)"
                )));
            }
            kind = match kind {
                Kind::LinkPersistent => Kind::Persistent,
                Kind::LinkCon => Kind::Con,
                Kind::LinkRo => Kind::Ro,
                _ => Kind::Tmpfs,
            };
        }
    }
    let under_parent = e.parent.is_some();
    let parent_persistent = e
        .parent
        .and_then(|i| inp.entries.get(i))
        .is_some_and(|parent| parent.kind.is_persistent());
    let persistent = format!("{node_dir}{p}");
    if kind.is_persistent() && inp.store.is_none() {
        a.push(Action::Warn(format!(
            "{p}: persistent but no STATEMNT: kept in tmpfs, lost at reboot"
        )));
    }
    let missing = || {
        Action::Warn(format!(
            "{p}: not found in any litetree, {DEFAULT} or the image"
        ))
    };
    match kind {
        Kind::Tmpfs | Kind::Link => match &source {
            Some(s) => {
                a.push(Action::Copy {
                    from: s.clone(),
                    to: tmp.clone(),
                    if_missing: false,
                });
                if kind == Kind::Tmpfs && !under_parent {
                    a.push(Action::Bind {
                        source: tmp,
                        target: p.clone(),
                        read_only: false,
                    });
                }
            }
            None => a.push(missing()),
        },
        Kind::Persistent | Kind::PersistentCon | Kind::LinkPersistent => {
            let store = if inp.store.is_some() {
                persistent
            } else {
                tmp.clone()
            };
            let stored = probe.found(&store).is_some();
            match (kind, &source) {
                // A stored copy is the node's own: never concatenated again.
                (Kind::PersistentCon, _) if stored => {}
                (Kind::PersistentCon, _) => {
                    let from = concat_sources(&hits, own.as_ref());
                    a.push(if from.is_empty() {
                        Action::Create {
                            path: store.clone(),
                            dir: false,
                        }
                    } else {
                        Action::Concat {
                            from,
                            to: store.clone(),
                        }
                    });
                }
                (_, Some(s)) => a.push(Action::Copy {
                    from: s.clone(),
                    to: store.clone(),
                    if_missing: true,
                }),
                // xCAT: "if the file is absent it is created during initialisation".
                (_, None) if !stored => a.push(Action::Create {
                    path: store.clone(),
                    dir: e.dir,
                }),
                (_, None) => {}
            }
            // Inside a persistent parent the copy already sits in the bound tree.
            if (kind != Kind::LinkPersistent || under_parent) && !parent_persistent {
                bind_persistent(e, store, under_parent, probe, a);
            } else if store != tmp {
                a.push(Action::Symlink {
                    path: tmp.clone(),
                    target: link_target(&tmp, &store),
                });
            }
        }
        Kind::Con | Kind::LinkCon => {
            let from = concat_sources(&hits, own.as_ref());
            if from.is_empty() {
                a.push(missing());
            } else {
                a.push(Action::Concat {
                    from,
                    to: tmp.clone(),
                });
                if kind == Kind::Con {
                    a.push(Action::Bind {
                        source: tmp,
                        target: p.clone(),
                        read_only: false,
                    });
                }
            }
        }
        Kind::Ro | Kind::LinkRo => match hits.first() {
            Some(h) if kind == Kind::Ro => a.push(Action::Bind {
                source: h.clone(),
                target: p.clone(),
                read_only: true,
            }),
            Some(h) => a.push(Action::Symlink {
                path: tmp.clone(),
                target: link_target(&tmp, h),
            }),
            None => a.push(Action::Warn(format!(
                "{p}: ro needs a litetree copy and none has it"
            ))),
        },
    }
}

/// Binds the stored copy over the entry. A bind needs a mount point: one
/// missing from the image is created where it can be (a writable image, or
/// below a parent entry's tmpfs copy); on a read-only image it is a warning,
/// never a failed bind, and the stored copy stays for the next boot.
fn bind_persistent(
    e: &Entry,
    store: String,
    under_parent: bool,
    probe: &dyn Probe,
    a: &mut Vec<Action>,
) {
    let p = &e.path;
    if probe.found(p).is_none() && !probe.is_prepared_link(p) {
        if !(probe.writable() || under_parent) {
            a.push(Action::Warn(format!(
                "{p}: not in the read-only image, so there is no mount point for {store}; create it in the image"
            )));
            return;
        }
        a.push(Action::Create {
            path: p.clone(),
            dir: e.dir,
        });
    }
    a.push(Action::Bind {
        source: store,
        target: p.clone(),
        read_only: false,
    });
}

#[cfg(test)]
mod tests;
