//! DHCP snippets that point phones at this server: option 66 (TFTP server name), 150 (Cisco
//! TFTP server addresses) and 160 (AudioCodes provisioning URL), for dnsmasq, ISC dhcpd and
//! Kea. The dnsmasq form is checked with `dnsmasq --test` in the test suite.

use std::net::Ipv4Addr;

/// The DHCP servers we write for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpServer {
    Dnsmasq,
    Isc,
    Kea,
}

impl DhcpServer {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "dnsmasq" => Some(DhcpServer::Dnsmasq),
            "isc" => Some(DhcpServer::Isc),
            "kea" => Some(DhcpServer::Kea),
            _ => None,
        }
    }
}

/// The snippet for `server`, pointing at `address` (TFTP) and `http` (the URL phones using
/// option 160 fetch from).
/// The address phones should be pointed at when none is given: `pbx.host` when it is an
/// IPv4 address, else the address of the interface the default route leaves by (a route
/// lookup, nothing is sent). With the reason, to tell the user which it chose.
pub fn own_address(
    settings: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<(Ipv4Addr, &'static str)> {
    if let Some(a) = settings.get("pbx.host").and_then(|h| h.parse().ok()) {
        return Ok((a, "the pbx.host setting"));
    }
    // Any outside address finds the default route; TEST-NET-1 is never really reached.
    match sip::transport::route_toward(Ipv4Addr::new(192, 0, 2, 1).into()) {
        Some(std::net::IpAddr::V4(a)) if !a.is_loopback() => Ok((
            a,
            "the address of the interface the default route leaves by",
        )),
        _ => anyhow::bail!(
            "--address: this machine has no default route to tell its LAN address by; \
             give --address, or set pbx.host"
        ),
    }
}

pub fn snippet(server: DhcpServer, address: Ipv4Addr, http: &str) -> String {
    match server {
        DhcpServer::Dnsmasq => format!(
            "# office-phones: point desk phones at the provisioning server {address}\n\
# option 66 (TFTP server name; quoted so it is sent as text)\n\
dhcp-option=66,\"{address}\"\n\
# option 150 for Cisco phones (by vendor class), option 160 for AudioCodes (by MAC prefix)\n\
dhcp-vendorclass=set:cisco,IP Phone CP-79\n\
dhcp-option=tag:cisco,150,{address}\n\
dhcp-mac=set:audiocodes,00:90:8f:*:*:*\n\
dhcp-option-force=tag:audiocodes,160,\"{http}/\"\n"
        ),
        DhcpServer::Isc => format!(
            "# office-phones: point desk phones at the provisioning server {address}\n\
option voip-tftp-servers code 150 = array of ip-address;\n\
option provisioning-url code 160 = text;\n\
option tftp-server-name \"{address}\";\n\
class \"cisco-79x0\" {{\n\
  match if substring(option vendor-class-identifier, 0, 28) = \"Cisco Systems, Inc. IP Phone\";\n\
  option voip-tftp-servers {address};\n\
}}\n\
class \"audiocodes\" {{\n\
  match if substring(hardware, 1, 3) = 00:90:8f;\n\
  option provisioning-url \"{http}/\";\n\
}}\n"
        ),
        DhcpServer::Kea => format!(
            "{{\n  \"Dhcp4\": {{\n    \"option-def\": [\n\
      {{ \"name\": \"cisco-tftp-servers\", \"code\": 150, \"type\": \"ipv4-address\", \"array\": true, \"space\": \"dhcp4\" }},\n\
      {{ \"name\": \"provisioning-url\", \"code\": 160, \"type\": \"string\", \"space\": \"dhcp4\" }}\n    ],\n\
    \"option-data\": [\n\
      {{ \"name\": \"tftp-server-name\", \"data\": \"{address}\" }},\n\
      {{ \"name\": \"cisco-tftp-servers\", \"data\": \"{address}\", \"always-send\": true }},\n\
      {{ \"name\": \"provisioning-url\", \"data\": \"{http}/\", \"always-send\": true }}\n    ]\n  }}\n}}\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_address_the_pbx_host_setting_is_used() {
        let mut settings = std::collections::BTreeMap::new();
        settings.insert("pbx.host".to_string(), "10.1.2.3".to_string());
        let (a, why) = own_address(&settings).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 1, 2, 3));
        assert!(why.contains("pbx.host"));
        // `auto` falls to the route lookup, which never names loopback.
        settings.insert("pbx.host".to_string(), "auto".to_string());
        if let Ok((a, _)) = own_address(&settings) {
            assert!(!a.is_loopback() && !a.is_unspecified());
        }
    }

    #[test]
    fn kea_snippet_is_json() {
        let s = snippet(
            DhcpServer::Kea,
            Ipv4Addr::new(192, 0, 2, 10),
            "http://192.0.2.10",
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["Dhcp4"]["option-data"][0]["data"], "192.0.2.10");
    }
}
