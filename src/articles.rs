//! The newsroom's controls per article and per hour: articles whose comments all wait for an
//! editor (pre-moderated), articles closed to comments, and hours and days when the desk is
//! closed and every comment waits (`22:00-06:00` in the newsroom's time zone, weekends). Ops
//! change them at runtime (`articles.*`); [`ArticleRules`] is them compiled, read once per
//! request. Pure: the time is a parameter.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// Section `[articles]` (the starting values of the `articles.*` runtime settings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArticleSettings {
    /// Articles whose every comment waits for an editor.
    pub premoderated: Vec<String>,
    /// Articles closed to comments: submissions are refused (`ARTICLE_CLOSED`).
    pub closed: Vec<String>,
    /// Hours when every comment waits for an editor, `HH:MM-HH:MM` in `timezone` (it may run
    /// past midnight: `22:00-06:00`); empty for none.
    pub premoderation_hours: String,
    /// Whole days when every comment waits: `mon` … `sun`.
    pub premoderation_days: Vec<String>,
    /// The newsroom's time zone (IANA name).
    pub timezone: String,
}

impl Default for ArticleSettings {
    fn default() -> Self {
        ArticleSettings {
            premoderated: Vec::new(),
            closed: Vec::new(),
            premoderation_hours: String::new(),
            premoderation_days: Vec::new(),
            timezone: "Asia/Ho_Chi_Minh".into(),
        }
    }
}

/// Why a comment waits for an editor whatever its scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Premoderation {
    /// Its article is pre-moderated.
    Article,
    /// It came in the pre-moderated hours or days.
    Schedule,
}

/// The controls, compiled.
#[derive(Clone, Debug)]
pub struct ArticleRules {
    premoderated: HashSet<String>,
    closed: HashSet<String>,
    /// Minutes after midnight: from (inclusive), to (exclusive).
    hours: Option<(u16, u16)>,
    /// Monday first.
    days: [bool; 7],
    timezone: jiff::tz::TimeZone,
}

impl Default for ArticleRules {
    fn default() -> Self {
        ArticleRules::new(&ArticleSettings::default()).expect("the defaults compile")
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Parses `HH:MM-HH:MM` into minutes after midnight; empty is none.
pub fn hours(raw: &str) -> Result<Option<(u16, u16)>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let bad = || format!("must be HH:MM-HH:MM (22:00-06:00), is {raw:?}");
    let minute = |s: &str| -> Result<u16, String> {
        let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h > 23 || m > 59 {
            return Err(bad());
        }
        Ok(h * 60 + m)
    };
    let (from, to) = raw.split_once('-').ok_or_else(bad)?;
    let (from, to) = (minute(from)?, minute(to)?);
    if from == to {
        return Err(format!("{raw:?} is an empty span"));
    }
    Ok(Some((from, to)))
}

/// Parses day names (`sat, sun`).
pub fn days(names: &[String]) -> Result<[bool; 7], String> {
    let mut out = [false; 7];
    for name in names {
        let name = name.trim().to_ascii_lowercase();
        let k = DAYS
            .iter()
            .position(|d| name.starts_with(d))
            .ok_or_else(|| format!("{name:?} is not a day (mon, tue, wed, thu, fri, sat, sun)"))?;
        out[k] = true;
    }
    Ok(out)
}

/// Looks up a time zone by its IANA name.
pub fn timezone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::TimeZone::get(name.trim())
        .map_err(|_| format!("{name:?} is not a time zone (an IANA name: Asia/Ho_Chi_Minh)"))
}

impl ArticleSettings {
    /// Every problem, as (setting, description).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Err(e) = hours(&self.premoderation_hours) {
            out.push(("articles.premoderation_hours".into(), e));
        }
        if let Err(e) = days(&self.premoderation_days) {
            out.push(("articles.premoderation_days".into(), e));
        }
        if let Err(e) = timezone(&self.timezone) {
            out.push(("articles.timezone".into(), e));
        }
        out
    }
}

impl ArticleRules {
    /// Compiles `settings`; the first problem if they do not.
    pub fn new(settings: &ArticleSettings) -> Result<Self, String> {
        let set = |v: &[String]| v.iter().map(|a| a.trim().to_owned()).collect();
        Ok(ArticleRules {
            premoderated: set(&settings.premoderated),
            closed: set(&settings.closed),
            hours: hours(&settings.premoderation_hours)?,
            days: days(&settings.premoderation_days)?,
            timezone: timezone(&settings.timezone)?,
        })
    }

    /// Whether `article` is closed to comments.
    pub fn closed(&self, article: &str) -> bool {
        !self.closed.is_empty() && self.closed.contains(article)
    }

    /// Why a comment on `article` arriving at `now_ms` waits for an editor, if it does.
    pub fn premoderation(&self, article: &str, now_ms: i64) -> Option<Premoderation> {
        if !self.premoderated.is_empty() && self.premoderated.contains(article) {
            return Some(Premoderation::Article);
        }
        if self.hours.is_none() && !self.days.contains(&true) {
            return None;
        }
        let local = jiff::Timestamp::from_millisecond(now_ms)
            .ok()?
            .to_zoned_datetime(self.timezone.clone());
        let weekday = local.weekday().to_monday_zero_offset() as usize;
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        let in_hours = self.hours.is_some_and(|(from, to)| {
            if from < to {
                (from..to).contains(&minute)
            } else {
                minute >= from || minute < to
            }
        });
        (self.days[weekday] || in_hours).then_some(Premoderation::Schedule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix ms of a time in Hồ Chí Minh City (UTC+7, no daylight saving).
    fn hcm(date: &str) -> i64 {
        date.parse::<jiff::civil::DateTime>()
            .unwrap()
            .to_zoned_datetime(jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap())
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    #[test]
    fn night_hours_run_past_midnight_in_the_newsrooms_zone() {
        let rules = ArticleRules::new(&ArticleSettings {
            premoderation_hours: "22:00-06:00".into(),
            ..Default::default()
        })
        .unwrap();
        // 2026-12-01 is a Tuesday.
        for (at, held) in [
            ("2026-12-01T21:59", false),
            ("2026-12-01T22:00", true),
            ("2026-12-02T03:30", true),
            ("2026-12-02T05:59", true),
            ("2026-12-02T06:00", false),
            ("2026-12-02T12:00", false),
        ] {
            assert_eq!(
                rules.premoderation("a", hcm(at)),
                held.then_some(Premoderation::Schedule),
                "{at}"
            );
        }
    }

    #[test]
    fn days_articles_and_closed_ones() {
        let rules = ArticleRules::new(&ArticleSettings {
            premoderated: vec!["bau-cu".into()],
            closed: vec!["cu".into()],
            premoderation_days: vec!["sat".into(), "Sunday".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            rules.premoderation("x", hcm("2026-12-05T10:00")),
            Some(Premoderation::Schedule)
        );
        assert_eq!(
            rules.premoderation("x", hcm("2026-12-06T23:59")),
            Some(Premoderation::Schedule)
        );
        assert_eq!(
            rules.premoderation("x", hcm("2026-12-07T00:00")),
            None,
            "Monday"
        );
        assert_eq!(
            rules.premoderation("bau-cu", hcm("2026-12-07T10:00")),
            Some(Premoderation::Article)
        );
        assert!(rules.closed("cu") && !rules.closed("bau-cu"));
        assert!(
            ArticleRules::default()
                .premoderation("x", hcm("2026-12-05T10:00"))
                .is_none()
        );
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(hours("07:00-19:30").unwrap(), Some((420, 1170)));
        assert!(hours("25:00-01:00").is_err());
        assert!(hours("22:00").is_err());
        assert!(hours("08:00-08:00").is_err());
        assert!(days(&["caturday".into()]).is_err());
        let bad = ArticleSettings {
            premoderation_hours: "x".into(),
            premoderation_days: vec!["x".into()],
            timezone: "Mars/Olympus".into(),
            ..Default::default()
        };
        let keys: Vec<String> = bad.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(
            keys,
            [
                "articles.premoderation_hours",
                "articles.premoderation_days",
                "articles.timezone"
            ]
        );
    }
}
