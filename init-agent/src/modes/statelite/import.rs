//! `init-agent statelite import-xcat`: xCAT `tabdump` CSV of the litefile,
//! litetree and statelite tables into init-agent.toml rows.
//!
//! tabdump writes a `#col,col,…` header, then one CSV row per entry with every
//! non-empty value double-quoted. Columns are found by header name (xCAT has
//! added columns over the years, e.g. statelite.mntopts), and rows with
//! `disable` set are left out, as xCAT itself ignores them.
//! [`import_xcat`] then checks its output with the parser `check-config` uses,
//! so whatever it prints, the agent accepts.

use csv::{Position, StringRecord};
use serde::Serialize;

use crate::config::{self, LiteFile, LiteTree, StateliteNode, LITEFILE_OPTIONS};

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

/// Table names in error messages, in output order.
const TABLES: [&str; 3] = ["litefile", "litetree", "statelite"];
/// The header each row of those tables starts with in the output.
const SECTIONS: [&str; 3] = [
    "[[statelite.litefile]]",
    "[[statelite.litetree]]",
    "[[statelite.node]]",
];

/// Parses each given table's tabdump text and renders the `[statelite]` TOML rows
/// (`[[statelite.litefile]]`, `[[statelite.litetree]]`, `[[statelite.node]]`).
///
/// The first problem is reported, tables in that order and rows by line; the
/// output is known to load with [`config::parse`] into the same rows.
pub fn import_xcat(
    litefile: &str,
    litetree: Option<&str>,
    statelite: Option<&str>,
) -> Result<String, ImportError> {
    let litefile = litefile_rows(litefile)?;
    let litetree = litetree.map(litetree_rows).transpose()?.unwrap_or_default();
    let node = statelite
        .map(statelite_rows)
        .transpose()?
        .unwrap_or_default();
    let lines: [Vec<u64>; 3] = [
        litefile.iter().map(|(l, _)| *l).collect(),
        litetree.iter().map(|(l, _)| *l).collect(),
        node.iter().map(|(l, _)| *l).collect(),
    ];
    let doc = Doc {
        statelite: Tables {
            litefile: strip(litefile),
            litetree: strip(litetree),
            node: strip(node),
        },
    };
    let body = toml::to_string(&doc).map_err(|e| ImportError::Render {
        message: e.to_string(),
    })?;
    let text = format!("{COMMENT}{body}");
    match config::parse(&text) {
        Ok(_) => Ok(text),
        Err(errors) => Err(errors
            .iter()
            .map(|e| blame(&text, &lines, e))
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
/// are refused), so only row headers start with `[`.
fn blame(
    text: &str,
    lines: &[Vec<u64>; 3],
    e: &config::ConfigError,
) -> ((usize, u64), ImportError) {
    let mut seen = [0usize; 3];
    let mut at = None;
    for l in text.lines().take(e.line) {
        if l.starts_with('[') {
            at = SECTIONS.iter().position(|s| *s == l.trim()).map(|t| {
                seen[t] += 1;
                (t, seen[t] - 1)
            });
        }
    }
    match at.and_then(|(t, i)| Some((t, *lines[t].get(i)?))) {
        Some((t, line)) => (
            (t, line),
            ImportError::Invalid {
                table: TABLES[t],
                line,
                message: e.message.clone(),
            },
        ),
        None => (
            (TABLES.len(), 0),
            ImportError::Render {
                message: e.to_string(),
            },
        ),
    }
}

#[cfg(test)]
mod tests;
