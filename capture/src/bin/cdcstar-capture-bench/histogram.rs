//! Prometheus histograms read from a metrics page, the difference between two readings (what one
//! benchmark phase observed) and percentiles estimated from the buckets.

use anyhow::Result;

use crate::http;

/// One reading of a histogram: cumulative bucket counts by upper bound, sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// `(le, cumulative count)` in increasing `le`, `+Inf` last.
    pub buckets: Vec<(f64, f64)>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: f64,
}

impl Reading {
    /// Histogram `name` (without `_bucket`/`_sum`/`_count`) in the text of a metrics page;
    /// an empty reading when the page does not have it.
    pub fn parse(page: &str, name: &str) -> Self {
        let mut reading = Reading::default();
        for line in page.lines() {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
                continue;
            };
            if let Some(labels) = rest.strip_prefix("_bucket{") {
                let bound = labels
                    .split("le=\"")
                    .nth(1)
                    .and_then(|b| b.split('"').next())
                    .map(|b| {
                        if b == "+Inf" {
                            Ok(f64::INFINITY)
                        } else {
                            b.parse()
                        }
                    });
                if let Some(Ok(bound)) = bound {
                    reading.buckets.push((bound, value));
                }
            } else if rest.starts_with("_sum") {
                reading.sum = value;
            } else if rest.starts_with("_count") {
                reading.count = value;
            }
        }
        reading.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        reading
    }

    /// Reads histogram `name` from the metrics page at `url`.
    pub async fn fetch(url: &str, name: &str) -> Result<Self> {
        Ok(Self::parse(&http::call("GET", url, "").await?, name))
    }

    /// What was observed between `earlier` and `self`.
    pub fn since(&self, earlier: &Reading) -> Reading {
        let before = |bound: f64| {
            earlier
                .buckets
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0.0, |(_, c)| *c)
        };
        Reading {
            buckets: self
                .buckets
                .iter()
                .map(|(bound, count)| (*bound, count - before(*bound)))
                .collect(),
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    /// Mean of the observations, NaN when there are none.
    pub fn mean(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count
        } else {
            f64::NAN
        }
    }

    /// Quantile `q` interpolated linearly inside its bucket (NaN when empty; the largest finite
    /// bound when it falls in `+Inf`).
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count <= 0.0 {
            return f64::NAN;
        }
        let rank = q * self.count;
        let (mut lower, mut below) = (0.0, 0.0);
        for (bound, cumulative) in &self.buckets {
            if *cumulative >= rank {
                if bound.is_infinite() {
                    return lower;
                }
                let inside = cumulative - below;
                let fraction = if inside > 0.0 {
                    (rank - below) / inside
                } else {
                    1.0
                };
                return lower + (bound - lower) * fraction;
            }
            (lower, below) = (*bound, *cumulative);
        }
        lower
    }

    /// `p50 … ms, p99 … ms, mean … ms (n)` in milliseconds.
    pub fn summary(&self) -> String {
        format!(
            "p50 ~{:.0} ms, p99 ~{:.0} ms, mean {:.0} ms ({} observations)",
            self.quantile(0.5) * 1000.0,
            self.quantile(0.99) * 1000.0,
            self.mean() * 1000.0,
            self.count
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# TYPE x_seconds histogram\n\
        x_seconds_sum 3.0\n\
        x_seconds_count 4\n\
        x_seconds_bucket{le=\"0.1\"} 1\n\
        x_seconds_bucket{le=\"1.0\"} 3\n\
        x_seconds_bucket{le=\"+Inf\"} 4\n\
        other_seconds_count 9\n";

    #[test]
    fn a_histogram_is_parsed_and_differenced() {
        let after = Reading::parse(PAGE, "x_seconds");
        assert_eq!(after.count, 4.0);
        assert_eq!(after.sum, 3.0);
        assert_eq!(
            after.buckets,
            vec![(0.1, 1.0), (1.0, 3.0), (f64::INFINITY, 4.0)]
        );
        let before = Reading {
            buckets: vec![(0.1, 1.0), (1.0, 1.0), (f64::INFINITY, 1.0)],
            sum: 0.05,
            count: 1.0,
        };
        let phase = after.since(&before);
        assert_eq!(phase.count, 3.0);
        assert_eq!(phase.buckets[1], (1.0, 2.0));
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let reading = Reading::parse(PAGE, "x_seconds");
        assert!((reading.quantile(0.25) - 0.1).abs() < 1e-9);
        assert!((reading.quantile(0.5) - 0.55).abs() < 1e-9);
        assert_eq!(reading.quantile(1.0), 1.0, "+Inf reports the last bound");
        assert!(Reading::default().quantile(0.5).is_nan());
        assert_eq!(reading.mean(), 0.75);
    }
}
