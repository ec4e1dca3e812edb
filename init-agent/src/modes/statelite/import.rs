//! `init-agent statelite import-xcat`: xCAT `tabdump` CSV of the litefile,
//! litetree and statelite tables into init-agent.toml rows, and of the
//! nodelist, noderes, nodetype and nodepos tables into `[[node]]` and
//! `[[group]]` rows (names, groups, the attributes litetree `$table.column`
//! variables read).
//!
//! tabdump writes a `#col,col,…` header, then one CSV row per entry with every
//! non-empty value double-quoted. Columns are found by header name (xCAT has
//! added columns over the years, e.g. statelite.mntopts), and rows with
//! `disable` set are left out, as xCAT itself ignores them.
//! [`import_xcat`] then checks its output with the parser `check-config` uses,
//! so whatever it prints, the agent accepts.

use csv::{Position, StringRecord};
use serde::Serialize;

use crate::config::{
    self, Attributes, Group, LiteFile, LiteTree, Node, StateliteNode, LITEFILE_OPTIONS, XCAT_TABLES,
};

/// What is wrong, in which table, on which 1-based line of its tabdump text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The first non-blank line is not `#column,…` (or there is none).
    #[error("{table} line {line}: expected tabdump's `#column,…` header line")]
    NoHeader { table: &'static str, line: u64 },
    #[error("{table} line {line}: the header has no `{column}` column")]
    MissingColumn {
        table: &'static str,
        line: u64,
        column: &'static str,
    },
    #[error("{table} line {line}: {found} fields, the header names {expected}")]
    FieldCount {
        table: &'static str,
        line: u64,
        found: usize,
        expected: usize,
    },
    #[error("{table} line {line}: `{column}` is empty")]
    EmptyField {
        table: &'static str,
        line: u64,
        column: &'static str,
    },
    /// A newline or other control character in a value: xCAT's rc.statelite
    /// reads these tables line by line, so such a value is a damaged dump.
    #[error("{table} line {line}: `{column}` contains a control character")]
    ControlChar {
        table: &'static str,
        line: u64,
        column: &'static str,
    },
    #[error("{table} line {line}: priority {value:?} is not a number like 1 or 1.5")]
    BadPriority {
        table: &'static str,
        line: u64,
        value: String,
    },
    #[error(
        "{table} line {line}: unknown option {value:?} (empty or one of: {})",
        LITEFILE_OPTIONS.iter().filter(|o| !o.is_empty()).copied().collect::<Vec<_>>().join(", ")
    )]
    UnknownOption {
        table: &'static str,
        line: u64,
        value: String,
    },
    /// The CSV reader's own error (in practice unreachable from a `&str`:
    /// the reader is flexible and only fails on invalid UTF-8).
    #[error("{table} line {line}: {message}")]
    Csv {
        table: &'static str,
        line: u64,
        message: String,
    },
    /// The row parses but init-agent.toml would reject it (a relative or
    /// doubly listed file, a child under a parent with another option, an
    /// empty statemnt, a node named twice…).
    #[error("{table} line {line}: {message}")]
    Invalid {
        table: &'static str,
        line: u64,
        message: String,
    },
    /// Rendering or re-reading failed in a way no row can be blamed for; plain
    /// strings and numbers always serialise, so this is a bug, reported rather
    /// than printed as an empty import.
    #[error("rendering the imported rows: {message}")]
    Render { message: String },
}

/// `true` for the `disable` values xCAT treats as set.
fn disabled(value: &str) -> bool {
    matches!(value.to_ascii_lowercase().as_str(), "1" | "yes" | "true")
}

/// A decimal priority (`1`, `1.5`, `-2`); Rust's float syntax would also take
/// `inf`, `NaN` and `1e3`, which no xCAT table holds.
fn priority(value: &str) -> Option<f64> {
    let unsigned = value.strip_prefix('-').unwrap_or(value);
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let decimal = !(int.is_empty() && frac.is_empty())
        && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit());
    if !decimal {
        return None;
    }
    // Hundreds of digits overflow to infinity, which TOML cannot round-trip as a priority.
    value.parse::<f64>().ok().filter(|p| p.is_finite())
}

fn builder() -> csv::ReaderBuilder {
    let mut b = csv::ReaderBuilder::new();
    // The `#` header is not a plain CSV header, and field counts are checked
    // here so the error names the line.
    b.has_headers(false).flexible(true).trim(csv::Trim::All);
    b
}

/// One row that is not disabled, with its line in the tabdump text.
struct Row {
    line: u64,
    fields: StringRecord,
}

/// One table's header and the text after it.
struct Table<'a> {
    name: &'static str,
    /// 1-based line of the header; body lines count on from it.
    header_line: u64,
    columns: Vec<String>,
    disable: Option<usize>,
    body: &'a str,
}

impl<'a> Table<'a> {
    fn open(name: &'static str, text: &'a str) -> Result<Table<'a>, ImportError> {
        // Files saved by Windows editors may start with a byte-order mark.
        let mut rest = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut line = 0;
        loop {
            line += 1;
            let (this, next) = rest.split_once('\n').unwrap_or((rest, ""));
            if !this.trim().is_empty() {
                return Table::header(name, line, this, next);
            }
            if next.is_empty() {
                // Nothing but blank lines: the header belongs on line 1.
                return Err(ImportError::NoHeader {
                    table: name,
                    line: 1,
                });
            }
            rest = next;
        }
    }

    fn header(
        name: &'static str,
        line: u64,
        text: &str,
        body: &'a str,
    ) -> Result<Table<'a>, ImportError> {
        let names = text
            .trim_start()
            .strip_prefix('#')
            .ok_or(ImportError::NoHeader { table: name, line })?;
        let columns: Vec<String> = match builder().from_reader(names.as_bytes()).records().next() {
            Some(Ok(r)) => r.iter().map(str::to_ascii_lowercase).collect(),
            Some(Err(e)) => {
                return Err(ImportError::Csv {
                    table: name,
                    line,
                    message: e.to_string(),
                })
            }
            // A bare `#`: no columns, reported as the first one missing.
            None => Vec::new(),
        };
        Ok(Table {
            name,
            header_line: line,
            disable: columns.iter().position(|c| c == "disable"),
            columns,
            body,
        })
    }

    fn column(&self, column: &'static str) -> Result<usize, ImportError> {
        self.columns
            .iter()
            .position(|c| c == column)
            .ok_or(ImportError::MissingColumn {
                table: self.name,
                line: self.header_line,
                column,
            })
    }

    fn columns<const N: usize>(&self, names: [&'static str; N]) -> Result<[usize; N], ImportError> {
        let mut found = [0; N];
        for (slot, name) in found.iter_mut().zip(names) {
            *slot = self.column(name)?;
        }
        Ok(found)
    }

    fn optional(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == column)
    }

    /// Enabled rows in file order, each error at its row, so the first error
    /// reported is the first in the file.
    fn rows<'s>(&'s self) -> impl Iterator<Item = Result<Row, ImportError>> + 's {
        // Only lines that start with `#` are comments: a quoted "#…" value
        // or a `#` inside a multi-line quoted field is data.
        let body: &'s [u8] = self.body.as_bytes();
        builder()
            .comment(Some(b'#'))
            .from_reader(body)
            .into_records()
            .filter_map(move |r| self.row(r).transpose())
    }

    fn row(&self, record: csv::Result<StringRecord>) -> Result<Option<Row>, ImportError> {
        let fields = record.map_err(|e| ImportError::Csv {
            table: self.name,
            line: self.line(e.position()),
            message: e.to_string(),
        })?;
        let line = self.line(fields.position());
        // A line of spaces reads as one empty field: blank, not a short row.
        if fields.len() == 1 && fields.get(0) == Some("") {
            return Ok(None);
        }
        if fields.len() != self.columns.len() {
            return Err(ImportError::FieldCount {
                table: self.name,
                line,
                found: fields.len(),
                expected: self.columns.len(),
            });
        }
        if self
            .disable
            .and_then(|i| fields.get(i))
            .is_some_and(disabled)
        {
            return Ok(None);
        }
        Ok(Some(Row { line, fields }))
    }

    /// The line a record starts on. The reader stamps a record with where it
    /// began looking, before the blank and comment lines it skipped, so skip
    /// them again here the way csv-core does (terminator bytes, and `#` up to
    /// `\n`).
    fn line(&self, at: Option<&Position>) -> u64 {
        let Some(at) = at else {
            return self.header_line + 1;
        };
        let mut line = at.line();
        let start = usize::try_from(at.byte()).unwrap_or(usize::MAX);
        let mut rest = self.body.as_bytes().get(start..).unwrap_or_default();
        loop {
            match rest.first() {
                Some(b'\n') => {
                    line += 1;
                    rest = &rest[1..];
                }
                Some(b'\r') => rest = &rest[1..],
                Some(b'#') => match rest.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        line += 1;
                        rest = &rest[end + 1..];
                    }
                    None => break,
                },
                _ => break,
            }
        }
        self.header_line + line
    }

    /// The value of an imported column: control characters refused.
    fn value(&self, row: &Row, i: usize, column: &'static str) -> Result<String, ImportError> {
        let v = row.fields.get(i).unwrap_or_default();
        if v.chars().any(char::is_control) {
            return Err(ImportError::ControlChar {
                table: self.name,
                line: row.line,
                column,
            });
        }
        Ok(v.to_string())
    }

    /// As [`Table::value`], and not empty.
    fn required(&self, row: &Row, i: usize, column: &'static str) -> Result<String, ImportError> {
        let v = self.value(row, i, column)?;
        if v.is_empty() {
            return Err(ImportError::EmptyField {
                table: self.name,
                line: row.line,
                column,
            });
        }
        Ok(v)
    }

    /// An optional column's value; absent column and empty value are `None`.
    fn maybe(
        &self,
        row: &Row,
        i: Option<usize>,
        column: &'static str,
    ) -> Result<Option<String>, ImportError> {
        let Some(i) = i else { return Ok(None) };
        Ok(Some(self.value(row, i, column)?).filter(|v| !v.is_empty()))
    }
}

/// Rows with their tabdump lines, so later checks can name the line.
type Lined<T> = Vec<(u64, T)>;

fn litefile_rows(text: &str) -> Result<Lined<LiteFile>, ImportError> {
    let t = Table::open("litefile", text)?;
    let [image, file, options] = t.columns(["image", "file", "options"])?;
    t.rows()
        .map(|row| {
            let row = row?;
            let entry = LiteFile {
                image: t.value(&row, image, "image")?,
                file: t.required(&row, file, "file")?,
                options: t.value(&row, options, "options")?,
            };
            if !LITEFILE_OPTIONS.contains(&entry.options.as_str()) {
                return Err(ImportError::UnknownOption {
                    table: t.name,
                    line: row.line,
                    value: entry.options,
                });
            }
            Ok((row.line, entry))
        })
        .collect()
}

fn litetree_rows(text: &str) -> Result<Lined<LiteTree>, ImportError> {
    let t = Table::open("litetree", text)?;
    let [prio, image, directory] = t.columns(["priority", "image", "directory"])?;
    // xCAT's own litetree has no mntopts column; ours is an extension.
    let mntopts = t.optional("mntopts");
    t.rows()
        .map(|row| {
            let row = row?;
            let value = row.fields.get(prio).unwrap_or_default();
            let priority = priority(value).ok_or_else(|| ImportError::BadPriority {
                table: t.name,
                line: row.line,
                value: value.to_string(),
            })?;
            let entry = LiteTree {
                priority,
                image: t.value(&row, image, "image")?,
                directory: t.required(&row, directory, "directory")?,
                mntopts: t.maybe(&row, mntopts, "mntopts")?,
            };
            Ok((row.line, entry))
        })
        .collect()
}

fn statelite_rows(text: &str) -> Result<Lined<StateliteNode>, ImportError> {
    let t = Table::open("statelite", text)?;
    let [node, image, statemnt] = t.columns(["node", "image", "statemnt"])?;
    // Older xCAT releases dump the statelite table without mntopts.
    let mntopts = t.optional("mntopts");
    t.rows()
        .map(|row| {
            let row = row?;
            let entry = StateliteNode {
                node: t.required(&row, node, "node")?,
                image: t.value(&row, image, "image")?,
                statemnt: t.value(&row, statemnt, "statemnt")?,
                mntopts: t.maybe(&row, mntopts, "mntopts")?,
            };
            Ok((row.line, entry))
        })
        .collect()
}

/// `tabdump nodelist`: each node and its groups (xCAT's `groups` column,
/// comma-separated).
fn nodelist_rows(text: &str) -> Result<Lined<(String, Vec<String>)>, ImportError> {
    let t = Table::open("nodelist", text)?;
    let [node, groups] = t.columns(["node", "groups"])?;
    t.rows()
        .map(|row| {
            let row = row?;
            let name = t.required(&row, node, "node")?;
            let groups = t
                .value(&row, groups, "groups")?
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(String::from)
                .collect();
            Ok((row.line, (name, groups)))
        })
        .collect()
}

/// One of xCAT's per-node tables ([`XCAT_TABLES`]): each row's node or
/// group and its non-empty columns. Columns the table has that litetree
/// variables cannot name (`comments`, newer additions) are left out.
fn attribute_rows(
    table: &'static str,
    text: &str,
) -> Result<Lined<(String, Attributes)>, ImportError> {
    let t = Table::open(table, text)?;
    let [node] = t.columns(["node"])?;
    let present: Vec<(&'static str, usize)> = XCAT_TABLES
        .iter()
        .filter(|(name, _)| *name == table)
        .flat_map(|(_, columns)| columns.iter())
        .filter_map(|c| t.optional(c).map(|i| (*c, i)))
        .collect();
    t.rows()
        .map(|row| {
            let row = row?;
            let name = t.required(&row, node, "node")?;
            let mut values = Attributes::new();
            for &(column, i) in &present {
                if let Some(v) = t.maybe(&row, Some(i), column)? {
                    values.insert(column.to_string(), v);
                }
            }
            Ok((row.line, (name, values)))
        })
        .collect()
}

/// The tabdump texts of xCAT's node tables, each optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeTables<'a> {
    /// Node names and groups: a name listed as some node's group is a group.
    pub nodelist: Option<&'a str>,
    pub noderes: Option<&'a str>,
    pub nodetype: Option<&'a str>,
    pub nodepos: Option<&'a str>,
}

/// A node or group as the tables describe it, before it becomes a row.
struct Named {
    /// The table and line that named it first, for errors in its row.
    table: &'static str,
    line: u64,
    name: String,
    groups: Vec<String>,
    /// In [`XCAT_TABLES`] order.
    tables: [Attributes; 3],
}

/// The nodes and the groups of `t`, each in first-seen order.
fn node_rows(t: &NodeTables) -> Result<(Vec<Named>, Vec<Named>), ImportError> {
    let listed = t
        .nodelist
        .map(nodelist_rows)
        .transpose()?
        .unwrap_or_default();
    let group_names: Vec<String> = listed
        .iter()
        .flat_map(|(_, (_, g))| g.iter().cloned())
        .collect();
    let mut nodes: Vec<Named> = listed
        .into_iter()
        .map(|(line, (name, groups))| Named {
            table: "nodelist",
            line,
            name,
            groups,
            tables: Default::default(),
        })
        .collect();
    let mut groups: Vec<Named> = Vec::new();
    for (k, (table, text)) in [t.noderes, t.nodetype, t.nodepos]
        .into_iter()
        .enumerate()
        .filter_map(|(k, text)| Some((k, (XCAT_TABLES.get(k)?.0, text?))))
    {
        for (line, (name, values)) in attribute_rows(table, text)? {
            let rows = if group_names.contains(&name) {
                &mut groups
            } else {
                &mut nodes
            };
            let i = match rows.iter().position(|r| r.name == name) {
                Some(i) => i,
                None => {
                    rows.push(Named {
                        table,
                        line,
                        name,
                        groups: Vec::new(),
                        tables: Default::default(),
                    });
                    rows.len() - 1
                }
            };
            let Some(slot) = rows.get_mut(i).and_then(|r| r.tables.get_mut(k)) else {
                continue;
            };
            if !slot.is_empty() {
                return Err(ImportError::Invalid {
                    table,
                    line,
                    message: "an earlier row of this table has the same node".into(),
                });
            }
            *slot = values;
        }
    }
    Ok((nodes, groups))
}

fn strip<T>(rows: Lined<T>) -> Vec<T> {
    rows.into_iter().map(|(_, r)| r).collect()
}

/// The enabled rows of a `tabdump litefile`.
pub fn parse_litefile(text: &str) -> Result<Vec<LiteFile>, ImportError> {
    litefile_rows(text).map(strip)
}

/// The enabled rows of a `tabdump litetree`.
pub fn parse_litetree(text: &str) -> Result<Vec<LiteTree>, ImportError> {
    litetree_rows(text).map(strip)
}

/// The enabled rows of a `tabdump statelite`.
pub fn parse_statelite(text: &str) -> Result<Vec<StateliteNode>, ImportError> {
    statelite_rows(text).map(strip)
}

#[derive(Serialize)]
struct Doc {
    statelite: Tables,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    node: Vec<Node>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    group: Vec<Group>,
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

const COMMENT: &str = "# Imported from xCAT tabdump by init-agent statelite import-xcat\n";

/// The header each row starts with in the output, in output order.
const SECTIONS: [&str; 5] = [
    "[[statelite.litefile]]",
    "[[statelite.litetree]]",
    "[[statelite.node]]",
    "[[node]]",
    "[[group]]",
];

/// The tabdump (table, line) each output row of a section came from.
type Origins = [Vec<(&'static str, u64)>; 5];

fn from(table: &'static str, rows: &Lined<impl Sized>) -> Vec<(&'static str, u64)> {
    rows.iter().map(|(l, _)| (table, *l)).collect()
}

fn row_of(n: &Named) -> (&'static str, u64) {
    (n.table, n.line)
}

/// Parses each given table's tabdump text and renders the TOML rows: the
/// `[statelite]` tables (`[[statelite.litefile]]`, `[[statelite.litetree]]`,
/// `[[statelite.node]]`), then `[[node]]` and `[[group]]` from the node tables.
///
/// The first problem is reported, tables in that order and rows by line; the
/// output is known to load with [`config::parse`] into the same rows.
pub fn import_xcat(
    litefile: &str,
    litetree: Option<&str>,
    statelite: Option<&str>,
    node_tables: &NodeTables,
) -> Result<String, ImportError> {
    let litefile = litefile_rows(litefile)?;
    let litetree = litetree.map(litetree_rows).transpose()?.unwrap_or_default();
    let node = statelite
        .map(statelite_rows)
        .transpose()?
        .unwrap_or_default();
    let (nodes, groups) = node_rows(node_tables)?;
    let origins: Origins = [
        from("litefile", &litefile),
        from("litetree", &litetree),
        from("statelite", &node),
        nodes.iter().map(row_of).collect(),
        groups.iter().map(row_of).collect(),
    ];
    let doc = Doc {
        statelite: Tables {
            litefile: strip(litefile),
            litetree: strip(litetree),
            node: strip(node),
        },
        node: nodes
            .into_iter()
            .map(|n| {
                let [noderes, nodetype, nodepos] = n.tables;
                Node {
                    name: Some(n.name),
                    groups: n.groups,
                    noderes,
                    nodetype,
                    nodepos,
                    ..Node::default()
                }
            })
            .collect(),
        group: groups
            .into_iter()
            .map(|g| {
                let [noderes, nodetype, nodepos] = g.tables;
                Group {
                    name: g.name,
                    noderes,
                    nodetype,
                    nodepos,
                }
            })
            .collect(),
    };
    let body = toml::to_string(&doc).map_err(|e| ImportError::Render {
        message: e.to_string(),
    })?;
    let text = format!("{COMMENT}{body}");
    match config::parse(&text) {
        Ok(_) => Ok(text),
        Err(errors) => Err(errors
            .iter()
            .map(|e| blame(&text, &origins, e))
            .min_by_key(|(order, _)| *order)
            .map_or_else(
                || ImportError::Render {
                    message: "rejected without a reason".into(),
                },
                |(_, e)| e,
            )),
    }
}

/// The tabdump row a config error in our output points into, and its place in
/// report order. Exact because every value is one line (control characters
/// are refused), so only row headers start with `[`; a `[node.noderes]`-style
/// header continues the row above it.
fn blame(text: &str, origins: &Origins, e: &config::ConfigError) -> ((usize, u64), ImportError) {
    let mut seen = [0usize; 5];
    let mut at = None;
    for l in text.lines().take(e.line) {
        let continues = l.starts_with("[node.") || l.starts_with("[group.");
        if l.starts_with('[') && !continues {
            at = SECTIONS.iter().position(|s| *s == l.trim()).map(|t| {
                seen[t] += 1;
                (t, seen[t] - 1)
            });
        }
    }
    match at.and_then(|(t, i)| Some((t, *origins[t].get(i)?))) {
        Some((t, (table, line))) => (
            (t, line),
            ImportError::Invalid {
                table,
                line,
                message: e.message.clone(),
            },
        ),
        None => (
            (SECTIONS.len(), 0),
            ImportError::Render {
                message: e.to_string(),
            },
        ),
    }
}

#[cfg(test)]
mod tests;
