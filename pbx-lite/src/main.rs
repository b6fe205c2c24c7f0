//! `pbx-lite`: the office PBX. `serve` runs SIP and, unless told not to, the provisioning
//! servers in the same process over the same database; `station` and `settings` are the
//! provisioner's commands; `status`, `calls` and `access-log` read what the running PBX
//! wrote.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use stations::Db;
use stations::cli::{SettingsCmd, StationCmd};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Parser)]
#[command(
    name = "pbx-lite",
    about = "The office PBX: registrar, calls, provisioning",
    // A flag given twice takes the last value: `scripts/office --sip [::]:5060` overrides
    // the script's own `--sip 0.0.0.0:5060`.
    args_override_self = true
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
        /// SIP over TLS (the certificate: tls.certificate, or the office CA's in DB.tls/).
        #[arg(long, default_value = "0.0.0.0:5061")]
        tls: SocketAddr,
        /// Do not listen for SIP over TLS.
        #[arg(long)]
        no_tls: bool,
        #[arg(long, default_value = "0.0.0.0:80")]
        http: SocketAddr,
        #[arg(long, default_value = "0.0.0.0:69")]
        tftp: SocketAddr,
        /// Do not run the provisioning servers.
        #[arg(long)]
        no_provisioning: bool,
        /// The web admin (accounts: `pbx-lite admin add`) and the JSON endpoints (bearer
        /// token in DB.admin-token). Plain HTTP on loopback; anywhere else HTTPS only, with
        /// the office's TLS certificate.
        #[arg(long, default_value = "127.0.0.1:8080")]
        admin: SocketAddr,
        /// UDP ports for the media relay.
        #[arg(long, default_value = "10000-20000")]
        rtp_ports: String,
    },
    #[command(subcommand)]
    Station(StationCmd),
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Ring groups: a number that rings several stations, the first to answer takes it.
    #[command(subcommand)]
    Group(GroupCmd),
    /// The SIP Phone Status table: every station, registered or not.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Outside lines: trunks at SIP providers.
    #[command(subcommand)]
    Trunk(pbx_lite::trunks::cli::TrunkCmd),
    /// The office's numbers (DIDs) and what each rings.
    #[command(subcommand)]
    Did(pbx_lite::trunks::cli::DidCmd),
    /// Which trunk outside numbers go through, by prefix.
    #[command(subcommand)]
    Route(pbx_lite::trunks::cli::RouteCmd),
    /// The office CA: certificates for phones (mutual TLS).
    #[command(subcommand)]
    Tls(TlsCmd),
    /// Call records, newest first: start, caller, dialled, who answered, how it ended,
    /// seconds talking.
    Calls {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 100)]
        tail: i64,
    },
    /// The web admin's accounts.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Actions on a station's phones, sent by the running PBX.
    #[command(subcommand)]
    Phone(PhoneCmd),
    /// Refused accesses: time, address, caller, reason.
    AccessLog {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 100)]
        tail: i64,
    },
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Add an admin, or set a new password for one: the password is asked for (or read
    /// from standard input when it is not a terminal), at least 10 characters.
    Add { name: String },
    /// List the admins.
    List,
    /// Remove an admin.
    Rm { name: String },
}

#[derive(Subcommand)]
enum PhoneCmd {
    /// Make a station's phones reread their configuration: bumps cisco.sync and sends each
    /// registered phone a NOTIFY with `Event: check-sync` (a Cisco 79x0 reboots for it).
    Resync { number: String },
}

/// The new admin password: asked twice on a terminal, else a line of standard input.
fn read_new_password() -> Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("New admin password: ")?;
        let b = rpassword::prompt_password("Again: ")?;
        anyhow::ensure!(a == b, "the two passwords differ");
        Ok(a)
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

fn admin(db: &Db, cmd: AdminCmd, out: &mut impl Write) -> Result<()> {
    match cmd {
        AdminCmd::Add { name } => {
            let hash = pbx_lite::web::session::hash_password(&read_new_password()?)?;
            db.set_admin(&name, &hash, unix_now())?;
            writeln!(out, "admin {name}: password set")?;
        }
        AdminCmd::List => {
            for (name, created) in db.admins()? {
                writeln!(
                    out,
                    "{name:<20} since {}",
                    stations::db::readable_time(created)
                )?;
            }
        }
        AdminCmd::Rm { name } => {
            anyhow::ensure!(db.remove_admin(&name)?, "admin {name}: no such admin");
            writeln!(out, "admin {name} removed")?;
        }
    }
    Ok(())
}

#[derive(Subcommand)]
enum TlsCmd {
    /// Issues a client certificate from the office CA (DB.tls/) for a phone: NAME.pem and
    /// NAME.key (0600) in --out.
    ClientCert {
        /// The certificate's common name: the station number, say.
        name: String,
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

/// A status row's forwarding as `all:202 busy:203`, or `-`.
fn forwards(r: &serde_json::Value) -> String {
    let parts: Vec<String> = [
        ("all", "forward_all"),
        ("busy", "forward_busy"),
        ("na", "forward_noanswer"),
    ]
    .iter()
    .filter_map(|(label, key)| {
        let t = r[*key].as_str().unwrap_or_default();
        (!t.is_empty()).then(|| format!("{label}:{t}"))
    })
    .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

fn status(db: &Db, json: bool, out: &mut dyn Write) -> Result<()> {
    let rows = pbx_lite::status::stations(db)?;
    if json {
        writeln!(out, "{}", serde_json::Value::Array(rows))?;
    } else {
        writeln!(
            out,
            "{:<8} {:<11} {:<22} {:<9} {:<4} {:>7} {:<4} {:<14} {:<9} user agent",
            "number",
            "registered",
            "address",
            "transport",
            "nat",
            "expiry",
            "dnd",
            "forward",
            "messages"
        )?;
        for r in rows {
            writeln!(
                out,
                "{:<8} {:<11} {:<22} {:<9} {:<4} {:>7} {:<4} {:<14} {:<9} {}",
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
                if r["dnd"].as_bool().unwrap_or(false) {
                    "on"
                } else {
                    "-"
                },
                forwards(&r),
                format!("{}/{}", r["messages_new"], r["messages_old"]),
                r["user_agent"].as_str().unwrap_or_default()
            )?;
        }
        for t in db.trunks()? {
            writeln!(
                out,
                "trunk {:<10} {}",
                t.name,
                pbx_lite::trunks::cli::state_line(db, &t)
            )?;
        }
    }
    Ok(())
}

#[derive(Subcommand)]
enum GroupCmd {
    /// Create or change a group: `group set 300 201,202,203`.
    Set { number: String, members: String },
    /// List the groups.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a group.
    Rm { number: String },
}

fn group(db: &Db, cmd: GroupCmd, out: &mut impl Write) -> Result<()> {
    match cmd {
        GroupCmd::Set { number, members } => {
            let members: Vec<String> = members
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect();
            db.set_ring_group(&number, &members)?;
            writeln!(out, "group {number}: {}", members.join(", "))?;
        }
        GroupCmd::List { json } => {
            let groups = db.ring_groups()?;
            if json {
                let rows: Vec<_> = groups
                    .iter()
                    .map(|(n, m)| serde_json::json!({"number": n, "members": m}))
                    .collect();
                writeln!(out, "{}", serde_json::Value::Array(rows))?;
            } else {
                for (n, m) in groups {
                    writeln!(out, "{n:<8} {}", m.join(", "))?;
                }
            }
        }
        GroupCmd::Rm { number } => {
            if !db.delete_ring_group(&number)? {
                anyhow::bail!("group {number}: no such group");
            }
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
        Cmd::Group(c) => group(&Db::open(&cli.db)?, c, &mut out)?,
        Cmd::Trunk(c) => pbx_lite::trunks::cli::run_trunk(&Db::open(&cli.db)?, c, &mut out)?,
        Cmd::Did(c) => pbx_lite::trunks::cli::run_did(&Db::open(&cli.db)?, c, &mut out)?,
        Cmd::Route(c) => pbx_lite::trunks::cli::run_route(&Db::open(&cli.db)?, c, &mut out)?,
        Cmd::Tls(TlsCmd::ClientCert { name, out: dir }) => {
            anyhow::ensure!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
                "client-cert: the name {name:?} must be letters, digits, '.', '_' or '-'"
            );
            let id =
                pbx_lite::tls::client_identity(&pbx_lite::tls::dir_of(&cli.db), &name, today())?;
            let (cert, key) = (
                dir.join(format!("{name}.pem")),
                dir.join(format!("{name}.key")),
            );
            std::fs::write(&cert, &id.chain_pem).with_context(|| cert.display().to_string())?;
            pbx_lite::tls::write_private(&key, &id.key_pem)?;
            writeln!(out, "{}\n{}", cert.display(), key.display())?;
        }
        Cmd::Admin(c) => admin(&Db::open(&cli.db)?, c, &mut out)?,
        Cmd::Phone(PhoneCmd::Resync { number }) => {
            Db::open(&cli.db)?.queue_phone_action(&number, "resync", unix_now())?;
            writeln!(
                out,
                "resync queued for {number}: the running PBX sends it within a second"
            )?;
        }
        Cmd::Calls { json, tail } => {
            let rows = Db::open(&cli.db)?.call_records(tail)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&rows)?)?;
            } else {
                for c in rows {
                    writeln!(
                        out,
                        "{} {:<12} → {:<12} {:<12} {:<11} {:>5}s{}",
                        stations::db::readable_time(c.started),
                        c.caller,
                        c.dialled,
                        c.callee,
                        c.disposition,
                        c.duration(),
                        match c.disposition.as_str() {
                            "refused" => format!(" ({})", c.status),
                            _ => String::new(),
                        }
                    )?;
                }
            }
        }
        Cmd::AccessLog { json, tail } => {
            let rows = pbx_lite::status::access(&Db::open(&cli.db)?, tail)?;
            if json {
                writeln!(out, "{}", serde_json::Value::Array(rows))?;
            } else {
                for a in rows {
                    writeln!(
                        out,
                        "{} {:<15} {:<10} {}{}",
                        stations::db::readable_time(a["at"].as_i64().unwrap_or_default()),
                        a["address"].as_str().unwrap_or_default(),
                        a["caller"].as_str().unwrap_or_default(),
                        a["reason"].as_str().unwrap_or_default(),
                        match a["count"].as_i64().unwrap_or(1) {
                            1 => String::new(),
                            n => format!(
                                " (×{n} since {})",
                                stations::db::readable_time(
                                    a["first_at"].as_i64().unwrap_or_default()
                                )
                            ),
                        }
                    )?;
                }
            }
        }
        Cmd::Serve {
            sip,
            tls,
            no_tls,
            http,
            tftp,
            no_provisioning,
            rtp_ports,
            admin,
        } => {
            let (lo, hi) = rtp_ports
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)))
                .filter(|(a, b)| a < b)
                .with_context(|| {
                    format!("--rtp-ports {rtp_ports:?}: expected LO-HI, e.g. 10000-20000")
                })?;
            provisioner::log_to_stderr();
            let identity = office_identity(&cli.db, &[sip, tls, admin])?;
            let tls = if no_tls {
                None
            } else {
                Some((tls, sip_tls(&cli.db, &identity)?))
            };
            // Anywhere but loopback, the admin is HTTPS only, with the office's certificate.
            let admin_tls = if admin.ip().is_loopback() {
                None
            } else {
                let config =
                    sip::transport::TlsSettings::server(&identity.chain_pem, &identity.key_pem)
                        .ok()
                        .and_then(|t| t.server_config())
                        .context("the admin's HTTPS certificate")?;
                Some(tokio_rustls::TlsAcceptor::from(config))
            };
            let rt = provisioner::runtime()?;
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
                let token = pbx_lite::admin::token_path(&cli.db);
                let token_api = pbx_lite::admin::router(
                    db.clone(),
                    pbx_lite::admin::load_or_create_token(&token)
                        .with_context(|| format!("admin token {}", token.display()))?,
                );
                let (board, shown) = tokio::sync::watch::channel(Vec::new());
                let web = pbx_lite::web::Web::new(
                    db.clone(),
                    shown,
                    admin_tls.is_some(),
                    pbx_lite::features::voicemail_dir_of(&cli.db),
                    unix_now,
                )?;
                let router = pbx_lite::web::router(web, token_api);
                let a = tokio::net::TcpListener::bind(admin)
                    .await
                    .with_context(|| format!("admin HTTP {admin}"))?;
                let admin = a.local_addr()?;
                let limits = provisioner::listener::HttpLimits {
                    body: pbx_lite::web::BODY_LIMIT,
                    ..Default::default()
                };
                let scheme = if admin_tls.is_some() { "https" } else { "http" };
                match admin_tls {
                    None => tokio::spawn(provisioner::listener::serve(a, router, limits)),
                    Some(tls) => {
                        tokio::spawn(provisioner::listener::serve_tls(a, router, limits, tls))
                    }
                };
                if Db::open(&cli.db)?.admins()?.is_empty() {
                    tracing::warn!(
                        "no admin accounts: add one with `pbx-lite --db {} admin add NAME`",
                        cli.db.display()
                    );
                }
                tracing::info!(
                    "admin on {scheme}://{admin} (token in {}){}",
                    token.display(),
                    if no_provisioning {
                        String::new()
                    } else {
                        format!(", TFTP on {tftp}, HTTP on {http}")
                    }
                );
                pbx_lite::server::run(
                    db,
                    sip,
                    tls,
                    (lo, hi),
                    pbx_lite::features::voicemail_dir_of(&cli.db),
                    board,
                )
                .await
            })?;
        }
    }
    Ok(())
}

/// The office's TLS identity: the administrator's files (settings), or the office CA's
/// certificate for the names phones and browsers may reach it by — `pbx.host`, the public
/// address, the host's name, the addresses it listens on (when not every address), and
/// loopback.
fn office_identity(
    db: &std::path::Path,
    listening: &[SocketAddr],
) -> Result<pbx_lite::tls::Identity> {
    let d = Db::open(db)?;
    let setting = |k: &str| d.setting(k).unwrap_or_default();
    let mut names: Vec<String> = [setting("pbx.host"), setting("nat.public_address")]
        .into_iter()
        .chain(
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string()),
        )
        .chain(
            listening
                .iter()
                .map(SocketAddr::ip)
                .filter(|ip| !ip.is_unspecified())
                .map(|ip| ip.to_string()),
        )
        .chain([
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .filter(|n| !n.is_empty())
        .collect();
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    pbx_lite::tls::identity(
        &setting("tls.certificate"),
        &setting("tls.private_key"),
        &pbx_lite::tls::dir_of(db),
        &names,
        today(),
    )
}

/// SIP over TLS with the office's identity, asking phones for certificates as `tls.mutual`
/// says.
fn sip_tls(
    db: &std::path::Path,
    id: &pbx_lite::tls::Identity,
) -> Result<sip::transport::TlsSettings> {
    let d = Db::open(db)?;
    let setting = |k: &str| d.setting(k).unwrap_or_default();
    let clients = match (
        setting("tls.mutual").as_str(),
        setting("tls.verify_client").as_str(),
    ) {
        ("yes", "any") => sip::transport::ClientCerts::Any,
        ("yes", _) => {
            let mut roots =
                std::fs::read(pbx_lite::tls::dir_of(db).join("ca.pem")).unwrap_or_default();
            let extra = setting("tls.client_ca");
            if !extra.is_empty() {
                roots.extend(
                    std::fs::read(&extra).with_context(|| format!("tls.client_ca {extra}"))?,
                );
            }
            anyhow::ensure!(
                !roots.is_empty(),
                "tls.mutual: no roots to check client certificates against (set tls.client_ca)"
            );
            sip::transport::ClientCerts::Known(roots)
        }
        _ => sip::transport::ClientCerts::None,
    };
    sip::transport::TlsSettings::server_with(&id.chain_pem, &id.key_pem, &clients)
        .context("the TLS certificate and key")
}

/// Today, in days since 1970-01-01 (certificates' validity).
fn today() -> i64 {
    unix_now().div_euclid(86_400)
}

/// Unix seconds now: the one clock the commands, and the web admin, are told.
fn unix_now() -> i64 {
    sip::clock::Clock::now().unix()
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
