//! `init-agent statelite import-xcat`: xCAT `tabdump` CSV of the litefile,
//! litetree and statelite tables into init-agent.toml rows.
//!
//! tabdump writes a `#col,col,…` header, then one quoted CSV row per entry;
//! columns are found by header name, and rows with `disable` set are left out.

use serde::Serialize;

use crate::config::{LiteFile, LiteTree, StateliteNode, LITEFILE_OPTIONS};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("{table}: the first line must be tabdump's `#column,…` header")]
    NoHeader { table: &'static str },
    #[error("{table}: the header has no `{column}` column")]
    MissingColumn {
        table: &'static str,
        column: &'static str,
    },
    #[error("{table} line {line}: {message}")]
    Row {
        table: &'static str,
        line: u64,
        message: String,
    },
}

/// One table's rows as (line, field by column name).
struct Table {
    name: &'static str,
    columns: Vec<String>,
    rows: Vec<(u64, Vec<String>)>,
}

impl Table {
    fn parse(name: &'static str, text: &str) -> Result<Table, ImportError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut columns: Option<Vec<String>> = None;
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| ImportError::Row {
                table: name,
                line: e.position().map_or(0, |p| p.line()),
                message: e.to_string(),
            })?;
            let line = record.position().map_or(0, |p| p.line());
            let fields: Vec<String> = record.iter().map(|f| f.trim().to_string()).collect();
            if fields.iter().all(|f| f.is_empty()) {
                continue;
            }
            match &columns {
                None => {
                    let first = fields[0]
                        .strip_prefix('#')
                        .ok_or(ImportError::NoHeader { table: name })?;
                    let mut cols = vec![first.trim().to_string()];
                    cols.extend(fields[1..].iter().cloned());
                    columns = Some(cols);
                }
                // Later `#` lines are comments.
                Some(_) if fields[0].starts_with('#') => {}
                Some(cols) => {
                    if fields.len() != cols.len() {
                        return Err(ImportError::Row {
                            table: name,
                            line,
                            message: format!(
                                "{} fields, the header has {}",
                                fields.len(),
                                cols.len()
                            ),
                        });
                    }
                    rows.push((line, fields));
                }
            }
        }
        let columns = columns.ok_or(ImportError::NoHeader { table: name })?;
        Ok(Table {
            name,
            columns,
            rows,
        })
    }

    fn column(&self, column: &'static str) -> Result<usize, ImportError> {
        self.columns
            .iter()
            .position(|c| c == column)
            .ok_or(ImportError::MissingColumn {
                table: self.name,
                column,
            })
    }

    /// Rows not disabled, with accessors for the named columns.
    fn enabled(&self) -> Result<Vec<(u64, &Vec<String>)>, ImportError> {
        let disable = self.columns.iter().position(|c| c == "disable");
        Ok(self
            .rows
            .iter()
            .filter(|(_, f)| {
                !disable.is_some_and(|i| {
                    matches!(f[i].to_ascii_lowercase().as_str(), "1" | "yes" | "true")
                })
            })
            .map(|(l, f)| (*l, f))
            .collect())
    }

    fn required(&self, line: u64, value: &str, column: &str) -> Result<String, ImportError> {
        if value.is_empty() {
            return Err(ImportError::Row {
                table: self.name,
                line,
                message: format!("empty {column}"),
            });
        }
        Ok(value.to_string())
    }
}

pub fn parse_litefile(text: &str) -> Result<Vec<LiteFile>, ImportError> {
    let t = Table::parse("litefile", text)?;
    let (image, file, options) = (t.column("image")?, t.column("file")?, t.column("options")?);
    t.enabled()?
        .into_iter()
        .map(|(line, f)| {
            if !LITEFILE_OPTIONS.contains(&f[options].as_str()) {
                return Err(ImportError::Row {
                    table: t.name,
                    line,
                    message: format!("unknown option {:?}", f[options]),
                });
            }
            Ok(LiteFile {
                image: f[image].clone(),
                file: t.required(line, &f[file], "file")?,
                options: f[options].clone(),
            })
        })
        .collect()
}

pub fn parse_litetree(text: &str) -> Result<Vec<LiteTree>, ImportError> {
    let t = Table::parse("litetree", text)?;
    let (priority, image, directory) = (
        t.column("priority")?,
        t.column("image")?,
        t.column("directory")?,
    );
    let mntopts = t.columns.iter().position(|c| c == "mntopts");
    t.enabled()?
        .into_iter()
        .map(|(line, f)| {
            let p: f64 = f[priority]
                .parse()
                .ok()
                .filter(|p: &f64| p.is_finite())
                .ok_or_else(|| ImportError::Row {
                    table: t.name,
                    line,
                    message: format!("priority {:?} is not a number", f[priority]),
                })?;
            Ok(LiteTree {
                priority: p,
                image: f[image].clone(),
                directory: t.required(line, &f[directory], "directory")?,
                mntopts: mntopts.map(|i| f[i].clone()).filter(|o| !o.is_empty()),
            })
        })
        .collect()
}

pub fn parse_statelite(text: &str) -> Result<Vec<StateliteNode>, ImportError> {
    let t = Table::parse("statelite", text)?;
    let (node, image, statemnt) = (t.column("node")?, t.column("image")?, t.column("statemnt")?);
    let mntopts = t.columns.iter().position(|c| c == "mntopts");
    t.enabled()?
        .into_iter()
        .map(|(line, f)| {
            Ok(StateliteNode {
                node: t.required(line, &f[node], "node")?,
                image: f[image].clone(),
                statemnt: f[statemnt].clone(),
                mntopts: mntopts.map(|i| f[i].clone()).filter(|o| !o.is_empty()),
            })
        })
        .collect()
}

#[derive(Serialize)]
struct Doc {
    statelite: Tables,
}

#[derive(Serialize)]
struct Tables {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    litefile: Vec<LiteFile>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    litetree: Vec<LiteTree>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    node: Vec<StateliteNode>,
}

/// The `[statelite]` rows of init-agent.toml for these tables.
pub fn import_xcat(
    litefile: &str,
    litetree: Option<&str>,
    statelite: Option<&str>,
) -> Result<String, ImportError> {
    let doc = Doc {
        statelite: Tables {
            litefile: parse_litefile(litefile)?,
            litetree: litetree
                .map(parse_litetree)
                .transpose()?
                .unwrap_or_default(),
            node: statelite
                .map(parse_statelite)
                .transpose()?
                .unwrap_or_default(),
        },
    };
    // Plain strings, numbers and lists always serialise.
    let body = toml::to_string(&doc).unwrap_or_default();
    Ok(format!(
        "# Imported from xCAT tabdump by init-agent statelite import-xcat\n{body}"
    ))
}

#[cfg(test)]
mod tests;
