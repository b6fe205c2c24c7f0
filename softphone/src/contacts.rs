//! Contacts: the configuration's own `[[contact]]` list and the provisioner's directory (the
//! Cisco XML directory every station of the office is in, `directory.xml`, read page by page
//! from the server that served the profile).

use serde::{Deserialize, Serialize};

/// One name to call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Contact {
    pub name: String,
    pub number: String,
    /// `local` (the configuration) or `directory` (the provisioner's).
    #[serde(default = "local")]
    pub source: String,
}

fn local() -> String {
    "local".into()
}

/// The entries of one `CiscoIPPhoneDirectory` page, and whether it offers a next page.
pub fn parse_directory(xml: &str) -> Result<(Vec<Contact>, bool), String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut out, mut next) = (Vec::new(), false);
    let (mut path, mut text) = (Vec::<String>::new(), String::new());
    let (mut name, mut number) = (String::new(), String::new());
    let bad = |e: &dyn std::fmt::Display| format!("directory: {e}");
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(t) => {
                path.push(String::from_utf8_lossy(t.name().as_ref()).into());
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.xml_content().map_err(|e| bad(&e))?),
            // Entities come apart from the text around them: `&amp;`, `&#38;`.
            Event::GeneralRef(r) => {
                let entity = r.decode().map_err(|e| bad(&e))?;
                match r.resolve_char_ref().map_err(|e| bad(&e))? {
                    Some(c) => text.push(c),
                    None => text.push_str(
                        quick_xml::escape::resolve_predefined_entity(&entity)
                            .ok_or_else(|| bad(&format!("unknown entity &{entity};")))?,
                    ),
                }
            }
            Event::End(_) => {
                let value = std::mem::take(&mut text).trim().to_string();
                let n = path.len();
                let parent = if n >= 2 { path[n - 2].as_str() } else { "" };
                match (parent, path.last().map(String::as_str).unwrap_or_default()) {
                    ("DirectoryEntry", "Name") => name = value,
                    ("DirectoryEntry", "Telephone") => number = value,
                    ("SoftKeyItem", "Name") if value == "Next" => next = true,
                    (_, "DirectoryEntry") if !number.is_empty() => out.push(Contact {
                        name: std::mem::take(&mut name),
                        number: std::mem::take(&mut number),
                        source: "directory".into(),
                    }),
                    _ => {}
                }
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err("directory: the XML ends early".into());
    }
    Ok((out, next))
}

/// The directory of the provisioner at `profile_url` (the URL the profile came from), every
/// page of it (at most 100), asked for with the station's user ID and password (the
/// provisioner shows it only to the office's phones).
pub fn fetch_directory(
    profile_url: &str,
    auth: Option<(&str, &str)>,
) -> Result<Vec<Contact>, String> {
    let base = base_of(profile_url).ok_or_else(|| format!("{profile_url}: not an http URL"))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let mut all = Vec::new();
    for page in 1..=100 {
        let url = format!("{base}/directory.xml?page={page}");
        let mut request = agent.get(&url);
        if let Some((user, password)) = auth {
            request = request.header("Authorization", crate::config::basic_auth(user, password));
        }
        let xml = request
            .call()
            .map_err(|e| format!("{url}: {e}"))?
            .into_body()
            .read_to_string()
            .map_err(|e| format!("{url}: {e}"))?;
        let (entries, next) = parse_directory(&xml).map_err(|e| format!("{url}: {e}"))?;
        all.extend(entries);
        if !next {
            break;
        }
    }
    Ok(all)
}

/// `http://host:port` of a URL.
fn base_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let host = rest.split('/').next().filter(|h| !h.is_empty())?;
    Some(format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_pages_read() {
        let xml = r#"<?xml version="1.0" encoding="ISO-8859-1"?><CiscoIPPhoneDirectory>
<Title>Office</Title><Prompt>Page 1 of 2</Prompt>
<DirectoryEntry><Name>Sales &amp; Co</Name><Telephone>202</Telephone></DirectoryEntry>
<DirectoryEntry><Name>203</Name><Telephone>203</Telephone></DirectoryEntry>
<SoftKeyItem><Name>Dial</Name><URL>SoftKey:Dial</URL><Position>1</Position></SoftKeyItem>
<SoftKeyItem><Name>Next</Name><URL>http://x/directory.xml?page=2</URL><Position>4</Position></SoftKeyItem>
</CiscoIPPhoneDirectory>"#;
        let (entries, next) = parse_directory(xml).unwrap();
        assert!(next);
        assert_eq!(entries.len(), 2);
        assert_eq!(
            (entries[0].name.as_str(), entries[0].number.as_str()),
            ("Sales & Co", "202")
        );
        assert!(parse_directory("<CiscoIPPhoneDirectory><DirectoryEntry>").is_err());
        assert_eq!(
            base_of("http://10.0.0.2:8080/softphone-201.toml").as_deref(),
            Some("http://10.0.0.2:8080")
        );
        assert_eq!(base_of("ftp://x/y"), None);
    }
}
