//! `softphone`: the office softphone, a window by default. `--headless` runs the engine
//! without one: line commands on stdin (and on `--control ADDR`, a loopback TCP socket), one
//! JSON event per line on stdout.

use anyhow::{Context, Result, bail};
use clap::Parser;
use softphone::config::Config;
use softphone::engine;
use softphone::headless;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(name = "softphone", about = "The office softphone")]
struct Cli {
    /// Run without a window, driven by line commands.
    #[arg(long)]
    headless: bool,
    /// The configuration file (TOML). With --config-url, where the fetched profile is kept.
    #[arg(long)]
    config: PathBuf,
    /// Fetch the configuration from the provisioner (its native softphone profile,
    /// `http://PBX/softphone-NUMBER.toml`) first; if it cannot be reached, the copy kept at
    /// --config from the last fetch is used.
    #[arg(long)]
    config_url: Option<String>,
    /// USER:PASSWORD for --config-url (the station's user ID and password); the
    /// SOFTPHONE_AUTH environment variable keeps them off the command line.
    #[arg(long, env = "SOFTPHONE_AUTH", hide_env_values = true)]
    auth: Option<String>,
    /// Also take commands (and send events) on this loopback TCP address.
    #[arg(long)]
    control: Option<SocketAddr>,
    /// Local SIP address (UDP and TCP).
    #[arg(long, default_value = "0.0.0.0:0")]
    sip: SocketAddr,
    /// Headless: `device` talks through the sound card (the configuration's microphone and
    /// speaker, or the defaults) instead of the `[audio]` files.
    #[arg(long, value_parser = ["files", "device"], default_value = "files")]
    audio: String,
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("softphone: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(url) = &cli.config_url {
        let auth = match cli.auth.as_deref().map(|a| a.split_once(':')) {
            None => None,
            Some(Some(pair)) => Some(pair),
            Some(None) => bail!("--auth: expected USER:PASSWORD"),
        };
        if let Err(e) = softphone::config::fetch(url, auth, &cli.config) {
            if !cli.config.exists() {
                bail!("{e}");
            }
            eprintln!(
                "softphone: {e}; using the copy kept at {}",
                cli.config.display()
            );
        }
    }
    let mut config = Config::load(&cli.config)?;
    // The window talks through the sound card unless its configuration names files.
    let files = config.audio.source.is_some() || config.audio.record_dir.is_some();
    if cli.audio == "device" || (!cli.headless && !files) {
        config.audio.devices = true;
    }
    if let Some(c) = cli.control
        && !c.ip().is_loopback()
    {
        bail!("--control {c}: the control socket must be on a loopback address");
    }
    if !cli.headless {
        return softphone::gui::run_window(cli.config, config, cli.sip, cli.control);
    }
    let rt = softphone::runtime()?;
    let result = rt.block_on(async move {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let fan = softphone::control::fan();
        tokio::spawn(headless::read_commands(
            tokio::io::stdin(),
            cmd_tx.clone(),
            ev_tx.clone(),
        ));
        if let Some(addr) = cli.control {
            let listener =
                std::net::TcpListener::bind(addr).with_context(|| format!("--control {addr}"))?;
            let (cmd_tx, ev_tx) = (cmd_tx.clone(), ev_tx.clone());
            softphone::control::serve(listener, fan.clone(), move |line| {
                headless::take(line, &cmd_tx, &ev_tx);
            });
        }
        let writer = tokio::spawn(headless::write_events(ev_rx, fan));
        engine::run(config, cli.sip, cmd_rx, ev_tx).await?;
        let _ = writer.await;
        Ok(())
    });
    // The stdin reader sits in a blocking read that only a closed stdin would end.
    rt.shutdown_background();
    result
}
