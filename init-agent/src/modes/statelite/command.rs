//! `init-agent statelite …`: the admin entry points.

use anyhow::{bail, Context};

use super::plan::Store;
use super::{apply_to, import, Request};
use crate::cli::{StateliteApply, StateliteCommand};
use crate::{cli, config};

pub fn run(args: &cli::Statelite) -> anyhow::Result<bool> {
    match &args.command {
        StateliteCommand::ImportXcat(a) => {
            let read = |p: &std::path::Path| {
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
            };
            let litefile = read(&a.litefile)?;
            let optional = |p: &Option<std::path::PathBuf>| p.as_deref().map(read).transpose();
            let litetree = optional(&a.litetree)?;
            let statelite = optional(&a.statelite)?;
            let nodelist = optional(&a.nodelist)?;
            let noderes = optional(&a.noderes)?;
            let nodetype = optional(&a.nodetype)?;
            let nodepos = optional(&a.nodepos)?;
            let node_tables = import::NodeTables {
                nodelist: nodelist.as_deref(),
                noderes: noderes.as_deref(),
                nodetype: nodetype.as_deref(),
                nodepos: nodepos.as_deref(),
            };
            print!(
                "{}",
                import::import_xcat(
                    &litefile,
                    litetree.as_deref(),
                    statelite.as_deref(),
                    &node_tables
                )?
            );
            Ok(true)
        }
        StateliteCommand::Apply(a) => apply(a),
    }
}

fn apply(a: &StateliteApply) -> anyhow::Result<bool> {
    let conf =
        config::load_file(&a.config).with_context(|| format!("loading {}", a.config.display()))?;
    // The node's row gives its image and `$table.column` values, as at boot;
    // --var adds to them or overrides them.
    let row = conf.node_by_name(&a.node).map(|(_, n)| n);
    let mut attributes = row.map(|n| conf.attributes(n)).unwrap_or_default();
    for v in &a.var {
        let Some((k, val)) = v.split_once('=') else {
            bail!("--var {v}: expected NAME=VALUE");
        };
        attributes.insert(k.to_string(), val.to_string());
    }
    let image = a
        .image
        .clone()
        .or_else(|| row.and_then(|n| n.image.clone()))
        .or(conf.statelite.image.clone())
        .unwrap_or_default();
    // An existing directory is a local store; <server>:<path> is NFS.
    let store = match &a.state {
        Some(s) if std::path::Path::new(s).is_dir() => {
            Some(Store::Dir(std::fs::canonicalize(s)?.display().to_string()))
        }
        Some(s) => {
            let rw = [vec!["rw".to_string()], conf.statelite.mntopts.clone()].concat();
            match Store::parse(s, &rw) {
                Ok(m @ Store::Nfs(_)) => Some(m),
                Ok(Store::Dir(_)) => bail!("--state {s}: no such directory"),
                Err(e) => bail!("--state {s}: {e}"),
            }
        }
        None => None,
    };
    let req = Request {
        tables: &conf.statelite,
        image: &image,
        node: &a.node,
        store,
        attributes,
    };
    match apply_to(&a.root, &req) {
        Ok(actions) => {
            for action in actions {
                println!("{action}");
            }
            Ok(true)
        }
        Err(e) => {
            eprintln!("init-agent statelite: {e}");
            Ok(false)
        }
    }
}
