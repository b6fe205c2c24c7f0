//! [`Office`]: the station database and the profiles behind one lock, and the one function
//! every way of asking for a file goes through — TFTP, HTTP and `provisioner render` — so
//! they return the same bytes.

use profiles::{Input, Key, Profiles, Server, Target};
use stations::db::LogEntry;
use stations::{Db, Station, StationError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The answer to a file request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    Found(Vec<u8>),
    /// No such file; for a MAC no station has, the phone is remembered as unknown.
    NotFound,
    /// The file holds a user's credentials and must be asked for with them (over HTTP).
    Forbidden,
}

/// A request after its database reads.
enum Job {
    Done(Fetch),
    Render {
        target: Target,
        stations: Vec<Station>,
        settings: BTreeMap<String, String>,
        starts: Vec<String>,
    },
}

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Asker {
    /// `tftp`, `http` or `cli`.
    pub protocol: &'static str,
    pub address: String,
    /// The address the request reached us on: what `pbx.host = auto` stands for.
    pub local_host: String,
    /// HTTP basic-auth credentials, if given.
    pub credentials: Option<(String, String)>,
}

/// The shared state of the provisioning servers.
pub struct Office {
    db: Mutex<Db>,
    /// Failed HTTP credentials, by address and by user (as the PBX counts SIP guesses).
    throttle: Mutex<sip::throttle::Throttle>,
    profiles: Profiles,
    /// Static files (firmware images, ring tones) served as they are.
    files: Option<PathBuf>,
}

impl Office {
    pub fn new(db: Db, profiles: Profiles) -> Self {
        Office {
            db: Mutex::new(db),
            throttle: Mutex::new(sip::throttle::Throttle::new()),
            profiles,
            files: None,
        }
    }

    /// Also serves the files under `root` (firmware, rings), never anything outside it.
    pub fn with_files(mut self, root: &Path) -> std::io::Result<Self> {
        self.files = Some(root.canonicalize()?);
        Ok(self)
    }

    /// A static file by name (exact, else case-insensitive), if it lies inside the root.
    fn static_file(&self, name: &str) -> Option<Vec<u8>> {
        let root = self.files.as_ref()?;
        let rel = name.trim_start_matches('/');
        if rel.is_empty() || rel.split(['/', '\\']).any(|p| p == ".." || p.is_empty()) {
            return None;
        }
        let mut path = root.join(rel);
        if !path.is_file() {
            let (dir, file) = match rel.rsplit_once('/') {
                Some((d, f)) => (root.join(d), f),
                None => (root.clone(), rel),
            };
            path = std::fs::read_dir(dir)
                .ok()?
                .filter_map(Result::ok)
                .find(|e| e.file_name().to_string_lossy().eq_ignore_ascii_case(file))?
                .path();
        }
        let real = path.canonicalize().ok()?;
        if !real.starts_with(root) || !real.is_file() {
            return None; // a symlink out of the root, or a directory
        }
        std::fs::read(real).ok()
    }

    pub fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn profiles(&self) -> &Profiles {
        &self.profiles
    }

    /// Settings with defaults, as templates see them.
    pub fn settings(db: &Db) -> Result<BTreeMap<String, String>, StationError> {
        Ok(db.settings()?.into_iter().collect())
    }

    /// The PBX and HTTP addresses phones are given (without the office CA: see
    /// [`Office::with_ca`]).
    pub fn server(settings: &BTreeMap<String, String>, local_host: &str) -> Server {
        let get = |k: &str| settings.get(k).cloned().unwrap_or_default();
        let host = match get("pbx.host").as_str() {
            "auto" | "" => local_host.to_string(),
            h => h.to_string(),
        };
        let http_port = get("provisioning.http_port");
        let url_host = if host.contains(':') {
            format!("[{host}]") // an IPv6 literal
        } else {
            host.clone()
        };
        let http = if http_port == "80" {
            format!("http://{url_host}")
        } else {
            format!("http://{url_host}:{http_port}")
        };
        Server {
            host,
            port: get("pbx.port").parse().unwrap_or(5060),
            http,
            tls_port: get("pbx.tls_port").parse().unwrap_or(5061),
            ca: String::new(),
            ca_sha256: String::new(),
        }
    }

    /// `server` with the office CA the PBX made beside the database at `db` (`DB.tls/ca.pem`)
    /// and its fingerprint, for profiles of phones on TLS; as it was without one yet.
    pub fn with_ca(mut server: Server, db: &Path) -> Server {
        let ca = std::fs::read_to_string(stations::secret::tls_dir(db).join("ca.pem"))
            .unwrap_or_default();
        if let Some(print) = sip::transport::fingerprints(ca.as_bytes())
            .ok()
            .and_then(|f| f.into_iter().next())
        {
            server.ca = ca;
            server.ca_sha256 = print;
        }
        server
    }

    /// Renders `name` for `asker` in `year`, logs the request, and remembers unknown phones.
    pub fn fetch(&self, name: &str, asker: &Asker, year: i32, now: i64) -> Fetch {
        // Read under the lock, render without it (rendering needs no database), log under it.
        let job = self.prepare(&self.db(), name, asker, now);
        let result = match job {
            Ok(Job::Done(f)) => Ok(f),
            Ok(Job::Render {
                target,
                stations,
                settings,
                starts,
            }) => {
                let db_path = self.db().path().to_path_buf();
                let server = Self::with_ca(Self::server(&settings, &asker.local_host), &db_path);
                let input = Input {
                    settings: &settings,
                    server: &server,
                    stations: &stations,
                    number_starts: &starts,
                    year,
                };
                match self.profiles.render(&target, &input) {
                    Ok(Some(bytes)) => Ok(Fetch::Found(bytes)),
                    Ok(None) => Ok(Fetch::NotFound),
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        if asker.protocol != "cli" {
            // Renders from the command line are not requests; everything else is logged.
            let (bytes, outcome) = match &result {
                Ok(Fetch::Found(b)) => (b.len() as i64, "sent".to_string()),
                Ok(Fetch::NotFound) => (0, "not found".into()),
                Ok(Fetch::Forbidden) => (0, "forbidden".into()),
                Err(e) => (0, format!("error: {e}")),
            };
            let _ = self.db().log(&LogEntry {
                at: now,
                address: asker.address.clone(),
                protocol: asker.protocol.to_string(),
                file: name.to_string(),
                bytes,
                result: outcome,
            });
        }
        result.unwrap_or(Fetch::NotFound)
    }

    /// Everything a request needs from the database, or its answer when it needs no render.
    fn prepare(&self, db: &Db, name: &str, asker: &Asker, now: i64) -> Result<Job, StationError> {
        let Some(target) = self.profiles.resolve(name) else {
            return Ok(Job::Done(
                self.static_file(name).map_or(Fetch::NotFound, Fetch::Found),
            ));
        };
        let stations = self.stations_for(db, &target)?;
        // Credentials first: a file for a station that does not exist is refused exactly as
        // one asked for without the right credentials, so nobody learns which exist.
        if target.spec.http_only
            && asker.protocol != "cli"
            && !self.credentials_ok(db, asker, &stations, now)
        {
            return Ok(Job::Done(Fetch::Forbidden));
        }
        if stations.is_empty() && target.key != Key::Global {
            if let Key::Mac(mac) = &target.key {
                db.record_unknown(mac, &asker.address, name, now)?;
            }
            return Ok(Job::Done(Fetch::NotFound));
        }
        Ok(Job::Render {
            target,
            stations,
            settings: Self::settings(db)?,
            starts: db.number_starts()?,
        })
    }

    /// Do `asker`'s credentials belong to one of `stations`? Never over TFTP. Wrong ones
    /// count against the address and the user as SIP guesses do (the same limits); a blocked
    /// address is refused even the right ones, and each refusal goes to the access log.
    fn credentials_ok(&self, db: &Db, asker: &Asker, stations: &[Station], now: i64) -> bool {
        let Some((user, password)) = asker.credentials.as_ref() else {
            return false;
        };
        if asker.protocol == "tftp" {
            return false;
        }
        let Ok(ip) = asker.address.parse::<std::net::IpAddr>() else {
            return false;
        };
        let mut throttle = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        let log = |reason: &str| {
            let _ = db.log_access(&stations::db::Access {
                at: now,
                address: ip.to_string(),
                caller: user.clone(),
                reason: format!("HTTP {reason}"),
            });
        };
        if let Some(why) = throttle.barred(now, ip, user, false) {
            log(why.reason());
            return false;
        }
        let right = stations
            .iter()
            .any(|s| s.user_id == *user && constant_eq(&s.password, password));
        if right {
            throttle.succeeded(ip);
            return true;
        }
        let setting =
            |k: &str, d: i64| db.setting(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
        let limits = sip::throttle::Limits {
            per_address: u32::try_from(setting("security.register_retry_limit", 5)).unwrap_or(5),
            block_seconds: setting("security.register_block_seconds", 60),
        };
        let outcome = throttle.fail(now, ip, user, limits);
        log(if outcome.address_blocked {
            "wrong credentials; retry limit reached, blocked"
        } else {
            "wrong credentials"
        });
        false
    }

    /// The station whose user ID and password `asker` gave, if they are right. Unknown users
    /// and wrong passwords take the same work and count alike against the address and the
    /// user name, so a login reveals neither which users exist nor anything by its timing.
    pub fn login(&self, asker: &Asker, now: i64) -> Option<Station> {
        let db = self.db();
        let all = db.list().ok()?;
        if !self.credentials_ok(&db, asker, &all, now) {
            return None;
        }
        let user = &asker.credentials.as_ref()?.0;
        all.into_iter().find(|s| s.user_id == *user)
    }

    /// May `asker` read the office directory (every name and number)? With `directory.access`
    /// = `phones`, only from an address a station is registered from now (a desk phone asks
    /// without credentials), or with a station's credentials (checked as [`Office::login`]).
    pub fn may_read_directory(&self, asker: &Asker, now: i64) -> bool {
        let registered_here = {
            let db = self.db();
            if db.setting("directory.access").is_ok_and(|v| v == "anyone") {
                return true;
            }
            db.registrations().unwrap_or_default().iter().any(|r| {
                r.expires_at > now
                    && stations::db::source_addr(&r.source)
                        .is_some_and(|a| a.ip().to_string() == asker.address)
            })
        };
        registered_here || (asker.credentials.is_some() && self.login(asker, now).is_some())
    }

    /// The stations a target is rendered for: those of the phone's MAC whose model belongs
    /// to the target's family, or the one station of a number.
    fn stations_for(&self, db: &Db, target: &Target) -> Result<Vec<Station>, StationError> {
        let in_family =
            |s: &Station| self.profiles.family_of(s.model.name()) == Some(target.family.as_str());
        Ok(match &target.key {
            Key::Global => Vec::new(),
            Key::Mac(mac) => db.by_mac(mac)?.into_iter().filter(in_family).collect(),
            Key::Number(n) => db.get(n).ok().filter(in_family).into_iter().collect(),
        })
    }
}

/// Compares secrets in time independent of where they differ.
fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
