//! The station and settings command line, one implementation for `provisioner` and
//! `pbx-lite`: both embed [`StationCmd`] and [`SettingsCmd`] and call [`run_station`] /
//! [`run_settings`]. Output goes to the writer given, so tests read it directly.

use crate::db::Db;
use crate::error::StationError;
use crate::station::{FIELDS, Station};
use crate::transfer::{self, Format};
use clap::Subcommand;
use std::io::{Read, Write};

#[derive(Debug, Subcommand)]
pub enum StationCmd {
    /// Add a station. `--password -` reads the password from standard input.
    Add {
        #[arg(long)]
        number: String,
        #[arg(long = "user-id")]
        user_id: String,
        #[arg(long)]
        password: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        mac: Option<String>,
        #[arg(long, default_value = "softphone")]
        model: String,
        #[arg(long)]
        line: Option<String>,
        /// Any other field: `--set pickup_group=2` (repeatable).
        #[arg(long = "set", value_name = "FIELD=VALUE")]
        set: Vec<String>,
    },
    /// List stations (passwords never shown).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one station.
    Show {
        number: String,
        #[arg(long)]
        json: bool,
        /// Include the password in the output.
        #[arg(long = "show-password")]
        show_password: bool,
    },
    /// Change fields: `station set 201 name="Front Desk" mac=00:11:22:33:44:55`.
    Set {
        number: String,
        #[arg(value_name = "FIELD=VALUE", required = true)]
        changes: Vec<String>,
    },
    /// Remove a station.
    Rm { number: String },
    /// Import stations from a CSV or TOML file, all or nothing.
    Import {
        file: String,
        #[arg(long)]
        format: Option<String>,
    },
    /// Export every station (with passwords: keep the file safe) as CSV or TOML.
    Export {
        #[arg(long, default_value = "csv")]
        format: String,
    },
    /// Phones that asked for a configuration no station has (assign with `station set N mac=…`).
    Unknown,
}

#[derive(Debug, Subcommand)]
pub enum SettingsCmd {
    Get {
        key: String,
    },
    Set {
        key: String,
        value: String,
    },
    /// Every setting, its value and what it does.
    List,
}

fn format_of(s: &str) -> Result<Format, StationError> {
    match s.to_ascii_lowercase().as_str() {
        "csv" => Ok(Format::Csv),
        "toml" => Ok(Format::Toml),
        other => Err(StationError::invalid(
            "format",
            other,
            "must be csv or toml",
        )),
    }
}

fn io(e: std::io::Error) -> StationError {
    StationError::Io {
        path: "output".into(),
        reason: e.to_string(),
    }
}

fn apply(s: &mut Station, change: &str) -> Result<(), StationError> {
    let (field, value) = change
        .split_once('=')
        .ok_or_else(|| StationError::invalid("change", change, "must be FIELD=VALUE"))?;
    s.set(field.trim(), value)
}

fn show(s: &Station, with_password: bool) -> Vec<(&'static str, String)> {
    FIELDS
        .iter()
        .filter(|f| with_password || **f != "password")
        .map(|f| (*f, s.get(f)))
        .collect()
}

fn json(fields: &[(&str, String)]) -> serde_json::Value {
    serde_json::Value::Object(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
            .collect(),
    )
}

/// Runs a station command.
pub fn run_station(db: &Db, cmd: StationCmd, out: &mut dyn Write) -> Result<(), StationError> {
    match cmd {
        StationCmd::Add {
            number,
            user_id,
            password,
            name,
            mac,
            model,
            line,
            set,
        } => {
            let password = if password == "-" {
                let mut p = String::new();
                std::io::stdin().read_to_string(&mut p).map_err(io)?;
                p.trim_end_matches(['\r', '\n']).to_string()
            } else {
                password
            };
            let mut s = Station::new_unchecked();
            s.set("number", &number)?;
            s.set("user_id", &user_id)?;
            s.set("password", &password)?;
            s.set("model", &model)?;
            for (f, v) in [("name", name), ("mac", mac), ("line", line)] {
                if let Some(v) = v {
                    s.set(f, &v)?;
                }
            }
            for change in &set {
                apply(&mut s, change)?;
            }
            db.add(&s)?;
            writeln!(out, "station {} added", s.number).map_err(io)?;
        }
        StationCmd::List { json: as_json } => {
            let all = db.list()?;
            if as_json {
                let list: Vec<_> = all.iter().map(|s| json(&show(s, false))).collect();
                writeln!(out, "{}", serde_json::Value::Array(list)).map_err(io)?;
            } else {
                writeln!(
                    out,
                    "{:<8} {:<12} {:<20} {:<17} {:<18} line",
                    "number", "user_id", "name", "mac", "model"
                )
                .map_err(io)?;
                for s in all {
                    writeln!(
                        out,
                        "{:<8} {:<12} {:<20} {:<17} {:<18} {}",
                        s.number,
                        s.user_id,
                        s.name,
                        s.get("mac"),
                        s.model.name(),
                        s.line
                    )
                    .map_err(io)?;
                }
            }
        }
        StationCmd::Show {
            number,
            json: as_json,
            show_password,
        } => {
            let s = db.get(&number)?;
            let fields = show(&s, show_password);
            if as_json {
                writeln!(out, "{}", json(&fields)).map_err(io)?;
            } else {
                for (k, v) in fields {
                    writeln!(out, "{k:<15} {v}").map_err(io)?;
                }
            }
        }
        StationCmd::Set { number, changes } => {
            let mut s = db.get(&number)?;
            for c in &changes {
                apply(&mut s, c)?;
            }
            db.update(&number, &s)?;
            writeln!(out, "station {} updated", s.number).map_err(io)?;
        }
        StationCmd::Rm { number } => {
            db.remove(&number)?;
            writeln!(out, "station {number} removed").map_err(io)?;
        }
        StationCmd::Import { file, format } => {
            let fmt = match format {
                Some(f) => format_of(&f)?,
                None => Format::from_path(&file),
            };
            let text = std::fs::read_to_string(&file).map_err(|e| StationError::Io {
                path: file.clone().into(),
                reason: e.to_string(),
            })?;
            let n = transfer::import(db, &text, fmt)?;
            writeln!(out, "{n} station(s) imported from {file}").map_err(io)?;
        }
        StationCmd::Export { format } => {
            write!(out, "{}", transfer::export(db, format_of(&format)?)?).map_err(io)?;
        }
        StationCmd::Unknown => {
            writeln!(
                out,
                "{:<13} {:<16} {:<24} {:>5} last_seen",
                "mac", "address", "file", "count"
            )
            .map_err(io)?;
            for p in db.unknown_phones()? {
                writeln!(
                    out,
                    "{:<13} {:<16} {:<24} {:>5} {}",
                    p.mac, p.address, p.file, p.count, p.last_seen
                )
                .map_err(io)?;
            }
        }
    }
    Ok(())
}

/// Runs a settings command.
pub fn run_settings(db: &Db, cmd: SettingsCmd, out: &mut dyn Write) -> Result<(), StationError> {
    match cmd {
        SettingsCmd::Get { key } => writeln!(out, "{}", db.setting(&key)?).map_err(io)?,
        SettingsCmd::Set { key, value } => {
            let v = db.set_setting(&key, &value)?;
            writeln!(out, "{key} = {v}").map_err(io)?;
        }
        SettingsCmd::List => {
            for (k, v) in db.settings()? {
                let (_, _, _, doc) = crate::settings::lookup(&k)?;
                writeln!(out, "{k:<34} {v:<24} # {doc}").map_err(io)?;
            }
        }
    }
    Ok(())
}
