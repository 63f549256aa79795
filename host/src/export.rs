//! `flowhost table export` / `import`: CSV (the `csv` crate, header = schema columns) and
//! JSON lines. Export streams rows in insertion order; import is all-or-nothing.
//!
//! CSV cannot tell an empty text from null: an empty cell imports as `""` in a text column
//! and as null in any other. JSON lines copy tables exactly.
//!
//! The format is `--format`, else the file's extension (`.csv`; `.jsonl`, `.ndjson`,
//! `.json`), else JSON lines ([`Format::pick`]); import reads standard input for `-`.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use serde_json::{Map, Value};

use crate::schema::ColumnType;
use crate::store::{ColumnSearch, RowWindow, Store};

/// A file format of export and import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// CSV with the schema's columns as header; an empty cell is "" in a text column and null
    /// in any other (CSV cannot tell them apart).
    Csv,
    /// One JSON object per line: an exact copy, nulls included.
    Jsonl,
}

impl Format {
    /// The format a file's extension names (`None`: no extension, or an unknown one).
    pub fn from_extension(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            _ => None,
        }
    }

    /// `given`, else the extension of `file`, else JSON lines.
    pub fn pick(given: Option<Format>, file: Option<&Path>) -> Format {
        given
            .or_else(|| file.and_then(Format::from_extension))
            .unwrap_or(Format::Jsonl)
    }
}

/// Writes every row of `table` to `out` (standard output when `None`).
pub fn export(
    store: &Store,
    table: &str,
    format: Format,
    out: Option<&Path>,
) -> anyhow::Result<u64> {
    let csv = format == Format::Csv;
    store
        .schemas()
        .get(table)
        .with_context(|| format!("no table `{table}`"))?;
    let sink: Box<dyn Write> = match out {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("{}: cannot create", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let sink = std::io::BufWriter::new(sink);
    let bar = out
        .and_then(|_| store.row_count(table).ok())
        .and_then(|n| crate::progress::rows_bar(n, table));
    let n = if csv {
        write_csv(store, table, None, sink, || {
            if let Some(b) = &bar {
                b.inc(1);
            }
        })?
    } else {
        let mut n = 0u64;
        let mut w = sink;
        store.export_rows(table, |row| -> anyhow::Result<bool> {
            serde_json::to_writer(&mut w, &row)?;
            w.write_all(b"\n")?;
            n += 1;
            if let Some(b) = &bar {
                b.inc(1);
            }
            Ok(true)
        })?;
        w.flush()?;
        n
    };
    if let Some(b) = bar {
        b.finish();
    }
    Ok(n)
}

/// Writes the rows of `table` that `search` matches (every row without one) as CSV to `out`,
/// header first, calling `on_row` after each row: what `export --format csv` writes, and the
/// web console's CSV download of a table page's filter.
pub fn write_csv(
    store: &Store,
    table: &str,
    search: Option<&ColumnSearch>,
    out: impl Write,
    mut on_row: impl FnMut(),
) -> anyhow::Result<u64> {
    let schema = store
        .schemas()
        .get(table)
        .with_context(|| format!("no table `{table}`"))?;
    let mut columns: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
    if schema.key.is_none() {
        columns.insert(0, "_id".into());
    }
    let mut n = 0u64;
    let mut w = csv::Writer::from_writer(out);
    w.write_record(&columns)?;
    store.export_matching(
        table,
        search,
        RowWindow::ALL,
        |row| -> anyhow::Result<bool> {
            w.write_record(columns.iter().map(|c| cell(row.get(c))))?;
            n += 1;
            on_row();
            Ok(true)
        },
    )?;
    w.flush()?;
    Ok(n)
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Reads `file` (`-`: standard input) in `format` (else by its extension; JSON lines for
/// standard input) and inserts every row into `table` in one transaction. A bad row fails the
/// whole import with its line number.
pub fn import(
    store: &Store,
    table: &str,
    file: &Path,
    format: Option<Format>,
) -> anyhow::Result<u64> {
    let schema = store
        .schemas()
        .get(table)
        .with_context(|| format!("no table `{table}`"))?;
    let stdin = file.as_os_str() == "-";
    let shown = if stdin {
        "standard input".to_string()
    } else {
        file.display().to_string()
    };
    let format = match (format, stdin) {
        (Some(f), _) => f,
        (None, true) => Format::Jsonl,
        (None, false) => Format::from_extension(file).with_context(|| {
            format!("{shown}: unknown format (use a .csv or .jsonl file, or --format csv|jsonl)")
        })?,
    };
    let text = if stdin {
        std::io::read_to_string(std::io::stdin())
            .with_context(|| format!("{shown}: cannot read"))?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("{shown}: cannot read"))?
    };
    let mut rows: Vec<Map<String, Value>> = Vec::new();
    match format {
        Format::Csv => {
            let mut r = csv::Reader::from_reader(text.as_bytes());
            let headers = r
                .headers()
                .with_context(|| format!("{shown}: bad CSV header"))?
                .clone();
            for (i, h) in headers.iter().enumerate() {
                if let Some(first) = headers.iter().position(|other| other == h) {
                    if first < i {
                        bail!(
                            "{shown}:1: column `{h}` appears twice in the header (columns {} and {}); give each column once",
                            first + 1,
                            i + 1
                        );
                    }
                }
            }
            for (i, rec) in r.records().enumerate() {
                let rec = rec.with_context(|| format!("{shown}:{}: bad CSV record", i + 2))?;
                let mut row = Map::new();
                for (pos, (h, v)) in headers.iter().zip(rec.iter()).enumerate() {
                    if h == "_id" && schema.key.is_none() {
                        continue; // a keyless table's row id is assigned anew
                    }
                    let Some(col) = schema.columns.iter().find(|c| c.name == h) else {
                        bail!("{shown}: column `{h}` is not in table `{table}`");
                    };
                    let value = parse_cell(v, col.ty).with_context(|| {
                        format!("{shown}:{}: column {} (`{h}`)", i + 2, pos + 1)
                    })?;
                    row.insert(h.to_string(), value);
                }
                rows.push(row);
            }
        }
        Format::Jsonl => {
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                match crate::json::parse(line) {
                    Ok(Value::Object(mut m)) => {
                        if schema.key.is_some() {
                            m.remove("_id");
                        }
                        rows.push(m)
                    }
                    Ok(_) => bail!("{shown}:{}: not a JSON object", i + 1),
                    Err(e) => bail!("{shown}:{}: {e}", i + 1),
                }
            }
        }
    }
    let n = store
        .import_rows(table, rows)
        .with_context(|| format!("{shown}: import into `{table}` failed, nothing written"))?;
    Ok(n)
}

fn parse_cell(v: &str, ty: ColumnType) -> anyhow::Result<Value> {
    if v.is_empty() && ty != ColumnType::Text {
        return Ok(Value::Null);
    }
    Ok(match ty {
        ColumnType::Text => Value::String(v.to_string()),
        ColumnType::Number => {
            let n = v
                .parse::<f64>()
                .with_context(|| format!("`{v}` is not a number"))?;
            // NaN, inf and 1e999 parse as f64 but are no JSON number: refused, never null.
            let Some(n) = serde_json::Number::from_f64(n) else {
                bail!("`{v}` is not a finite number");
            };
            Value::Number(n)
        }
        ColumnType::Integer => Value::from(
            v.parse::<i64>()
                .with_context(|| format!("`{v}` is not an integer"))?,
        ),
        ColumnType::Boolean => Value::Bool(
            v.parse::<bool>()
                .with_context(|| format!("`{v}` is not true or false"))?,
        ),
        ColumnType::Json => crate::json::parse(v).with_context(|| format!("`{v}` is not JSON"))?,
    })
}
