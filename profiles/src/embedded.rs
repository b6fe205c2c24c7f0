//! The shipped profiles, compiled into the binary. A user profile directory with the same
//! relative paths overrides any of them at run time.

/// (path relative to `profiles/`, contents)
pub(crate) const FILES: &[(&str, &str)] = &[
    (
        "cisco-79x0/profile.toml",
        include_str!("../cisco-79x0/profile.toml"),
    ),
    (
        "cisco-79x0/SIPDefault.cnf.j2",
        include_str!("../cisco-79x0/SIPDefault.cnf.j2"),
    ),
    (
        "cisco-79x0/SIP_MAC.cnf.j2",
        include_str!("../cisco-79x0/SIP_MAC.cnf.j2"),
    ),
    (
        "cisco-79x0/dialplan.xml.j2",
        include_str!("../cisco-79x0/dialplan.xml.j2"),
    ),
    (
        "cisco-79x0/RINGLIST.DAT.j2",
        include_str!("../cisco-79x0/RINGLIST.DAT.j2"),
    ),
    (
        "cisco-79x0/syncinfo.xml.j2",
        include_str!("../cisco-79x0/syncinfo.xml.j2"),
    ),
    (
        "cisco-79x0/OS79XX.TXT.j2",
        include_str!("../cisco-79x0/OS79XX.TXT.j2"),
    ),
    (
        "cisco-79x0/XMLDefault.cnf.xml.j2",
        include_str!("../cisco-79x0/XMLDefault.cnf.xml.j2"),
    ),
    (
        "audiocodes-4xxhd/profile.toml",
        include_str!("../audiocodes-4xxhd/profile.toml"),
    ),
    (
        "audiocodes-4xxhd/mac.cfg.j2",
        include_str!("../audiocodes-4xxhd/mac.cfg.j2"),
    ),
    ("xlite/profile.toml", include_str!("../xlite/profile.toml")),
    (
        "xlite/settings.cps.j2",
        include_str!("../xlite/settings.cps.j2"),
    ),
    ("xlite/bria.ini.j2", include_str!("../xlite/bria.ini.j2")),
    (
        "softphone/profile.toml",
        include_str!("../softphone/profile.toml"),
    ),
    (
        "softphone/softphone.toml.j2",
        include_str!("../softphone/softphone.toml.j2"),
    ),
];

/// The model families, one folder each.
pub(crate) const FAMILIES: &[&str] = &["cisco-79x0", "audiocodes-4xxhd", "xlite", "softphone"];
