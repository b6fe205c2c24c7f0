//! # stations — the station database
//!
//! Layer: data. Knows no protocol: the provisioner renders phone files from it and pbx-lite
//! authenticates and routes with it.
//!
//! ## Brief overview
//! - [`Station`] (one line appearance or softphone account) with [`FIELDS`], the single
//!   table of field names every interface shares; [`Mac`]; [`Model`].
//! - [`Db`]: SQLite with migrations; passwords sealed by [`secret`] under a key file beside
//!   the database; settings ([`settings`]); unknown phones; the provisioning log.
//! - [`transfer`]: CSV/TOML import (all or nothing, errors by line) and export.
//! - [`cli`]: the `station …` and `settings …` commands both programs embed.

pub mod cli;
pub mod db;
pub mod error;
pub mod mac;
pub mod secret;
pub mod settings;
pub mod station;
pub mod transfer;
pub mod trunk;

pub use db::Db;
pub use error::StationError;
pub use mac::Mac;
pub use station::{FIELDS, MODELS, Model, Station};
