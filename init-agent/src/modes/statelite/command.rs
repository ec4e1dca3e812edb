//! `init-agent statelite …`: the admin entry points.

use anyhow::{bail, Context};

use super::plan::{self, Action, Location, Store};
use super::{apply_to, import, Request};
use crate::cli::{StateliteApply, StateliteCommand, StateliteLiteimg};
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
        StateliteCommand::Liteimg(a) => liteimg(a),
        StateliteCommand::Apply(a) => apply(a),
    }
}

fn liteimg(a: &StateliteLiteimg) -> anyhow::Result<bool> {
    let path = a
        .config
        .clone()
        .unwrap_or_else(|| a.root.join("etc/init-agent.toml"));
    let conf = config::load_file(&path).with_context(|| format!("loading {}", path.display()))?;
    let image = image_name(a.image.as_ref(), None, &conf);
    let entries = match plan::entries(&conf.statelite.litefile, &image) {
        Ok(e) => e,
        Err(errors) => {
            for e in errors {
                eprintln!("init-agent statelite: {e}");
            }
            return Ok(false);
        }
    };
    match super::liteimg(&a.root, &entries, a.dry_run) {
        Ok(actions) => {
            for action in &actions {
                println!("{action}");
            }
            let root = a.root.display();
            if actions.iter().all(|x| matches!(x, Action::Warn(_))) {
                println!("liteimg: {root} is prepared already, nothing to change");
            } else if a.dry_run {
                println!("liteimg: dry run, {root} not changed");
            }
            Ok(true)
        }
        Err(e) => {
            eprintln!("init-agent statelite: {e}");
            Ok(false)
        }
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
    let image = image_name(a.image.as_ref(), row.and_then(|n| n.image.as_ref()), &conf);
    // An existing directory is a local store; <server>:<path> is NFS.
    let store = match &a.state {
        Some(s) if std::path::Path::new(s).is_dir() => {
            Some(Store::Dir(std::fs::canonicalize(s)?.display().to_string()))
        }
        Some(s) => {
            let rw = [vec!["rw".to_string()], conf.statelite.mntopts.clone()].concat();
            match Location::parse(s, &rw) {
                Ok(l @ Location::Nfs(_)) => Some(
                    l.mountable(crate::net::dns::host_addr)
                        .map_err(|e| anyhow::anyhow!("--state {s}: {e}"))?,
                ),
                Ok(Location::Dir(_)) => bail!("--state {s}: no such directory"),
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

/// `--image`, else the configuration's `[statelite] image`, else none (only
/// the rows for every image apply).
/// `--image`, else the node row's, else the configuration's.
fn image_name(arg: Option<&String>, row: Option<&String>, conf: &config::Config) -> String {
    arg.or(row)
        .or(conf.statelite.image.as_ref())
        .cloned()
        .unwrap_or_default()
}
