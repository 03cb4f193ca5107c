//! Prometheus text in, series by name out: the one parser the tests and the load generator read `/metrics` with.
//!
//! Series are keyed exactly as the server renders them (`name` or
//! `name{label="value",...}`); histogram buckets are kept apart from their
//! sums and counts. Each family's `# TYPE` and `# HELP` are kept too, and a
//! line that is not valid exposition text is an error.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// One scrape.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// Every sample but histogram buckets, by series key.
    pub series: BTreeMap<String, f64>,
    /// `_bucket` samples, by series key.
    #[serde(skip)]
    pub buckets: BTreeMap<String, f64>,
    /// `# TYPE` of each family.
    #[serde(skip)]
    pub types: BTreeMap<String, String>,
    /// `# HELP` of each family.
    #[serde(skip)]
    pub help: BTreeMap<String, String>,
}

impl Metrics {
    pub fn parse(text: &str) -> Result<Self> {
        let mut m = Self::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').context("a TYPE line names a type")?;
                m.types.insert(name.to_string(), kind.to_string());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                m.help.insert(name.to_string(), help.to_string());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .rsplit_once(' ')
                .with_context(|| format!("line {}: no value: {line:?}", n + 1))?;
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .with_context(|| format!("line {}: bad value: {line:?}", n + 1))?,
            };
            let name = key.split('{').next().unwrap_or(key);
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                || (key.contains('{') && !key.ends_with('}'))
            {
                bail!("line {}: bad series name: {line:?}", n + 1);
            }
            let target = if name.ends_with("_bucket") {
                &mut m.buckets
            } else {
                &mut m.series
            };
            target.insert(key.to_string(), value);
        }
        Ok(m)
    }

    /// The value of one series (`name` or `name{labels}` exactly as
    /// rendered); 0 when absent.
    pub fn value(&self, series: &str) -> f64 {
        self.series.get(series).copied().unwrap_or(0.0)
    }

    /// The sum over every series of `name`, whatever its labels.
    pub fn sum(&self, name: &str) -> f64 {
        self.series
            .iter()
            .filter(|(k, _)| family_of(k) == name)
            .map(|(_, v)| v)
            .sum()
    }

    /// Whether any series of `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.series.keys().any(|k| family_of(k) == name)
    }
}

fn family_of(key: &str) -> &str {
    key.split('{').next().unwrap_or(key)
}

/// GET /metrics and parse it.
pub async fn scrape(addr: std::net::SocketAddr) -> Result<Metrics> {
    let (status, body) = crate::http::get(addr, "/metrics").await?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    Metrics::parse(&body)
}

/// One series of a live server (0 if absent); panics if it cannot be read.
pub async fn metric(addr: std::net::SocketAddr, series: &str) -> f64 {
    scrape(addr)
        .await
        .unwrap_or_else(|e| panic!("scraping {addr}: {e:#}"))
        .value(series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sums_and_counts_apart_from_buckets() {
        let text = "# HELP steno_x x\n# TYPE steno_inference_seconds histogram\nsteno_sessions_active 3\nsteno_inference_seconds_bucket{kind=\"final\",le=\"0.1\"} 2\nsteno_inference_seconds_bucket{kind=\"final\",le=\"+Inf\"} 2\nsteno_inference_seconds_sum{kind=\"final\"} 1.5\nsteno_inference_seconds_sum{kind=\"partial\"} 0.5\nother 1\n";
        let m = Metrics::parse(text).unwrap();
        assert_eq!(m.series.len(), 4);
        assert_eq!(m.buckets.len(), 2);
        assert_eq!(m.sum("steno_inference_seconds_sum"), 2.0);
        assert_eq!(m.value("steno_inference_seconds_sum{kind=\"final\"}"), 1.5);
        assert_eq!(m.value("steno_sessions_active"), 3.0);
        assert_eq!(m.types["steno_inference_seconds"], "histogram");
        assert!(m.has("other") && !m.has("steno_nothing"));
        assert!(Metrics::parse("steno_x{a=\"b\" 1").is_err());
        assert!(Metrics::parse("steno_x one").is_err());
    }
}
