//! Import and export of stations as CSV (header `number,user_id,password,name,mac,model`
//! plus any optional columns of [`FIELDS`]) and TOML (`[[station]]` tables with the same
//! keys). Imports are all or nothing: every bad row is reported with its line number and
//! nothing is written unless all rows are good. Export then import gives the same stations,
//! and export after that the same bytes.

use crate::db::Db;
use crate::error::StationError;
use crate::station::{FIELDS, Station};
use std::collections::HashMap;

/// The columns a CSV file must have.
pub const REQUIRED: &[&str] = &["number", "user_id", "password", "name", "mac", "model"];

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Toml,
}

impl Format {
    /// From a file name's extension (default CSV).
    pub fn from_path(path: &str) -> Format {
        if path.to_ascii_lowercase().ends_with(".toml") {
            Format::Toml
        } else {
            Format::Csv
        }
    }
}

/// Rows read from a file: the station, or why it was refused, with its line number.
type Rows = Vec<(usize, Result<Station, StationError>)>;

fn station_from(pairs: &[(String, String)], min_password: usize) -> Result<Station, StationError> {
    let mut s = Station::new_unchecked();
    for (k, v) in pairs {
        s.set(k, v)?;
    }
    s.check(min_password)?;
    Ok(s)
}

fn read_csv(text: &str, min_password: usize) -> Result<Rows, StationError> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| StationError::Import(vec![(1, e.to_string())]))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    for h in &header {
        if !FIELDS.contains(&h.as_str()) {
            return Err(StationError::Import(vec![(
                1,
                format!("unknown column {h:?} (columns: {})", FIELDS.join(",")),
            )]));
        }
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .filter(|r| !header.iter().any(|h| h == *r))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(StationError::Import(vec![(
            1,
            format!("missing column(s) {}", missing.join(",")),
        )]));
    }
    let mut rows = Vec::new();
    // Lines are counted from the record's byte offset: csv's own count is one short after
    // lines ended by CRLF (as spreadsheets and browsers' forms write them).
    let mut counted = (0usize, 1usize);
    let mut line_at = |p: Option<&csv::Position>| {
        let Some(byte) = p.and_then(|p| usize::try_from(p.byte()).ok()) else {
            return 0;
        };
        let (from, line) = counted;
        // With CRLF, csv places a record at the LF before it.
        let mut end = byte.clamp(from, text.len());
        while text
            .as_bytes()
            .get(end)
            .is_some_and(|b| matches!(b, b'\r' | b'\n'))
        {
            end += 1;
        }
        counted = (
            end,
            line + text.as_bytes()[from..end]
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
        );
        counted.1
    };
    for rec in rdr.records() {
        match rec {
            Ok(rec) => {
                let line = line_at(rec.position());
                let pairs: Vec<(String, String)> = header
                    .iter()
                    .cloned()
                    .zip(rec.iter().map(str::to_string))
                    .collect();
                rows.push((line, station_from(&pairs, min_password)));
            }
            Err(e) => {
                let line = line_at(e.position());
                rows.push((line, Err(StationError::invalid("row", "", e.to_string()))));
            }
        }
    }
    Ok(rows)
}

fn read_toml(text: &str, min_password: usize) -> Result<Rows, StationError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map_or(0, |s| text[..s.start].lines().count().max(1));
        StationError::Import(vec![(line, e.message().to_string())])
    })?;
    let starts: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == "[[station]]")
        .map(|(i, _)| i + 1)
        .collect();
    let Some(list) = table.get("station").and_then(|v| v.as_array()) else {
        return Err(StationError::Import(vec![(
            1,
            "no [[station]] tables".into(),
        )]));
    };
    let mut rows = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let line = starts.get(i).copied().unwrap_or(0);
        let Some(t) = entry.as_table() else {
            rows.push((
                line,
                Err(StationError::invalid("station", "", "is not a table")),
            ));
            continue;
        };
        let mut pairs = Vec::new();
        let mut bad = None;
        for (k, v) in t {
            let text = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => {
                    if *b {
                        "yes".into()
                    } else {
                        "no".into()
                    }
                }
                other => {
                    bad = Some(StationError::invalid(
                        "value",
                        other.to_string(),
                        format!("of {k} is not a string or number"),
                    ));
                    break;
                }
            };
            pairs.push((k.clone(), text));
        }
        rows.push((
            line,
            match bad {
                Some(e) => Err(e),
                None => station_from(&pairs, min_password),
            },
        ));
    }
    Ok(rows)
}

/// Reads and imports a file's stations, all or nothing. Returns how many were imported.
pub fn import(db: &Db, text: &str, format: Format) -> Result<usize, StationError> {
    let min = db.min_password();
    let rows = match format {
        Format::Csv => read_csv(text, min)?,
        Format::Toml => read_toml(text, min)?,
    };
    let mut errors: Vec<(usize, String)> = Vec::new();
    let mut good = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (line, r) in rows {
        match r {
            Err(e) => errors.push((line, e.to_string())),
            Ok(s) => {
                let keys = [
                    format!("number {}", s.number),
                    format!("user_id {}", s.user_id),
                    s.mac
                        .map(|m| format!("mac {m} line {}", s.line))
                        .unwrap_or_default(),
                ];
                let mut dup = false;
                for k in keys.iter().filter(|k| !k.is_empty()) {
                    if let Some(first) = seen.get(k) {
                        errors.push((line, format!("{k} also on line {first}")));
                        dup = true;
                    }
                }
                if !dup {
                    for k in keys.into_iter().filter(|k| !k.is_empty()) {
                        seen.insert(k, line);
                    }
                    good.push((line, s));
                }
            }
        }
    }
    if errors.is_empty() {
        let stations: Vec<Station> = good.iter().map(|(_, s)| s.clone()).collect();
        if let Err(errs) = db.import(&stations) {
            errors = errs
                .into_iter()
                .map(|(i, e)| (good.get(i).map_or(0, |g| g.0), e.to_string()))
                .collect();
        }
    }
    if errors.is_empty() {
        Ok(good.len())
    } else {
        errors.sort_by_key(|(l, _)| *l);
        Err(StationError::Import(errors))
    }
}

/// Every station as CSV (all columns) or TOML.
pub fn export(db: &Db, format: Format) -> Result<String, StationError> {
    let stations = db.list()?;
    match format {
        Format::Csv => {
            let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
            let write_err = |e: csv::Error| StationError::invalid("export", "", e.to_string());
            w.write_record(FIELDS).map_err(write_err)?;
            for s in &stations {
                w.write_record(FIELDS.iter().map(|f| s.get(f)))
                    .map_err(write_err)?;
            }
            let bytes = w
                .into_inner()
                .map_err(|e| StationError::invalid("export", "", e.to_string()))?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        Format::Toml => {
            let mut out = String::new();
            for s in &stations {
                out.push_str("[[station]]\n");
                for f in FIELDS {
                    let v = s.get(f);
                    out.push_str(&format!("{f} = {}\n", toml::Value::String(v)));
                }
                out.push('\n');
            }
            Ok(out)
        }
    }
}
