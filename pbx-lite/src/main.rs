//! `pbx-lite`: the office PBX. `serve` runs SIP and, unless told not to, the provisioning
//! servers in the same process over the same database; `station` and `settings` are the
//! provisioner's commands; `status` and `access-log` read what the running PBX wrote.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use pbx_lite::nat::{self, NatCheck};
use stations::Db;
use stations::cli::{SettingsCmd, StationCmd};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Parser)]
#[command(
    name = "pbx-lite",
    about = "The office PBX: registrar, calls, provisioning"
)]
struct Cli {
    #[arg(long, default_value = "./office.db", global = true)]
    db: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the PBX (and the provisioning servers).
    Serve {
        #[arg(long, default_value = "0.0.0.0:5060")]
        sip: SocketAddr,
        #[arg(long, default_value = "0.0.0.0:80")]
        http: SocketAddr,
        #[arg(long, default_value = "0.0.0.0:69")]
        tftp: SocketAddr,
        /// Do not run the provisioning servers.
        #[arg(long)]
        no_provisioning: bool,
        /// UDP ports for the media relay.
        #[arg(long, default_value = "10000-20000")]
        rtp_ports: String,
    },
    #[command(subcommand)]
    Station(StationCmd),
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// The SIP Phone Status table: every station, registered or not.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Refused accesses: time, address, caller, reason.
    AccessLog {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 100)]
        tail: i64,
    },
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn status(db: &Db, json: bool, out: &mut dyn Write) -> Result<()> {
    let t = now();
    let regs = db.registrations()?;
    let check = NatCheck::from_setting(&db.setting("nat.check").unwrap_or_default());
    let mut rows = Vec::new();
    for s in db.list()? {
        let live: Vec<_> = regs
            .iter()
            .filter(|r| r.aor == s.number && r.expires_at > t)
            .collect();
        let first = live.first();
        rows.push(serde_json::json!({
            "number": s.number,
            "registered": !live.is_empty(),
            "user_agent": first.map(|r| r.user_agent.clone()).unwrap_or_default(),
            "address": first.map(|r| r.source.split_once(':').map_or(r.source.clone(), |(_, a)| a.to_string())).unwrap_or_default(),
            "transport": first.map(|r| r.transport.clone()).unwrap_or_default(),
            "nat": first.is_some_and(|r| nat::behind_nat(r, check)),
            "expires_in": first.map(|r| r.expires_at - t).unwrap_or(0),
            "contacts": live.len(),
        }));
    }
    if json {
        writeln!(out, "{}", serde_json::Value::Array(rows))?;
    } else {
        writeln!(
            out,
            "{:<8} {:<11} {:<22} {:<9} {:<4} {:>7}  user agent",
            "number", "registered", "address", "transport", "nat", "expiry"
        )?;
        for r in rows {
            writeln!(
                out,
                "{:<8} {:<11} {:<22} {:<9} {:<4} {:>7}  {}",
                r["number"].as_str().unwrap_or_default(),
                if r["registered"].as_bool().unwrap_or(false) {
                    "yes"
                } else {
                    "no"
                },
                r["address"].as_str().unwrap_or_default(),
                r["transport"].as_str().unwrap_or_default(),
                if r["nat"].as_bool().unwrap_or(false) {
                    "yes"
                } else {
                    "no"
                },
                r["expires_in"],
                r["user_agent"].as_str().unwrap_or_default()
            )?;
        }
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match cli.cmd {
        Cmd::Station(c) => stations::cli::run_station(&Db::open(&cli.db)?, c, &mut out)?,
        Cmd::Settings(c) => stations::cli::run_settings(&Db::open(&cli.db)?, c, &mut out)?,
        Cmd::Status { json } => status(&Db::open(&cli.db)?, json, &mut out)?,
        Cmd::AccessLog { json, tail } => {
            let log = Db::open(&cli.db)?.access_log(tail)?;
            if json {
                let v: Vec<_> = log.iter().map(|a| serde_json::json!({"at": a.at, "address": a.address, "caller": a.caller, "reason": a.reason})).collect();
                writeln!(out, "{}", serde_json::Value::Array(v))?;
            } else {
                for a in log {
                    writeln!(
                        out,
                        "{} {:<15} {:<10} {}",
                        a.at, a.address, a.caller, a.reason
                    )?;
                }
            }
        }
        Cmd::Serve {
            sip,
            http,
            tftp,
            no_provisioning,
            rtp_ports,
        } => {
            let (lo, hi) = rtp_ports
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)))
                .filter(|(a, b)| a < b)
                .with_context(|| {
                    format!("--rtp-ports {rtp_ports:?}: expected LO-HI, e.g. 10000-20000")
                })?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let db = Arc::new(Mutex::new(Db::open(&cli.db)?));
                if !no_provisioning {
                    let office = provisioner::office::Office::new(
                        Db::open(&cli.db)?,
                        profiles::Profiles::load(None)?,
                    );
                    let t = tokio::net::UdpSocket::bind(tftp)
                        .await
                        .with_context(|| format!("TFTP {tftp}"))?;
                    let h = tokio::net::TcpListener::bind(http)
                        .await
                        .with_context(|| format!("HTTP {http}"))?;
                    tokio::spawn(provisioner::serve(Arc::new(office), Some(t), Some(h)));
                }
                eprintln!(
                    "pbx-lite: SIP on {sip}{}",
                    if no_provisioning {
                        String::new()
                    } else {
                        format!(", TFTP on {tftp}, HTTP on {http}")
                    }
                );
                pbx_lite::server::run(db, sip, (lo, hi)).await
            })?;
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pbx-lite: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
