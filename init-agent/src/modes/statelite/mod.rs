//! xCAT statelite on a read-only shared root: the litefile/litetree tables of
//! a node's image become a tmpfs layout under /.statelite, per-node persistent
//! storage from STATEMNT, and the copies, binds and link chains of xCAT's
//! rc.statelite. `plan` decides, `apply` does; `import` reads xCAT's tables.

pub mod apply;
pub mod command;
pub mod import;
pub mod overlay;
pub mod plan;

use std::collections::BTreeMap;
use std::path::Path;

use crate::config;
use plan::{Action, Entry, Inputs, Store, TableError, Tree};

#[derive(Debug, thiserror::Error)]
pub enum StateliteError {
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Tables(Vec<TableError>),
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
    #[error("{0}")]
    Root(String),
}

/// Who and what: the node, its image, where its state lives.
pub struct Request<'a> {
    pub tables: &'a config::Statelite,
    pub image: &'a str,
    pub node: &'a str,
    pub store: Option<Store>,
    /// Extra `$name` values for litetree directories (`$node`, `$image` are set).
    pub vars: BTreeMap<String, String>,
}

/// The node's entries and trees, every table error at once.
pub fn resolve(req: &Request) -> Result<(Vec<Entry>, Vec<Tree>), StateliteError> {
    let mut vars = req.vars.clone();
    vars.insert("node".into(), req.node.into());
    vars.insert("image".into(), req.image.into());
    let entries = plan::entries(&req.tables.litefile, req.image);
    let trees = plan::trees(&req.tables.litetree, req.image, &vars);
    match (entries, trees) {
        (Ok(e), Ok(t)) => Ok((e, t)),
        (e, t) => {
            let mut errors = e.err().unwrap_or_default();
            errors.extend(t.err().unwrap_or_default());
            Err(StateliteError::Tables(errors))
        }
    }
}

/// Builds the layout in `root`, then each entry; returns what was done.
pub fn apply_to(root: &Path, req: &Request) -> Result<Vec<Action>, StateliteError> {
    let (entries, trees) = resolve(req)?;
    let inputs = Inputs {
        entries: &entries,
        trees: &trees,
        node: req.node,
        store: req.store.as_ref(),
    };
    let root = apply::Root::open(root)
        .map_err(|e| StateliteError::Root(format!("{}: {e}", root.display())))?;
    if apply::layout_mounted(&root) {
        return Err(StateliteError::Root(
            "statelite is already applied here (unmount /.statelite and the binds first)".into(),
        ));
    }
    let layout = plan::plan_layout(&inputs).map_err(|e| StateliteError::Tables(vec![e]))?;
    apply::run(&root, &layout)?;
    let steps = plan::plan_entries(&inputs, &root);
    apply::run(&root, &steps)?;
    Ok(layout.into_iter().chain(steps).collect())
}

#[cfg(test)]
mod tests;

/// Statelite and overlay modes at boot, on the standard root mounted by the
/// source stage: `mounted` is `server:path` of that mount, whose server
/// stands in for a STATEMNT that names none.
pub fn boot(
    plan: &crate::boot::plan::BootPlan,
    c: &config::Config,
    node: Option<&str>,
    mounted: &str,
) -> Result<(), String> {
    let node = node.ok_or(
        "statelite needs the node's name: NODE=, its [[node]] name, ip='s host name or DHCP's",
    )?;
    let server = mounted.rsplit_once(':').map_or("", |(s, _)| s);
    let store = plan.statemnt.as_ref().map(|l| Store::Nfs {
        source: format!("{}:{}", l.server.as_deref().unwrap_or(server), l.path),
        options: plan.statemnt_options.join(","),
    });
    let req = Request {
        tables: &c.statelite,
        image: plan.image.as_deref().unwrap_or_default(),
        node,
        store,
        vars: BTreeMap::new(),
    };
    let root = Path::new(&plan.root);
    if plan.mode == crate::cmdline::Mode::Statelite && !root.join(".statelite").is_dir() {
        return Err(format!(
            "the image {mounted} has no /.statelite directory to mount the layout on (xCAT's liteimg makes it): create it in the image on the master"
        ));
    }
    let r = match plan.mode {
        crate::cmdline::Mode::Overlay => overlay::apply(
            Path::new(crate::boot::plan::SOURCE_MOUNT),
            Path::new(OVERLAY_SCRATCH),
            root,
            &req,
        )
        .map(|()| Vec::new()),
        _ => apply_to(root, &req),
    };
    let actions = r.map_err(|e| format!("{}: {e}", plan.mode))?;
    for a in &actions {
        match a {
            Action::Warn(w) => log::warn!("statelite: {w}"),
            other => log::debug!("statelite: {other}"),
        }
    }
    let store = if plan.statemnt.is_some() {
        ", persistent store mounted"
    } else {
        ""
    };
    match plan.mode {
        crate::cmdline::Mode::Overlay => log::info!(
            "overlay for node {node}: the standard root under a tmpfs upper layer on {}{store}",
            root.display()
        ),
        _ => log::info!(
            "statelite for node {node}: {} actions{store}",
            actions.len()
        ),
    }
    Ok(())
}

/// Where the overlay mode keeps its tmpfs (upper and work directories).
pub const OVERLAY_SCRATCH: &str = "/run/init-agent/overlay";
