//! The station layer's errors. Each names the field and the value that was refused.

use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StationError {
    #[error("{field}: {value:?} {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("no station {0}")]
    NotFound(String),
    #[error("{field} {value:?} is already used by station {other}")]
    Duplicate {
        field: &'static str,
        value: String,
        other: String,
    },
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error(
        "key file {path} is missing: the database holds sealed passwords that only its key file opens; restore the key file (nothing was changed)"
    )]
    KeyMissing { path: PathBuf },
    #[error("key file {path} does not belong to this database (nothing was changed)")]
    KeyMismatch { path: PathBuf },
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{} bad row(s), nothing imported:\n{}", .0.len(), .0.iter().map(|(l, m)| format!("  line {l}: {m}")).collect::<Vec<_>>().join("\n"))]
    Import(Vec<(usize, String)>),
    #[error("unknown setting {0:?} (see `settings list`)")]
    UnknownSetting(String),
}

impl StationError {
    pub(crate) fn invalid(
        field: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        StationError::Invalid {
            field,
            value: value.into(),
            reason: reason.into(),
        }
    }
}
