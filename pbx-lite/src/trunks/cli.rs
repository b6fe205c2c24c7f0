//! The commands for outside lines: `trunk`, `did` and `route`.

use anyhow::Result;
use clap::Subcommand;
use stations::Db;
use stations::trunk::{TRUNK_FIELDS, Trunk};
use std::io::Write;

#[derive(Subcommand)]
pub enum TrunkCmd {
    /// Adds a trunk at a provider.
    Add {
        name: String,
        /// The provider: HOST or HOST:PORT.
        #[arg(long)]
        host: String,
        #[arg(long, default_value = "udp")]
        transport: String,
        /// The account at the provider.
        #[arg(long, default_value = "")]
        user: String,
        #[arg(long, default_value = "")]
        password: String,
        /// Register the trunk at the provider.
        #[arg(long)]
        register: bool,
        /// The From user of outgoing calls when no caller ID applies.
        #[arg(long, default_value = "")]
        from_user: String,
        /// The office's number shown to the called party (stations may have their own).
        #[arg(long, default_value = "")]
        caller_id: String,
        /// Calls at once (0: no limit).
        #[arg(long, default_value_t = 0)]
        max_calls: u32,
        /// Where an incoming call's number is read: ruri or to.
        #[arg(long, default_value = "ruri")]
        did_from: String,
    },
    /// Every trunk with its state (registered, last error, calls).
    List,
    /// One trunk, field by field, with its state.
    Show { name: String },
    /// Changes fields: FIELD=VALUE ...
    Set { name: String, fields: Vec<String> },
    /// Removes a trunk (and its routes).
    Rm { name: String },
}

#[derive(Subcommand)]
pub enum DidCmd {
    /// The office's number NUMBER rings --to: a station, a ring group, or voicemail:MAILBOX.
    Add {
        number: String,
        #[arg(long)]
        to: String,
    },
    List,
    Rm {
        number: String,
    },
}

#[derive(Subcommand)]
pub enum RouteCmd {
    /// Outside numbers starting with PREFIX (E.164 `+44`, a dialled `00331`, or `+` for every
    /// number) go through --trunk; the longest prefix wins.
    Add {
        prefix: String,
        #[arg(long)]
        trunk: String,
    },
    List,
    Rm {
        prefix: String,
    },
}

/// A trunk's state as one line: `registered until …` or `not registered`, the last error,
/// the calls.
pub fn state_line(db: &Db, t: &Trunk) -> String {
    let s = db.trunk_state(&t.name).unwrap_or_default();
    let reg = if !t.register {
        "no registration".to_string()
    } else if s.registered {
        format!(
            "registered until {}",
            stations::db::readable_time(s.expires_at)
        )
    } else {
        "not registered".to_string()
    };
    let error = if s.last_error.is_empty() {
        String::new()
    } else {
        format!(", last error: {}", s.last_error)
    };
    format!("{reg}{error}, {} calls", s.calls)
}

pub fn run_trunk(db: &Db, cmd: TrunkCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        TrunkCmd::Add {
            name,
            host,
            transport,
            user,
            password,
            register,
            from_user,
            caller_id,
            max_calls,
            did_from,
        } => {
            anyhow::ensure!(
                db.trunk(&name).is_err(),
                "trunk {name} exists: use trunk set"
            );
            let mut t = Trunk::new(&name, &host)?;
            for (f, v) in [
                ("transport", transport),
                ("user", user),
                ("password", password),
                ("register", if register { "yes" } else { "no" }.to_string()),
                ("from_user", from_user),
                ("caller_id", caller_id),
                ("max_calls", max_calls.to_string()),
                ("did_from", did_from),
            ] {
                t.set(f, &v)?;
            }
            db.save_trunk(&t)?;
            writeln!(out, "trunk {name} added")?;
        }
        TrunkCmd::List => {
            for t in db.trunks()? {
                writeln!(
                    out,
                    "{:<12} {}:{} {:<4} {}",
                    t.name,
                    t.host,
                    t.port,
                    t.transport,
                    state_line(db, &t)
                )?;
            }
        }
        TrunkCmd::Show { name } => {
            let t = db.trunk(&name)?;
            writeln!(out, "name: {}", t.name)?;
            for f in TRUNK_FIELDS {
                let v = if *f == "password" {
                    if t.password.is_empty() { "" } else { "(set)" }.to_string()
                } else {
                    t.get(f)
                };
                writeln!(out, "{f}: {v}")?;
            }
            writeln!(out, "state: {}", state_line(db, &t))?;
        }
        TrunkCmd::Set { name, fields } => {
            let mut t = db.trunk(&name)?;
            for kv in &fields {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("{kv:?}: expected FIELD=VALUE"))?;
                t.set(k.trim(), v)?;
            }
            db.save_trunk(&t)?;
            writeln!(out, "trunk {name} changed")?;
        }
        TrunkCmd::Rm { name } => {
            anyhow::ensure!(db.delete_trunk(&name)?, "no trunk {name}");
            writeln!(out, "trunk {name} removed")?;
        }
    }
    Ok(())
}

pub fn run_did(db: &Db, cmd: DidCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        DidCmd::Add { number, to } => {
            db.set_did(&number, &to)?;
            writeln!(out, "{number} rings {to}")?;
        }
        DidCmd::List => {
            for (n, t) in db.dids()? {
                writeln!(out, "{n:<20} {t}")?;
            }
        }
        DidCmd::Rm { number } => {
            anyhow::ensure!(db.delete_did(&number)?, "no DID {number}");
            writeln!(out, "DID {number} removed")?;
        }
    }
    Ok(())
}

pub fn run_route(db: &Db, cmd: RouteCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        RouteCmd::Add { prefix, trunk } => {
            db.set_route(&prefix, &trunk)?;
            writeln!(out, "{prefix} goes through {trunk}")?;
        }
        RouteCmd::List => {
            for (p, t) in db.routes()? {
                writeln!(out, "{p:<12} {t}")?;
            }
        }
        RouteCmd::Rm { prefix } => {
            anyhow::ensure!(db.delete_route(&prefix)?, "no route {prefix}");
            writeln!(out, "route {prefix} removed")?;
        }
    }
    Ok(())
}
