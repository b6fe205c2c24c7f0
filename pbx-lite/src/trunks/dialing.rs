//! The office's dialling plan for outside calls, pure: what a station dialled after the
//! access code becomes (E.164, or an emergency number as dialled), which toll class it is,
//! whether the station may call it, which trunk takes it, and how an outside caller's number
//! is shown so that a user can dial it back.

use std::collections::BTreeMap;

/// What a dialled number is, for toll restriction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    Emergency,
    Local,
    National,
    International,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Emergency => "emergency",
            Class::Local => "local",
            Class::National => "national",
            Class::International => "international",
        }
    }
}

/// May a station with toll restriction `toll` (`internal`, `local`, `national`,
/// `international`) call a number of class `class`? Emergency numbers always.
pub fn allowed(toll: &str, class: Class) -> bool {
    let most = match toll {
        "international" => Class::International,
        "national" => Class::National,
        "local" => Class::Local,
        _ => Class::Emergency,
    };
    class == Class::Emergency || class <= most
}

/// The office's numbering, from the `dial.*` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub country: String,
    pub national_prefix: String,
    pub international_prefix: String,
    pub area: String,
    pub emergency: Vec<String>,
}

/// A number a station dialled, made ready for a trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outside {
    /// `+<country><number>`, or an emergency number as dialled.
    pub number: String,
    pub class: Class,
}

impl Plan {
    pub fn from_settings(get: impl Fn(&str) -> String) -> Plan {
        Plan {
            country: get("dial.country_code"),
            national_prefix: get("dial.national_prefix"),
            international_prefix: get("dial.international_prefix"),
            area: get("dial.area_code"),
            emergency: get("dial.emergency")
                .split(',')
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect(),
        }
    }

    /// What `dialled` (the digits after the access code) is; None when it is no number.
    pub fn outside(&self, dialled: &str) -> Option<Outside> {
        if dialled.is_empty() || !dialled.bytes().all(|b| b.is_ascii_digit() || b == b'+') {
            return None;
        }
        if self.emergency.iter().any(|e| e == dialled) {
            return Some(Outside {
                number: dialled.to_string(),
                class: Class::Emergency,
            });
        }
        let (number, class) = if let Some(e164) = dialled.strip_prefix('+') {
            (e164.to_string(), self.class_of(e164))
        } else if let Some(rest) = self.strip(dialled, &self.international_prefix) {
            (rest.to_string(), self.class_of(rest))
        } else if let Some(rest) = self.strip(dialled, &self.national_prefix) {
            (format!("{}{rest}", self.country), Class::National)
        } else {
            (
                format!("{}{}{dialled}", self.country, self.area),
                Class::Local,
            )
        };
        (number.len() >= 3 && number.bytes().all(|b| b.is_ascii_digit())).then(|| Outside {
            number: format!("+{number}"),
            class,
        })
    }

    fn strip<'a>(&self, dialled: &'a str, prefix: &str) -> Option<&'a str> {
        (!prefix.is_empty())
            .then(|| dialled.strip_prefix(prefix))
            .flatten()
            .filter(|r| !r.is_empty())
    }

    /// The class of an E.164 number (without `+`) dialled in full.
    fn class_of(&self, e164: &str) -> Class {
        match e164.strip_prefix(self.country.as_str()) {
            Some(n) if !self.area.is_empty() && n.starts_with(&self.area) => Class::Local,
            Some(_) => Class::National,
            None => Class::International,
        }
    }

    /// An outside caller's number as a user of the office would dial it back (after the
    /// access code): national numbers with the national prefix, others with the
    /// international one. A number that is no E.164 one is shown as it came.
    pub fn display(&self, caller: &str) -> String {
        let Some(e164) = caller.strip_prefix('+') else {
            return caller.to_string();
        };
        match e164.strip_prefix(self.country.as_str()) {
            Some(n) if !n.is_empty() => format!("{}{n}", self.national_prefix),
            _ => format!("{}{e164}", self.international_prefix),
        }
    }

    /// A called number as the provider sent it, made E.164 (`+…`) to find its DID:
    /// national forms get the country code, a bare number is taken as E.164 without `+`.
    pub fn e164(&self, called: &str) -> String {
        if called.starts_with('+') {
            return called.to_string();
        }
        if let Some(rest) = self.strip(called, &self.international_prefix) {
            return format!("+{rest}");
        }
        if let Some(rest) = self.strip(called, &self.national_prefix) {
            return format!("+{}{rest}", self.country);
        }
        format!("+{called}")
    }
}

/// The trunk for `number` (E.164): the route with the longest prefix it starts with; `+`
/// matches every number. Prefixes in a dialled form are compared in E.164 through `plan`.
pub fn route<'a>(routes: &'a [(String, String)], number: &str, plan: &Plan) -> Option<&'a str> {
    routes
        .iter()
        .filter(|(prefix, _)| {
            let p = if prefix == "+" {
                "+".to_string()
            } else {
                plan.e164(prefix)
            };
            number.starts_with(&p)
        })
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, trunk)| trunk.as_str())
}

/// The DID `called` (E.164) is: its target, matched in E.164 whatever form it was stored in.
pub fn did<'a>(dids: &'a [(String, String)], called: &str, plan: &Plan) -> Option<&'a str> {
    let called = plan.e164(called);
    dids.iter()
        .find(|(n, _)| plan.e164(n) == called)
        .map(|(_, t)| t.as_str())
}

/// How many calls each trunk carries now.
pub type Counts = BTreeMap<String, u32>;

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            country: "49".into(),
            national_prefix: "0".into(),
            international_prefix: "00".into(),
            area: "30".into(),
            emergency: vec!["112".into(), "110".into()],
        }
    }

    #[test]
    fn dialled_numbers_become_e164_with_their_class() {
        let p = plan();
        for (dialled, number, class) in [
            ("112", "112", Class::Emergency),
            ("1234567", "+49301234567", Class::Local),
            ("030123456", "+4930123456", Class::National),
            ("089123456", "+4989123456", Class::National),
            ("0044201234567", "+44201234567", Class::International),
            ("0049301234", "+49301234", Class::Local),
            ("+33123456789", "+33123456789", Class::International),
        ] {
            assert_eq!(
                p.outside(dialled),
                Some(Outside {
                    number: number.into(),
                    class
                }),
                "{dialled}"
            );
        }
        assert_eq!(p.outside(""), None);
        assert_eq!(p.outside("12a"), None);
    }

    #[test]
    fn toll_restriction_always_lets_emergency_through() {
        use Class::*;
        for (toll, ok) in [
            ("internal", vec![Emergency]),
            ("local", vec![Emergency, Local]),
            ("national", vec![Emergency, Local, National]),
            (
                "international",
                vec![Emergency, Local, National, International],
            ),
        ] {
            for class in [Emergency, Local, National, International] {
                assert_eq!(
                    allowed(toll, class),
                    ok.contains(&class),
                    "{toll} {class:?}"
                );
            }
        }
    }

    #[test]
    fn routes_dids_and_caller_display() {
        let p = plan();
        let routes = vec![
            ("+".to_string(), "main".to_string()),
            ("+44".to_string(), "uk".to_string()),
            ("00331".to_string(), "paris".to_string()),
        ];
        assert_eq!(route(&routes, "+4930123", &p), Some("main"));
        assert_eq!(route(&routes, "+44201234", &p), Some("uk"));
        assert_eq!(route(&routes, "+33123456", &p), Some("paris"));
        assert_eq!(route(&[], "+4930123", &p), None);
        let dids = vec![
            ("+4930999100".to_string(), "201".to_string()),
            ("030999101".to_string(), "202".to_string()),
        ];
        assert_eq!(did(&dids, "+4930999100", &p), Some("201"));
        assert_eq!(did(&dids, "4930999101", &p), Some("202"));
        assert_eq!(did(&dids, "030999100", &p), Some("201"));
        assert_eq!(did(&dids, "+4930999199", &p), None);
        assert_eq!(p.display("+4930123456"), "030123456");
        assert_eq!(p.display("+44201234567"), "0044201234567");
        assert_eq!(p.display("anonymous"), "anonymous");
    }
}
