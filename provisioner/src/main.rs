//! `provisioner`: the station database commands, `render`, `dhcp` and `serve`. Thin: it
//! parses flags, opens the database, binds sockets and calls the library.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use profiles::Profiles;
use provisioner::office::{Asker, Fetch, Office};
use stations::Db;
use stations::cli::{SettingsCmd, StationCmd};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "provisioner",
    about = "Provisioning server for Cisco 79x0, AudioCodes 4xxHD, X-Lite/Bria and the softphone"
)]
struct Cli {
    /// The station database (its key file is DB.key beside it).
    #[arg(long, default_value = "./office.db", global = true)]
    db: PathBuf,
    /// A profile directory whose files override the shipped templates.
    #[arg(long, global = true)]
    profiles: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Manage stations.
    #[command(subcommand)]
    Station(StationCmd),
    /// Read and change settings.
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Print exactly what a phone asking for NAME receives; with --all DIR, write every file
    /// of the database into DIR.
    Render {
        #[arg(required_unless_present = "all")]
        name: Option<String>,
        #[arg(long, value_name = "DIR")]
        all: Option<PathBuf>,
        /// The address the phone would reach this server on (what pbx.host=auto means).
        #[arg(long, default_value = "127.0.0.1")]
        server_address: String,
    },
    /// Print DHCP configuration pointing phones at this server.
    Dhcp {
        #[arg(long)]
        server: String,
        /// This server's address as phones reach it; by default `pbx.host` when it is an
        /// address, else the address of the interface the default route leaves by.
        #[arg(long)]
        address: Option<Ipv4Addr>,
    },
    /// Run the TFTP and HTTP servers.
    Serve {
        #[arg(long, default_value = "0.0.0.0:69")]
        tftp: SocketAddr,
        #[arg(long, default_value = "0.0.0.0:80")]
        http: SocketAddr,
        /// A folder of static files to serve as they are (firmware images, ring tones).
        #[arg(long)]
        files: Option<PathBuf>,
    },
    /// The newest provisioning requests.
    Log {
        #[arg(long, default_value_t = 50)]
        tail: i64,
    },
}

fn office(db: &std::path::Path, profiles: Option<&std::path::Path>) -> Result<Office> {
    let db = Db::open(db)?;
    let profiles = Profiles::load(profiles)?;
    Ok(Office::new(db, profiles))
}

fn run(cli: Cli) -> Result<()> {
    let Cli {
        db: db_path,
        profiles,
        cmd,
    } = cli;
    let mut out = std::io::stdout().lock();
    match cmd {
        Cmd::Station(c) => {
            let db = Db::open(&db_path)?;
            stations::cli::run_station(&db, c, &mut out)?;
        }
        Cmd::Settings(c) => {
            let db = Db::open(&db_path)?;
            stations::cli::run_settings(&db, c, &mut out)?;
        }
        Cmd::Render {
            name,
            all,
            server_address,
        } => {
            let office = office(&db_path, profiles.as_deref())?;
            let asker = Asker {
                protocol: "cli",
                address: "cli".into(),
                local_host: server_address.clone(),
                credentials: None,
            };
            let (year, now) = provisioner::clock();
            if let Some(dir) = all {
                render_all(&office, &asker, &dir, &mut out)?;
            } else if let Some(name) = name {
                match office.fetch(&name, &asker, year, now) {
                    Fetch::Found(bytes) => out.write_all(&bytes)?,
                    _ => bail!("{name}: no such file for this database"),
                }
            }
        }
        Cmd::Dhcp { server, address } => {
            let kind = provisioner::dhcp::DhcpServer::parse(&server)
                .with_context(|| format!("--server {server:?}: use dnsmasq, isc or kea"))?;
            let db = Db::open(&db_path)?;
            let settings = Office::settings(&db)?;
            let address = match address {
                Some(a) => a,
                None => {
                    let (a, why) = provisioner::dhcp::own_address(&settings)?;
                    eprintln!("provisioner dhcp: no --address given; using {a} ({why})");
                    a
                }
            };
            let http = Office::server(&settings, &address.to_string()).http;
            write!(out, "{}", provisioner::dhcp::snippet(kind, address, &http))?;
        }
        Cmd::Serve { tftp, http, files } => {
            let mut office = office(&db_path, profiles.as_deref())?;
            if let Some(dir) = files {
                office = office
                    .with_files(&dir)
                    .with_context(|| format!("--files {}", dir.display()))?;
            }
            let office = Arc::new(office);
            provisioner::log_to_stderr();
            let rt = provisioner::runtime()?;
            rt.block_on(async {
                let t = tokio::net::UdpSocket::bind(tftp)
                    .await
                    .with_context(|| format!("TFTP {tftp}"))?;
                let h = tokio::net::TcpListener::bind(http)
                    .await
                    .with_context(|| format!("HTTP {http}"))?;
                tracing::info!(
                    "TFTP on {tftp}, HTTP on {http}, database {}",
                    db_path.display()
                );
                provisioner::serve(office, Some(t), Some(h)).await?;
                Ok::<_, anyhow::Error>(())
            })?;
        }
        Cmd::Log { tail } => {
            let db = Db::open(&db_path)?;
            for e in db.log_tail(tail)? {
                writeln!(
                    out,
                    "{} {:<15} {:<5} {:<28} {:>7} {}",
                    stations::db::readable_time(e.at),
                    e.address,
                    e.protocol,
                    e.file,
                    e.bytes,
                    e.result
                )?;
            }
        }
    }
    Ok(())
}

/// Writes every file of the database into `dir` and reports the rate.
fn render_all(
    office: &Office,
    asker: &Asker,
    dir: &std::path::Path,
    out: &mut dyn Write,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let (year, now) = provisioner::clock();
    let t0 = std::time::Instant::now();
    let stations = office.db().list()?;
    let names = office.profiles().names(&stations);
    let (mut files, mut bytes) = (0usize, 0usize);
    for n in &names {
        if let Fetch::Found(b) = office.fetch(n, asker, year, now) {
            std::fs::write(dir.join(n), &b).with_context(|| n.clone())?;
            files += 1;
            bytes += b.len();
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    writeln!(
        out,
        "{files} files ({bytes} bytes) for {} stations rendered in {secs:.2} s ({:.0} files/s)",
        stations.len(),
        files as f64 / secs
    )?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("provisioner: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
