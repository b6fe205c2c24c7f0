//! The PBX's TLS identity (issue #17). An administrator may name a PEM certificate chain and
//! key (`tls.certificate`, `tls.private_key`); otherwise the office gets a CA of its own on
//! the first `serve` and a server certificate from it for the PBX's names and addresses,
//! kept beside the database (`DB.tls/`: `ca.pem` for phones to trust, `server.pem`, and the
//! keys, 0600 in a 0700 folder). A later start reuses them, and issues a new server
//! certificate from the same CA when the names change, so phones keep trusting the office.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::path::Path;

/// How long the office CA and a server certificate are good for (days). Phones reject
/// server certificates of more than 825 days (the CA/Browser rule many firmwares follow).
const CA_DAYS: i64 = 20 * 365;
const SERVER_DAYS: i64 = 825;

/// A certificate chain and its private key, as PEM.
#[derive(Debug, Clone)]
pub struct Identity {
    pub chain_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

pub use stations::secret::tls_dir as dir_of;

/// The administrator's files when both are named, else the office's own identity for
/// `names` (made or reused in `dir`). `today` is days since 1970-01-01.
pub fn identity(
    certificate: &str,
    private_key: &str,
    dir: &Path,
    names: &[String],
    today: i64,
) -> anyhow::Result<Identity> {
    match (certificate.is_empty(), private_key.is_empty()) {
        (false, false) => Ok(Identity {
            chain_pem: std::fs::read(certificate)
                .with_context(|| format!("tls.certificate {certificate}"))?,
            key_pem: std::fs::read(private_key)
                .with_context(|| format!("tls.private_key {private_key}"))?,
        }),
        (true, true) => office_identity(dir, names, today),
        _ => anyhow::bail!("tls.certificate and tls.private_key go together: set both or neither"),
    }
}

/// The office CA's subject: the same on every start, so a server certificate issued later
/// chains to the `ca.pem` phones already trust.
fn ca_params(today: i64) -> anyhow::Result<CertificateParams> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "pbx-lite office CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "pbx-lite");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca, today - 1, today + CA_DAYS);
    Ok(ca)
}

fn office_identity(dir: &Path, names: &[String], today: i64) -> anyhow::Result<Identity> {
    let file = |n: &str| dir.join(n);
    let wanted = names.join("\n");
    let kept = std::fs::read_to_string(file("names")).ok();
    if kept.as_deref() == Some(wanted.as_str())
        && let (Ok(chain_pem), Ok(key_pem)) = (
            std::fs::read(file("server.pem")),
            std::fs::read(file("server.key")),
        )
    {
        return Ok(Identity { chain_pem, key_pem });
    }
    let (ca_key, issuer) = office_ca(dir, today)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().map_or("pbx-lite", |n| n.as_str()),
    );
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut params, today - 1, today + SERVER_DAYS);
    let cert = params.signed_by(&key, &issuer, &ca_key)?;
    let ca_pem = std::fs::read(file("ca.pem")).context("ca.pem")?;
    let mut chain_pem = cert.pem().into_bytes();
    chain_pem.extend_from_slice(&ca_pem);
    write_private(&file("server.key"), key.serialize_pem().as_bytes())?;
    std::fs::write(file("server.pem"), &chain_pem)?;
    std::fs::write(file("names"), wanted)?;
    Ok(Identity {
        chain_pem,
        key_pem: key.serialize_pem().into_bytes(),
    })
}

/// The office CA's key and its certificate, made now when there is none yet.
fn office_ca(dir: &Path, today: i64) -> anyhow::Result<(KeyPair, rcgen::Certificate)> {
    private_dir(dir)?;
    let file = |n: &str| dir.join(n);
    let ca_key = match std::fs::read_to_string(file("ca.key")) {
        Ok(pem) => KeyPair::from_pem(&pem).context("ca.key")?,
        Err(_) => {
            let key = KeyPair::generate()?;
            let cert = ca_params(today)?.self_signed(&key)?;
            write_private(&file("ca.key"), key.serialize_pem().as_bytes())?;
            std::fs::write(file("ca.pem"), cert.pem())?;
            key
        }
    };
    let issuer = ca_params(today)?.self_signed(&ca_key)?;
    Ok((ca_key, issuer))
}

/// A client certificate from the office CA for a phone (mutual TLS, `tls.mutual`), its
/// common name `name` (the station, say). `today` is days since 1970-01-01.
pub fn client_identity(dir: &Path, name: &str, today: i64) -> anyhow::Result<Identity> {
    let (ca_key, issuer) = office_ca(dir, today)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut params, today - 1, today + SERVER_DAYS);
    let cert = params.signed_by(&key, &issuer, &ca_key)?;
    Ok(Identity {
        chain_pem: cert.pem().into_bytes(),
        key_pem: key.serialize_pem().into_bytes(),
    })
}

fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// Writes a file only its owner may read (0600): a private key.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| path.display().to_string())?;
    f.write_all(bytes)?;
    Ok(())
}

/// Valid from midnight UTC of day `from` to that of day `until` (days since 1970-01-01).
fn validity(p: &mut CertificateParams, from: i64, until: i64) {
    let (y, m, d) = ymd(from);
    p.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = ymd(until);
    p.not_after = rcgen::date_time_ymd(y, m, d);
}

/// Year, month and day of day `days` since 1970-01-01 (the proleptic Gregorian calendar;
/// H. Hinnant's `civil_from_days`).
fn ymd(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month as u8, day as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_dates() {
        assert_eq!(ymd(0), (1970, 1, 1));
        assert_eq!(ymd(-1), (1969, 12, 31));
        assert_eq!(ymd(11_016), (2000, 2, 29));
        assert_eq!(ymd(20_790), (2026, 12, 3));
    }

    #[test]
    fn the_office_ca_is_made_once_and_a_new_name_gets_a_certificate_from_it() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = tmp.path().join("office.db.tls");
        let names = vec!["pbx.office.test".to_string(), "192.168.77.1".to_string()];
        let first = identity("", "", &dir, &names, 20_790).unwrap_or_else(|e| panic!("{e}"));
        let ca = std::fs::read(dir.join("ca.pem")).unwrap_or_default();
        let mode =
            |n: &str| std::fs::metadata(dir.join(n)).map_or(0, |m| m.permissions().mode() & 0o777);
        assert_eq!((mode("ca.key"), mode("server.key")), (0o600, 0o600));
        assert_eq!(
            std::fs::metadata(&dir).map_or(0, |m| m.permissions().mode() & 0o777),
            0o700
        );
        // The same names: the same certificate.
        let again = identity("", "", &dir, &names, 20_800).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.chain_pem, first.chain_pem);
        // Another name: a new certificate, from the same CA, which phones still trust.
        let more = [names.clone(), vec!["10.0.0.1".to_string()]].concat();
        let other = identity("", "", &dir, &more, 20_800).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(other.chain_pem, first.chain_pem);
        assert_eq!(std::fs::read(dir.join("ca.pem")).unwrap_or_default(), ca);
        // Its chain and key make a TLS server (a handshake against ca.pem alone is in
        // tests/tls.rs).
        assert!(sip::transport::TlsSettings::server(&other.chain_pem, &other.key_pem).is_ok());
        // Only one of the two files named: refused.
        assert!(identity("/x.pem", "", &dir, &names, 20_800).is_err());
    }
}
