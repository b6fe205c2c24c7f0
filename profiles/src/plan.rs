//! What templates get computed from settings, not typed by hand: the dial plan derived from
//! the number plan (Cisco `dialplan.xml` templates, the AudioCodes digit map) and the
//! daylight-saving dates of a rule for a given year.

use serde::Serialize;
use std::collections::BTreeMap;

/// One dial-plan entry: a Cisco pattern (`.` one digit, `*` one or more) and its timeout.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DialRule {
    pub pattern: String,
    pub timeout: u32,
}

fn dots(n: usize) -> String {
    ".".repeat(n)
}

/// The dial plan of the number plan: station numbers and feature codes dial at once when
/// complete; trunk calls and anything else after `dialplan.timeout` seconds. `station_numbers`
/// may be the numbers or just their first digits.
pub fn dial_plan(settings: &BTreeMap<String, String>, station_numbers: &[String]) -> Vec<DialRule> {
    let get = |k: &str| settings.get(k).cloned().unwrap_or_default();
    let digits: usize = get("numberplan.station_digits").parse().unwrap_or(3);
    let timeout: u32 = get("dialplan.timeout").parse().unwrap_or(5);
    let mut rules: Vec<DialRule> = Vec::new();
    // `code` is dialled literally (a `*` in it escaped); `wild` is pattern syntax.
    let mut push = |code: &str, wild: &str, timeout: u32| {
        let pattern = format!("{}{wild}", code.replace('*', "\\*"));
        if !rules.iter().any(|r| r.pattern == pattern) {
            rules.push(DialRule { pattern, timeout });
        }
    };
    let mut firsts: Vec<String> = station_numbers
        .iter()
        .filter_map(|n| n.get(..1))
        .map(str::to_string)
        .collect();
    firsts.sort_unstable();
    firsts.dedup();
    if firsts.is_empty() {
        firsts.push("2".into());
    }
    for f in &firsts {
        push(f, &dots(digits - 1), 0);
    }
    for k in [
        "forward_clear",
        "conference",
        "pickup_my_group",
        "voicemail",
    ] {
        push(&get(&format!("numberplan.{k}")), "", 0);
    }
    for k in [
        "forward_all",
        "forward_busy",
        "forward_noanswer",
        "forward_busy_noanswer",
        "park",
        "retrieve",
        "pickup_directed",
    ] {
        push(&get(&format!("numberplan.{k}")), &dots(digits), 0);
    }
    push(&get("numberplan.dnd"), ".", 0);
    push(&get("numberplan.pickup_group"), "*", timeout);
    push(&get("numberplan.trunk"), "*", timeout);
    push("", "*", timeout);
    rules
}

/// The same plan as an AudioCodes digit map (`x` any digit, `.` repeat, `T` timeout).
pub fn digit_map(rules: &[DialRule]) -> String {
    rules
        .iter()
        .map(|r| {
            let p = r
                .pattern
                .replace("\\*", "S")
                .replace('.', "x")
                .replace('*', "x.")
                .replace('S', "*");
            if r.timeout > 0 { format!("{p}T") } else { p }
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// Daylight-saving transitions of a rule, in the forms Cisco and AudioCodes want.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Dst {
    /// Cisco: month name, week of month (8 = last), `HH/MM` local time.
    pub start_month: &'static str,
    pub start_week: u8,
    pub start_time: String,
    pub stop_month: &'static str,
    pub stop_week: u8,
    pub stop_time: String,
    /// AudioCodes: the dates of the year rendered for, local hours.
    pub start_month_num: u32,
    pub start_day: u32,
    pub start_hour: i32,
    pub stop_month_num: u32,
    pub stop_day: u32,
    pub stop_hour: i32,
}

/// Day of the week, 0 = Sunday (Sakamoto).
fn weekday(year: i32, month: u32, day: u32) -> u32 {
    const T: [i32; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let y = if month < 3 { year - 1 } else { year };
    ((y + y / 4 - y / 100 + y / 400 + T[(month - 1) as usize] + day as i32).rem_euclid(7)) as u32
}

fn last_sunday(year: i32, month: u32, days: u32) -> u32 {
    days - weekday(year, month, days)
}

fn nth_sunday(year: i32, month: u32, n: u32) -> u32 {
    let first = (7 - weekday(year, month, 1)) % 7 + 1;
    first + 7 * (n - 1)
}

/// The transitions of `rule` (`eu`, `us`; anything else: none) for `year`, in a zone
/// `offset_min` minutes from GMT.
pub fn dst(rule: &str, year: i32, offset_min: i32) -> Option<Dst> {
    match rule {
        "eu" => {
            // 01:00 UTC both ways: local standard time, then local summer time.
            let start_hour = (60 + offset_min).div_euclid(60).rem_euclid(24);
            let stop_hour = (start_hour + 1).rem_euclid(24);
            Some(Dst {
                start_month: "Mar",
                start_week: 8,
                start_time: format!("{start_hour:02}/00"),
                stop_month: "Oct",
                stop_week: 8,
                stop_time: format!("{stop_hour:02}/00"),
                start_month_num: 3,
                start_day: last_sunday(year, 3, 31),
                start_hour,
                stop_month_num: 10,
                stop_day: last_sunday(year, 10, 31),
                stop_hour,
            })
        }
        "us" => Some(Dst {
            start_month: "Mar",
            start_week: 2,
            start_time: "02/00".into(),
            stop_month: "Nov",
            stop_week: 1,
            stop_time: "02/00".into(),
            start_month_num: 3,
            start_day: nth_sunday(year, 3, 2),
            start_hour: 2,
            stop_month_num: 11,
            stop_day: nth_sunday(year, 11, 1),
            stop_hour: 2,
        }),
        _ => None,
    }
}

/// `+01:00` / `-03:30`.
pub fn gmt_offset(offset_min: i32) -> String {
    let sign = if offset_min < 0 { '-' } else { '+' };
    let m = offset_min.abs();
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dst_dates_known_years() {
        // EU 2026: 29 March and 25 October; US 2026: 8 March and 1 November.
        let eu = dst("eu", 2026, 60).unwrap();
        assert_eq!(
            (eu.start_day, eu.stop_day, eu.start_hour, eu.stop_hour),
            (29, 25, 2, 3)
        );
        let us = dst("us", 2026, -300).unwrap();
        assert_eq!((us.start_day, us.stop_day), (8, 1));
        let eu24 = dst("eu", 2024, 0).unwrap();
        assert_eq!((eu24.start_day, eu24.stop_day), (31, 27));
        assert!(dst("none", 2026, 0).is_none());
        assert_eq!(gmt_offset(-210), "-03:30");
    }

    #[test]
    fn plan_from_the_default_number_plan() {
        let s: BTreeMap<String, String> = stations::settings::SETTINGS
            .iter()
            .map(|(k, d, _, _)| (k.to_string(), d.to_string()))
            .collect();
        let rules = dial_plan(&s, &["201".into(), "305".into()]);
        let pats: Vec<&str> = rules.iter().map(|r| r.pattern.as_str()).collect();
        assert_eq!(
            pats,
            vec![
                "2..", "3..", "600", "46", "55", "50", "601...", "602...", "603...", "604...",
                "11...", "12...", "57...", "40.", "56*", "9*", "*"
            ]
        );
        assert_eq!(rules.last().unwrap().timeout, 5);
        assert!(digit_map(&rules).starts_with("2xx|3xx|600|46|"));
    }
}
