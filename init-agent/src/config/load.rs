//! Text → [`Config`], reporting every error with its line and column.
//!
//! serde stops at the first error, so a failing document is deserialized again and
//! again, each time without the value the previous error pointed at, until it
//! passes: every type error is found, with the span of the original text. Semantic
//! checks run once the types are right.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::validate::{validate, Seg};
use super::{Config, Trust};
use crate::cmdline::Mode;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid {
        path: String,
        errors: Vec<ConfigError>,
    },
}

/// Reads and checks a configuration file.
pub fn load_file(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text).map_err(|errors| LoadError::Invalid {
        path: path.display().to_string(),
        errors,
    })
}

/// Parses and checks configuration text.
pub fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    let at = |span: Option<Range<usize>>, message: String| {
        let (line, column) = line_col(text, span.map_or(0, |s| s.start));
        ConfigError {
            line,
            column,
            message,
        }
    };
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        return Err(syntax
            .into_iter()
            .map(|e| at(e.span(), e.message().to_string()))
            .collect());
    }
    let root = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    let config = match deserialize(&root) {
        Ok(c) => c,
        Err(first) => {
            let mut found = type_errors(root.clone(), first);
            found.sort_by_key(|(span, _)| span.as_ref().map_or(0, |s| s.start));
            found.dedup();
            return Err(found.into_iter().map(|(s, m)| at(s, m)).collect());
        }
    };
    let problems = validate(&config);
    if problems.is_empty() {
        return Ok(config);
    }
    Err(problems
        .into_iter()
        .map(|p| at(Some(span_of(&root, &p.path)), p.message))
        .collect())
}

/// The cluster configuration read from the standard root, merged over the
/// initramfs's (`embedded`): each section the cluster file has replaces the
/// embedded one whole (a `[[node]]` list replaces the list), the others stay;
/// `[net]`, `[source]` and `[hosts]` (how the node reaches the master)
/// cannot come from it, nor `[trust]` (what the node accepts from it).
/// Checked like a configuration file, then checked merged. Returns the
/// merged configuration and the sections taken from the cluster file.
pub fn parse_cluster(
    text: &str,
    embedded: &Config,
) -> Result<(Config, Vec<String>), Vec<ConfigError>> {
    let cluster = parse(text)?;
    let (root, _) = DeTable::parse_recoverable(text);
    let root = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    let DeValue::Table(table) = root.get_ref() else {
        return Ok((embedded.clone(), Vec::new()));
    };
    let at = |span: Range<usize>, message: String| {
        let (line, column) = line_col(text, span.start);
        ConfigError {
            line,
            column,
            message,
        }
    };
    let mut merged = embedded.clone();
    let mut taken = Vec::new();
    let mut errors = Vec::new();
    for (key, value) in table.iter() {
        let key: &str = key.get_ref();
        match key {
            "boot" => merged.boot = cluster.boot.clone(),
            "sync" => merged.sync = cluster.sync.clone(),
            "disk" => merged.disk = cluster.disk.clone(),
            "statelite" => merged.statelite = cluster.statelite.clone(),
            "cdsl" => merged.cdsl = cluster.cdsl.clone(),
            "node" => merged.node = cluster.node.clone(),
            "group" => merged.group = cluster.group.clone(),
            "hooks" => merged.hooks = cluster.hooks.clone(),
            "trust" => {
                errors.push(at(
                    value.span(),
                    "[trust] cannot come from the cluster file: the master must not choose what the node trusts (set it in the initramfs's configuration)".into(),
                ));
                continue;
            }
            // deny_unknown_fields left only net, source and hosts here.
            _ => {
                errors.push(at(
                    value.span(),
                    format!("[{key}] cannot come from the cluster file: the node needs it to reach the master (set it in the initramfs's configuration)"),
                ));
                continue;
            }
        }
        taken.push(key.to_string());
    }
    if embedded.trust.required() {
        errors.extend(live_modes(&cluster).into_iter().map(|(path, mode)| {
            at(
                span_of(&root, &path),
                format!("mode {mode} cannot come from the cluster file of a node with [trust] keys: it mounts the standard root live, unverified (set it in the initramfs's configuration)"),
            )
        }));
    }
    // Sections that each pass alone may not together (a node row naming a
    // group only the other file has).
    errors.extend(validate(&merged).into_iter().map(|p| {
        at(
            span_of(&root, &p.path),
            format!("merged with the initramfs's configuration: {}", p.message),
        )
    }));
    if errors.is_empty() {
        Ok((merged, taken))
    } else {
        Err(errors)
    }
}

/// The modes a cluster file names that mount the standard root live: with
/// them a master could take a node that verifies what it syncs off its
/// signed roots.
fn live_modes(cluster: &Config) -> Vec<(Vec<Seg>, Mode)> {
    let live = |m: Option<Mode>| m.filter(|m| !matches!(m, Mode::Sync | Mode::Local));
    let boot = live(cluster.boot.mode).map(|m| (vec![Seg::Key("boot"), Seg::Key("mode")], m));
    let nodes = cluster.node.iter().enumerate().filter_map(|(i, n)| {
        live(n.mode).map(|m| (vec![Seg::Key("node"), Seg::Index(i), Seg::Key("mode")], m))
    });
    boot.into_iter().chain(nodes).collect()
}

/// The `[trust]` of a configuration that is otherwise unusable, so that
/// keys are never lost to a mistake elsewhere in the file (the node would
/// then sync unverified). Ok(None): the text has no `[trust]`; Err: it has
/// one that cannot be read (the file's syntax broken, or the table itself).
pub fn salvage_trust(text: &str) -> Result<Option<Trust>, String> {
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // What a broken document holds cannot be told for sure: a line that
        // opens the table is enough to refuse.
        let names_trust = text.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with('[') && l[1..].trim_start().starts_with("trust")
        });
        return if names_trust {
            Err("it has a [trust] table, unreadable in a file whose syntax is broken".into())
        } else {
            Ok(None)
        };
    }
    let Some(value) = root.get_ref().get("trust") else {
        return Ok(None);
    };
    Trust::deserialize(ValueDeserializer::from(value.clone()))
        .map(Some)
        .map_err(|e| format!("its [trust] table: {}", e.message()))
}

fn deserialize(doc: &Spanned<DeValue<'_>>) -> Result<Config, toml::de::Error> {
    Config::deserialize(ValueDeserializer::from(doc.clone()))
}

/// Every type error of `doc`, found by removing what each error points at and
/// deserializing again.
fn type_errors(
    mut doc: Spanned<DeValue<'_>>,
    first: toml::de::Error,
) -> Vec<(Option<Range<usize>>, String)> {
    let mut found = Vec::new();
    // Tables an entry was removed from: their "missing field" errors are our doing.
    let mut pruned: Vec<Range<usize>> = Vec::new();
    let mut next = Some(first);
    // Each round removes one entry, so the number of rounds is bounded by the text.
    while let Some(e) = next.take() {
        let Some(span) = e.span() else {
            found.push((None, e.message().to_string()));
            break;
        };
        if !(e.message().starts_with("missing field") && pruned.contains(&span)) {
            found.push((Some(span.clone()), e.message().to_string()));
        }
        match remove_at(&mut doc, &span) {
            Some(parent) => pruned.push(parent),
            None => break,
        }
        next = deserialize(&doc).err();
    }
    found
}

/// Removes the innermost entry (table key/value or array element) that contains
/// `span`; returns the span of the container it was removed from. Searches depth
/// first: the span of a `[header]` table covers its header, not its contents, and
/// an array of tables shares its span with its first element.
fn remove_at(v: &mut Spanned<DeValue<'_>>, span: &Range<usize>) -> Option<Range<usize>> {
    let inside = |outer: Range<usize>| outer.start <= span.start && span.end <= outer.end;
    let here = v.span();
    match v.get_mut() {
        DeValue::Table(t) => {
            for (_, child) in t.iter_mut() {
                if is_container(child.get_ref()) {
                    if let Some(p) = remove_at(child, span) {
                        return Some(p);
                    }
                }
            }
            let key = t
                .iter()
                .find(|(k, val)| inside(val.span()) || inside(k.span()))
                .map(|(k, _)| k.get_ref().clone())?;
            t.remove(key.as_ref());
        }
        DeValue::Array(a) => {
            for child in a.as_mut() {
                if is_container(child.get_ref()) {
                    if let Some(p) = remove_at(child, span) {
                        return Some(p);
                    }
                }
            }
            let i = a.iter().position(|e| inside(e.span()))?;
            // DeArray has no remove(); rebuild it without element i.
            *a = a
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, e)| e.clone())
                .collect();
        }
        _ => return None,
    }
    Some(here)
}

fn is_container(v: &DeValue<'_>) -> bool {
    matches!(v, DeValue::Table(_) | DeValue::Array(_))
}

/// The span of the deepest existing value along a semantic problem's path.
fn span_of(root: &Spanned<DeValue<'_>>, path: &[Seg]) -> Range<usize> {
    let mut here = root;
    for seg in path {
        let next = match (seg, here.get_ref()) {
            (Seg::Key(k), DeValue::Table(t)) => {
                t.iter().find(|(key, _)| key.get_ref() == k).map(|(_, v)| v)
            }
            (Seg::Name(k), DeValue::Table(t)) => t
                .iter()
                .find(|(key, _)| key.get_ref() == k.as_str())
                .map(|(_, v)| v),
            (Seg::Index(i), DeValue::Array(a)) => a.get(*i),
            _ => None,
        };
        match next {
            Some(next) => here = next,
            None => break,
        }
    }
    here.span()
}

/// 1-based line and character column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}
