use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long finished tasks are kept: `forever`, `run_duration` (until the run is archived), or a
/// span such as `1_year`, `90_days`, `2_weeks`, `12h`, `30d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    Forever,
    RunDuration,
    For(Duration),
}

impl Retention {
    /// The default for inbound events.
    pub const fn ninety_days() -> Self {
        Retention::For(Duration::from_secs(90 * 86_400))
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "forever" => return Ok(Retention::Forever),
            "run_duration" => return Ok(Retention::RunDuration),
            _ => {}
        }
        let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
        let unit = s[digits.len()..].trim_start_matches(['_', ' ']);
        let n: u64 = digits.parse().map_err(|_| {
            format!("retention `{s}`: expected forever, run_duration or e.g. 1_year")
        })?;
        let day = 86_400;
        let secs = match unit {
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => day,
            "w" | "week" | "weeks" => 7 * day,
            "month" | "months" => 30 * day,
            "y" | "year" | "years" => 365 * day,
            other => return Err(format!("retention `{s}`: unknown unit `{other}`")),
        };
        if n == 0 {
            return Err(format!("retention `{s}` must be longer than zero"));
        }
        Ok(Retention::For(Duration::from_secs(n.saturating_mul(secs))))
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retention::Forever => f.write_str("forever"),
            Retention::RunDuration => f.write_str("run_duration"),
            Retention::For(d) => write!(f, "{}h", d.as_secs() / 3600),
        }
    }
}

impl Serialize for Retention {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Retention::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_designs_values() {
        assert_eq!(Retention::parse("forever"), Ok(Retention::Forever));
        assert_eq!(Retention::parse("run_duration"), Ok(Retention::RunDuration));
        assert_eq!(
            Retention::parse("1_year"),
            Ok(Retention::For(Duration::from_secs(365 * 86_400)))
        );
        assert_eq!(
            Retention::parse("12h"),
            Ok(Retention::For(Duration::from_secs(43_200)))
        );
        assert!(Retention::parse("soon").is_err());
        assert!(Retention::parse("0_days").is_err());
    }
}
