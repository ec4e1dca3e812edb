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
use plan::{Action, Entry, Inputs, Store, TableError, Tree, Variables};

#[derive(Debug, thiserror::Error)]
pub enum StateliteError {
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Tables(Vec<TableError>),
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
    #[error("{0}")]
    Root(String),
    #[error(transparent)]
    Name(#[from] crate::net::dns::DnsError),
}

/// Who and what: the node, its image, where its state lives.
pub struct Request<'a> {
    pub tables: &'a config::Statelite,
    pub image: &'a str,
    pub node: &'a str,
    pub store: Option<Store>,
    /// `table.column` values for litetree directories (`$node`, `$image` are
    /// the two above).
    pub attributes: BTreeMap<String, String>,
}

/// The node's entries and trees, every table error at once.
pub fn resolve(req: &Request) -> Result<(Vec<Entry>, Vec<Tree>), StateliteError> {
    let vars = Variables {
        node: Some(req.node),
        image: req.image,
        attributes: &req.attributes,
    };
    let entries = plan::entries(&req.tables.litefile, req.image);
    let trees = plan::trees(&req.tables.litetree, &vars);
    match (entries, trees) {
        (Ok(e), Ok(t)) => {
            let trees = t
                .iter()
                .map(|t| t.mount(crate::net::dns::host_addr))
                .collect::<Result<_, _>>()?;
            Ok((e, trees))
        }
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
    apply(
        root,
        &Inputs {
            entries: &entries,
            trees: &trees,
            node: req.node,
            store: req.store.as_ref(),
        },
    )
}

/// Builds the layout in `root`, then each resolved entry; returns what was done.
pub fn apply(root: &Path, inputs: &Inputs) -> Result<Vec<Action>, StateliteError> {
    let root = crate::sys::root::Root::open(root)
        .map_err(|e| StateliteError::Root(format!("{}: {e}", root.display())))?;
    if apply::layout_mounted(&root) {
        return Err(StateliteError::Root(
            "statelite is already applied here (unmount /.statelite and the binds first)".into(),
        ));
    }
    let layout = plan::plan_layout(inputs).map_err(|e| StateliteError::Tables(vec![e]))?;
    apply::run(&root, &layout)?;
    let steps = plan::plan_entries(inputs, &root);
    apply::run(&root, &steps)?;
    Ok(layout.into_iter().chain(steps).collect())
}

/// `statelite liteimg`: prepares the image in `root` for the tables' link
/// entries and undoes what an earlier run made for rows since removed;
/// `dry_run` plans only. Returns the actions (warnings included).
pub fn liteimg(
    root: &Path,
    entries: &[Entry],
    dry_run: bool,
) -> Result<Vec<Action>, StateliteError> {
    let image = crate::sys::root::Root::open(root)
        .map_err(|e| StateliteError::Root(format!("{}: {e}", root.display())))?;
    if !image.writable() {
        return Err(StateliteError::Root(format!(
            "{}: the image is read-only, and liteimg changes it",
            root.display()
        )));
    }
    let recorded = apply::recorded_links(&image)?;
    let actions = plan::plan_liteimg(entries, &recorded, &image);
    if !dry_run {
        apply::run_in_image(&image, &actions)?;
    }
    Ok(actions)
}

#[cfg(test)]
mod tests;
