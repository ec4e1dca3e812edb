//! Open-Sharedroot context-dependent symlinks (CDSL). One shared root serves
//! every node; a host-dependent path is a relative symlink through
//! `/cdsl.local`, and at boot each node binds its own tree
//! `/cluster/cdsl/<nodeid>` there. A path made shared again below a
//! host-dependent directory (`com-mkcdsl -s`) lives once in `/cluster/shared`
//! and each node tree holds a symlink to it. The admin side converts paths;
//! an inventory (`<tree>/.cdsl_inventory`, as comoonics keeps one) lists
//! them: a host-dependent path per line, `shared <path>` for the others.
//! Planning is pure; `apply` runs the actions inside the root, resolving
//! every path with RESOLVE_IN_ROOT.

use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use crate::config::Cdsl;
use crate::sync::copy_in_root as copy;
use crate::sys::fsops;
use crate::sys::root::{link_target, Root};

#[derive(Debug, thiserror::Error)]
pub enum CdslError {
    #[error("cdsl: node id {0:?}: must be a plain name (no '/', not '.' or '..')")]
    NodeId(String),
    #[error("cdsl: {path}: {reason}")]
    Path { path: String, reason: String },
    #[error("cdsl: {action}: {cause}")]
    Apply { action: String, cause: String },
}

fn bad(path: &str, reason: impl Into<String>) -> CdslError {
    CdslError::Path {
        path: path.into(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Mkdir(String),
    /// Copy a file or tree (metadata kept), unless `to` exists.
    Copy {
        from: String,
        to: String,
    },
    /// Remove a file, symlink or tree.
    Remove(String),
    Symlink {
        path: String,
        target: String,
    },
    Bind {
        source: String,
        target: String,
    },
    /// Add to (true) or drop from (false) the inventory: its line, a
    /// host-dependent path or `shared <path>`.
    Inventory {
        line: String,
        add: bool,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Mkdir(p) => write!(f, "mkdir {p}"),
            Action::Copy { from, to } => write!(f, "copy {from} -> {to}"),
            Action::Remove(p) => write!(f, "remove {p}"),
            Action::Symlink { path, target } => write!(f, "symlink {path} -> {target}"),
            Action::Bind { source, target } => write!(f, "bind {source} -> {target}"),
            Action::Inventory { line, add: true } => write!(f, "inventory add {line}"),
            Action::Inventory { line, add: false } => write!(f, "inventory drop {line}"),
        }
    }
}

const INVENTORY: &str = ".cdsl_inventory";
/// The inventory's mark of a shared path below a host-dependent directory.
const SHARED: &str = "shared ";

fn shared_line(path: &str) -> String {
    format!("{SHARED}{path}")
}

fn node_id(id: &str) -> Result<(), CdslError> {
    if id.is_empty() || id.contains('/') || id == "." || id == ".." || id.contains('\0') {
        return Err(CdslError::NodeId(id.into()));
    }
    Ok(())
}

/// Absolute, normalised, outside the CDSL infrastructure itself.
fn host_path(cfg: &Cdsl, path: &str) -> Result<String, CdslError> {
    if !path.starts_with('/') {
        return Err(bad(path, "not an absolute path"));
    }
    let p = path.trim_end_matches('/');
    if p.is_empty()
        || p[1..]
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(bad(
            path,
            "needs a normalised path below / (no '.', '..' or '//')",
        ));
    }
    for infra in [&cfg.tree, &cfg.shared, &cfg.link] {
        let infra = infra.trim_end_matches('/');
        if p == infra || p.starts_with(&format!("{infra}/")) || infra.starts_with(&format!("{p}/"))
        {
            return Err(bad(
                path,
                format!("overlaps the CDSL infrastructure {infra}"),
            ));
        }
    }
    Ok(p.to_string())
}

/// The symlink text a node tree holds for a shared path `p`: relative to
/// where the node sees its tree (`<link><p>`), as Open-Sharedroot writes it.
fn shared_link(cfg: &Cdsl, p: &str) -> String {
    link_target(&format!("{}{p}", cfg.link), &format!("{}{p}", cfg.shared))
}

/// Boot: the node's own tree on the link point, then each shared path below
/// a host-dependent directory whose link the node's tree lacks (a tree made
/// by hand, or copied from a node before `cdsl shared`) bound from the shared
/// tree, so every node sees the one shared copy. `linked` answers whether
/// the node's tree holds the link (the executor asks the root).
pub fn plan_boot(
    cfg: &Cdsl,
    layout: &Layout,
    nodeid: &str,
    linked: &dyn Fn(&str, &str) -> bool,
) -> Result<Vec<Action>, CdslError> {
    node_id(nodeid)?;
    let tree = format!("{}/{nodeid}", cfg.tree);
    let mut a = vec![Action::Bind {
        source: tree.clone(),
        target: cfg.link.clone(),
    }];
    for p in &layout.shared {
        if !linked(&format!("{tree}{p}"), &shared_link(cfg, p)) {
            a.push(Action::Bind {
                source: format!("{}{p}", cfg.shared),
                target: format!("{}{p}", cfg.link),
            });
        }
    }
    Ok(a)
}

/// Boot, done: the inventory read, planned, applied in `root`.
pub fn boot(root: &Path, cfg: &Cdsl, nodeid: &str) -> Result<(), CdslError> {
    let l = layout(root, cfg)?;
    let r = open(root)?;
    let actions = plan_boot(cfg, &l, nodeid, &|path, target| r.links_to(path, target))?;
    apply(root, cfg, &actions)
}

/// Admin: `<tree>/<default_dir>`, a tree per node (a copy of the default),
/// `<shared>` and the empty link point.
pub fn plan_init(cfg: &Cdsl, nodes: &[String]) -> Result<Vec<Action>, CdslError> {
    node_id(&cfg.default_dir)?;
    let default = format!("{}/{}", cfg.tree, cfg.default_dir);
    let mut a = vec![Action::Mkdir(default.clone())];
    for n in nodes {
        node_id(n)?;
        a.push(Action::Copy {
            from: default.clone(),
            to: format!("{}/{n}", cfg.tree),
        });
    }
    a.push(Action::Mkdir(cfg.shared.clone()));
    a.push(Action::Mkdir(cfg.link.clone()));
    Ok(a)
}

/// What the root holds now, for the planners.
pub struct Layout {
    /// Node trees, the default first.
    pub trees: Vec<String>,
    pub hostdep: Vec<String>,
    /// Shared paths below a host-dependent directory.
    pub shared: Vec<String>,
}

/// The host-dependent directory `p` lies in, if any.
fn hostdep_ancestor<'a>(layout: &'a Layout, p: &str) -> Option<&'a String> {
    layout
        .hostdep
        .iter()
        .find(|h| p.starts_with(&format!("{h}/")))
}

/// Admin: PATH becomes host-dependent: copied into every node's tree, then
/// replaced by a relative symlink through the link point.
pub fn plan_hostdep(cfg: &Cdsl, layout: &Layout, path: &str) -> Result<Vec<Action>, CdslError> {
    let p = host_path(cfg, path)?;
    if layout.hostdep.contains(&p) {
        return Err(bad(&p, "is host-dependent already"));
    }
    if layout.shared.contains(&p) {
        return Ok(plan_unshare(cfg, layout, p));
    }
    if let Some(h) = hostdep_ancestor(layout, &p) {
        return Err(bad(&p, format!("is inside the host-dependent {h} already")));
    }
    if layout.trees.is_empty() {
        return Err(bad(
            &p,
            "no CDSL infrastructure: run `init-agent cdsl init` first",
        ));
    }
    let mut a: Vec<Action> = layout
        .trees
        .iter()
        .map(|t| Action::Copy {
            from: p.clone(),
            to: format!("{t}{p}"),
        })
        .collect();
    a.push(Action::Remove(p.clone()));
    a.push(Action::Symlink {
        path: p.clone(),
        target: link_target(&p, &format!("{}{p}", cfg.link)),
    });
    a.push(Action::Inventory { line: p, add: true });
    Ok(a)
}

/// Admin: a shared path below a host-dependent directory becomes host-dependent
/// again: every node tree gets its own copy of the shared one in place of its
/// link, and the shared copy goes once every tree has it.
fn plan_unshare(cfg: &Cdsl, layout: &Layout, p: String) -> Vec<Action> {
    let shared = format!("{}{p}", cfg.shared);
    let mut a = Vec::new();
    for t in &layout.trees {
        a.push(Action::Remove(format!("{t}{p}")));
        a.push(Action::Copy {
            from: shared.clone(),
            to: format!("{t}{p}"),
        });
    }
    a.push(Action::Remove(shared));
    a.push(Action::Inventory {
        line: shared_line(&p),
        add: false,
    });
    a
}

/// Admin: a host-dependent PATH becomes shared again, from the default tree;
/// a PATH below a host-dependent directory becomes shared there
/// (`com-mkcdsl -s`, see [`plan_shared_inside`]).
pub fn plan_shared(cfg: &Cdsl, layout: &Layout, path: &str) -> Result<Vec<Action>, CdslError> {
    let p = host_path(cfg, path)?;
    if layout.shared.contains(&p) {
        return Err(bad(&p, "is shared already"));
    }
    if hostdep_ancestor(layout, &p).is_some() {
        return Ok(plan_shared_inside(cfg, layout, p));
    }
    if !layout.hostdep.contains(&p) {
        return Err(bad(
            &p,
            "is not host-dependent, nor inside a host-dependent directory",
        ));
    }
    // Undoing the directory would leave its shared links pointing nowhere.
    if let Some(s) = layout
        .shared
        .iter()
        .find(|s| s.starts_with(&format!("{p}/")))
    {
        return Err(bad(
            &p,
            format!("holds the shared {s}: make that host-dependent first (`cdsl hostdep {s}`)"),
        ));
    }
    let default = format!("{}/{}", cfg.tree, cfg.default_dir);
    let mut a = vec![
        Action::Remove(p.clone()),
        Action::Copy {
            from: format!("{default}{p}"),
            to: p.clone(),
        },
    ];
    a.extend(
        layout
            .trees
            .iter()
            .map(|t| Action::Remove(format!("{t}{p}"))),
    );
    a.push(Action::Inventory {
        line: p,
        add: false,
    });
    Ok(a)
}

/// `com-mkcdsl -s` below a host-dependent directory: the default tree's
/// copy moves to `<shared><p>` (kept when one is there already), and each
/// node tree's copy becomes a symlink to it, relative to where nodes see
/// their tree (`<link><p>`), so `<p>` reads the shared copy on every node.
fn plan_shared_inside(cfg: &Cdsl, layout: &Layout, p: String) -> Vec<Action> {
    let default = format!("{}/{}", cfg.tree, cfg.default_dir);
    let shared = format!("{}{p}", cfg.shared);
    let parent = shared.rsplit_once('/').map_or("/", |(d, _)| d).to_string();
    let mut a = vec![
        Action::Mkdir(parent),
        Action::Copy {
            from: format!("{default}{p}"),
            to: shared,
        },
    ];
    let target = shared_link(cfg, &p);
    for t in &layout.trees {
        a.push(Action::Remove(format!("{t}{p}")));
        a.push(Action::Symlink {
            path: format!("{t}{p}"),
            target: target.clone(),
        });
    }
    a.push(Action::Inventory {
        line: shared_line(&p),
        add: true,
    });
    a
}

/// Reads the node trees and the inventory of `root`.
pub fn layout(root: &Path, cfg: &Cdsl) -> Result<Layout, CdslError> {
    let r = open(root)?;
    let io = |e: io::Error| bad(&cfg.tree, e.to_string());
    let mut trees = Vec::new();
    if let Ok(dir) = r.open_dir(&cfg.tree) {
        let names = fsops::read_names(dir.as_fd()).map_err(io)?;
        let default = format!("{}/{}", cfg.tree, cfg.default_dir);
        if names
            .iter()
            .any(|n| n.to_bytes() == cfg.default_dir.as_bytes())
        {
            trees.push(default.clone());
        }
        for n in names {
            let n = n.to_string_lossy().into_owned();
            let t = format!("{}/{n}", cfg.tree);
            if t != default
                && !n.starts_with('.')
                && r.kind(&t, false) == Some(rustix::fs::FileType::Directory)
            {
                trees.push(t);
            }
        }
    }
    let inventory = r
        .reach(&format!("{}/{INVENTORY}", cfg.tree), false)
        .ok()
        .and_then(|fd| std::fs::read_to_string(Root::proc(&fd)).ok())
        .unwrap_or_default();
    let (shared, hostdep): (Vec<&str>, Vec<&str>) = inventory
        .lines()
        .filter(|l| !l.is_empty())
        .partition(|l| l.starts_with(SHARED));
    Ok(Layout {
        trees,
        hostdep: hostdep.into_iter().map(String::from).collect(),
        shared: shared
            .into_iter()
            .map(|l| l.trim_start_matches(SHARED).to_string())
            .collect(),
    })
}

fn open(root: &Path) -> Result<Root, CdslError> {
    Root::open(root).map_err(|e| bad(&root.display().to_string(), e.to_string()))
}

/// Runs the actions inside `root`.
pub fn apply(root: &Path, cfg: &Cdsl, actions: &[Action]) -> Result<(), CdslError> {
    let r = open(root)?;
    for action in actions {
        step(&r, cfg, action).map_err(|e| CdslError::Apply {
            action: action.to_string(),
            cause: e.to_string(),
        })?;
    }
    Ok(())
}

fn step(r: &Root, cfg: &Cdsl, action: &Action) -> io::Result<()> {
    match action {
        Action::Mkdir(p) => r.mkdir_p(p),
        Action::Copy { from, to } => {
            if r.kind(to, false).is_some() {
                return Ok(());
            }
            if r.kind(from, false).is_none() {
                return Err(io::Error::other(format!("{from} does not exist")));
            }
            copy(r, from, to)
        }
        Action::Remove(p) => remove(r, p),
        Action::Symlink { path, target } => {
            let (dir, name) = r.parent(path)?;
            Ok(rustix::fs::symlinkat(target.as_str(), &dir, &name)?)
        }
        Action::Bind { source, target } => {
            let s = r.reach(source, true)?;
            let t = r.reach(target, true)?;
            crate::sys::bind(&Root::proc(&s), &Root::proc(&t), false).map_err(io::Error::other)
        }
        Action::Inventory { line, add } => {
            let inv = format!("{}/{INVENTORY}", cfg.tree);
            let current = r
                .reach(&inv, false)
                .ok()
                .and_then(|fd| std::fs::read_to_string(Root::proc(&fd)).ok())
                .unwrap_or_default();
            let mut lines: Vec<&str> = current
                .lines()
                .filter(|l| !l.is_empty() && l != line)
                .collect();
            if *add {
                lines.push(line);
            }
            lines.sort_unstable();
            let (dir, name) = r.parent(&inv)?;
            let fd = rustix::fs::openat(
                &dir,
                &name,
                rustix::fs::OFlags::WRONLY
                    | rustix::fs::OFlags::CREATE
                    | rustix::fs::OFlags::TRUNC
                    | rustix::fs::OFlags::NOFOLLOW
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::from_raw_mode(0o644),
            )?;
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            use std::io::Write;
            std::fs::File::from(fd).write_all(text.as_bytes())
        }
    }
}

/// Removes a file, symlink or whole tree without following symlinks.
fn remove(r: &Root, path: &str) -> io::Result<()> {
    let (dir, name) = r.parent(path)?;
    remove_at(dir.as_fd(), &name)
}

fn remove_at(dir: std::os::fd::BorrowedFd, name: &std::ffi::CStr) -> io::Result<()> {
    let meta = match fsops::lstat(dir, name) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let is_dir = meta.kind == crate::sync::meta::Kind::Dir;
    if is_dir {
        let sub = fsops::open_dir(dir, name)?;
        for child in fsops::read_names(sub.as_fd())? {
            remove_at(sub.as_fd(), &child)?;
        }
    }
    fsops::unlink(dir, name, is_dir)
}

/// `init-agent cdsl …`: plan, print each action, apply.
pub fn command(args: &crate::cli::Cdsl) -> anyhow::Result<bool> {
    use crate::cli::CdslCommand as C;
    let cfg_of = |p: &Option<std::path::PathBuf>| -> anyhow::Result<Cdsl> {
        Ok(match p {
            Some(p) => crate::config::load_file(p)?.cdsl,
            None => Cdsl::default(),
        })
    };
    let (root, cfg, actions) = match &args.command {
        C::Init(a) => {
            let cfg = cfg_of(&a.config)?;
            let nodes: Vec<String> = a
                .nodes
                .iter()
                .flat_map(|n| n.split(','))
                .map(|n| n.trim().to_string())
                .collect();
            let actions = plan_init(&cfg, &nodes);
            (&a.root, cfg, actions)
        }
        C::Hostdep(a) => {
            let cfg = cfg_of(&a.config)?;
            let actions = layout(&a.root, &cfg).and_then(|l| plan_hostdep(&cfg, &l, &a.path));
            (&a.root, cfg, actions)
        }
        C::Shared(a) => {
            let cfg = cfg_of(&a.config)?;
            let actions = layout(&a.root, &cfg).and_then(|l| plan_shared(&cfg, &l, &a.path));
            (&a.root, cfg, actions)
        }
        C::List(a) => {
            let cfg = cfg_of(&a.config)?;
            let l = layout(&a.root, &cfg)?;
            for t in &l.trees {
                println!("tree {t}");
            }
            for p in &l.hostdep {
                println!("hostdep {p}");
            }
            for p in &l.shared {
                println!("shared {p} -> {}{p}", cfg.shared);
            }
            return Ok(true);
        }
    };
    let result = actions.and_then(|actions| {
        for action in &actions {
            println!("{action}");
        }
        apply(root, &cfg, &actions)
    });
    match result {
        Ok(()) => Ok(true),
        Err(e) => {
            eprintln!("init-agent {e}");
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests;
