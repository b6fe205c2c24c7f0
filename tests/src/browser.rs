//! A real browser for the web admin's tests: Debian's Chromium, headless, driven through
//! chromedriver (WebDriver, with the fantoccini client) from a host of a namespace network —
//! the office manager's desk. chromedriver listens on that host's loopback; socat there
//! passes it to a Unix socket (sockets in files cross namespaces), and a bridge here gives
//! the test a loopback port. Calls are blocking: each waits on its own runtime.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use crate::netns::Net;
use crate::process::Kill;
use fantoccini::{Client, ClientBuilder, Locator};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Chromium on a host of a namespace network, at a site (`https://192.168.77.1:8443`).
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    /// Where chromedriver answers, from here.
    driver_url: String,
    site: String,
    stop: Arc<AtomicBool>,
    bridge_port: u16,
    _driver: Kill,
    _relay: Kill,
}

/// Copies between a TCP connection here and the Unix socket, both ways, until either ends.
fn pipe(tcp: TcpStream, unix: UnixStream) {
    let (mut t2, mut u2) = (tcp.try_clone().unwrap(), unix.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut t2, &mut u2);
        let _ = u2.shutdown(std::net::Shutdown::Write);
    });
    let (mut t, mut u) = (tcp, unix);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut u, &mut t);
        let _ = t.shutdown(std::net::Shutdown::Write);
    });
}

/// A loopback port here that leads to the Unix socket `sock`, until `stop` is set.
fn bridge(sock: PathBuf, stop: Arc<AtomicBool>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let (Ok(c), Ok(u)) = (c, UnixStream::connect(&sock)) else {
                continue;
            };
            pipe(c, u);
        }
    });
    port
}

impl Browser {
    /// Starts chromedriver and Chromium on `host` of `net`, for pages of `site`.
    pub fn start(net: &Net, host: &str, site: &str) -> Browser {
        let sock = net.path(&format!("webdriver-{host}.sock"));
        let driver = net
            .command(host, "chromedriver")
            .args(["--port=9515", "--log-level=WARNING"])
            // Chromium runs as its child: stopped with it, as a group.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(net.path("chromedriver.log")).unwrap())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; scripts/setup installs it)");
        let relay = net
            .command(host, "socat")
            .arg(format!("UNIX-LISTEN:{},fork", sock.display()))
            .arg("TCP:127.0.0.1:9515")
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat");
        let stop = Arc::new(AtomicBool::new(false));
        let bridge_port = bridge(sock, stop.clone());
        let driver_url = format!("http://127.0.0.1:{bridge_port}");
        let t0 = Instant::now();
        loop {
            let ready = ureq::get(&format!("{driver_url}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .is_some_and(|b| b.contains("\"ready\":true"));
            if ready {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "chromedriver did not start:\n{}",
                std::fs::read_to_string(net.path("chromedriver.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = net.path(&format!("chromium-{host}"));
        let caps = serde_json::json!({
            "browserName": "chrome",
            // The office's own CA signed the admin's certificate; this browser does not know it.
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900",
                         "--no-first-run", "--autoplay-policy=no-user-gesture-required",
                         format!("--user-data-dir={}", profile.display())],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
            // A page that does not load fails the test in seconds, not chromedriver's 300.
            "timeouts": {"pageLoad": 30000, "script": 30000, "implicit": 0},
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps.as_object().unwrap().clone())
                    .connect(&driver_url),
            )
            .expect("a Chromium session");
        Browser {
            rt,
            client: Some(client),
            driver_url,
            site: site.trim_end_matches('/').to_string(),
            stop,
            bridge_port,
            _driver: Kill(driver),
            _relay: Kill(relay),
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Opens `path` of the site.
    pub fn goto(&self, path: &str) {
        self.rt
            .block_on(self.c().goto(&format!("{}{path}", self.site)))
            .unwrap();
    }

    /// The path (and query) of the page shown.
    pub fn path(&self) -> String {
        let u = self.rt.block_on(self.c().current_url()).unwrap();
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }

    /// Types `text` into the field `css` (emptied first).
    pub fn fill(&self, css: &str, text: &str) {
        self.rt.block_on(async {
            let e = self.c().find(Locator::Css(css)).await.unwrap();
            e.clear().await.unwrap();
            e.send_keys(text).await.unwrap();
        });
    }

    /// Chooses the option of value `value` in the list `css`.
    pub fn select(&self, css: &str, value: &str) {
        self.rt.block_on(async {
            let e = self.c().find(Locator::Css(css)).await.unwrap();
            e.select_by_value(value).await.unwrap();
        });
    }

    pub fn click(&self, css: &str) {
        self.rt.block_on(async {
            let e = self.c().find(Locator::Css(css)).await.unwrap();
            e.click().await.unwrap();
        });
    }

    /// The text of the first element `css`, or None when there is none.
    pub fn text(&self, css: &str) -> Option<String> {
        self.rt.block_on(async {
            let e = self.c().find(Locator::Css(css)).await.ok()?;
            e.text().await.ok()
        })
    }

    /// Waits (up to `limit`) until the element `css` holds `needle`; its text.
    pub fn wait_text(&self, css: &str, needle: &str, limit: Duration) -> String {
        let t0 = Instant::now();
        loop {
            let t = self.text(css).unwrap_or_default();
            if t.contains(needle) {
                return t;
            }
            assert!(
                t0.elapsed() < limit,
                "{css} never showed {needle:?}; it shows {t:?} on {}",
                self.path()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The page's HTML as the browser holds it now.
    pub fn source(&self) -> String {
        self.rt.block_on(self.c().source()).unwrap()
    }

    /// Runs `script` in the page; what it returns.
    pub fn execute(&self, script: &str) -> serde_json::Value {
        self.rt
            .block_on(self.c().execute(script, Vec::new()))
            .unwrap()
    }

    /// The text of an open alert, confirm or prompt, if one is open.
    pub fn alert(&self) -> Option<String> {
        self.rt.block_on(self.c().get_alert_text()).ok()
    }

    /// Accepts the open confirm dialog.
    pub fn accept_alert(&self) {
        self.rt.block_on(self.c().accept_alert()).unwrap();
    }

    /// The browser's console since the last call: `LEVEL message` lines (CSP violations,
    /// script errors, console.log).
    pub fn console(&self) -> Vec<String> {
        let id = self
            .rt
            .block_on(self.c().session_id())
            .unwrap()
            .unwrap_or_default();
        let body = ureq::post(&format!("{}/session/{id}/se/log", self.driver_url))
            .header("content-type", "application/json")
            .send(r#"{"type":"browser"}"#)
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["value"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                format!(
                    "{} {}",
                    e["level"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    /// Saves what the window shows as a PNG.
    pub fn screenshot(&self, path: &Path) {
        let png = self.rt.block_on(self.c().screenshot()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Sets the window's size (a phone's small screen, say).
    pub fn resize(&self, width: u32, height: u32) {
        self.rt
            .block_on(self.c().set_window_size(width, height))
            .unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the bridge's accept so that it sees the stop.
        let _ = TcpStream::connect(("127.0.0.1", self.bridge_port)).map(|mut s| {
            let _ = s.write_all(b"");
            let mut b = [0u8; 1];
            let _ = s.set_read_timeout(Some(Duration::from_millis(10)));
            let _ = s.read(&mut b);
        });
    }
}
