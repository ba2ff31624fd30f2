//! Percentiles of latency samples, counting what never arrived as slower than anything that did.
//!
//! Samples are exact (one `u32` of microseconds each, sorted once), so p99.9 of a million
//! deliveries is the 999,000th, not a histogram bucket's edge.

/// Percentiles of one latency, in milliseconds; `None` where the rank falls among the
/// deliveries that never happened (lost, or still missing when the drain ended).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Deliveries measured.
    pub count: usize,
    /// Deliveries that never happened.
    pub lost: u64,
    /// Median.
    pub p50: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// 99.9th percentile.
    pub p999: Option<f64>,
    /// Slowest (`None` if anything was lost).
    pub max: Option<f64>,
}

impl Summary {
    /// The summary of `samples` (µs) plus `lost` deliveries that never happened.
    pub fn of(mut samples: Vec<u32>, lost: u64) -> Summary {
        samples.sort_unstable();
        let total = samples.len() as u64 + lost;
        let at = |q: f64| -> Option<f64> {
            if total == 0 {
                return None;
            }
            // Nearest rank: the smallest sample with at least q of all at or below it.
            let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
            samples.get(rank as usize - 1).map(|&us| us as f64 / 1000.0)
        };
        Summary { count: samples.len(), lost, p50: at(0.5), p99: at(0.99), p999: at(0.999), max: at(1.0) }
    }
}

/// Milliseconds for a table: two significant digits below 10 ms, whole ones above.
pub fn ms(value: Option<f64>) -> String {
    match value {
        None => "lost".into(),
        Some(v) if v < 1.0 => format!("{v:.2} ms"),
        Some(v) if v < 10.0 => format!("{v:.1} ms"),
        Some(v) => format!("{v:.0} ms"),
    }
}

/// `median (min–max)` of `values` formatted by `show`, or `median` alone for one value.
pub fn spread(values: &[Option<f64>], show: impl Fn(Option<f64>) -> String) -> String {
    if values.is_empty() {
        return "–".into();
    }
    // A lost percentile sorts above every measured one.
    let mut keyed: Vec<f64> = values.iter().map(|v| v.unwrap_or(f64::INFINITY)).collect();
    keyed.sort_by(f64::total_cmp);
    let value = |v: f64| v.is_finite().then_some(v);
    let mid = value(keyed[(keyed.len() - 1) / 2]);
    if keyed.len() == 1 || show(value(keyed[0])) == show(value(keyed[keyed.len() - 1])) {
        return show(mid);
    }
    format!("{} ({}–{})", show(mid), show(value(keyed[0])), show(value(keyed[keyed.len() - 1])))
}

/// A count with thousands separators: `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let summary = Summary::of((1..=1000).map(|ms| ms * 1000).collect(), 0);
        assert_eq!(summary.p50, Some(500.0));
        assert_eq!(summary.p99, Some(990.0));
        assert_eq!(summary.p999, Some(999.0));
        assert_eq!(summary.max, Some(1000.0));
    }

    #[test]
    fn lost_deliveries_are_the_slowest() {
        let summary = Summary::of((1..=990).map(|ms| ms * 1000).collect(), 10);
        assert_eq!(summary.p99, Some(990.0));
        assert_eq!(summary.p999, None);
        assert_eq!(summary.max, None);
        assert_eq!(Summary::of(Vec::new(), 0).p50, None);
    }

    #[test]
    fn formats() {
        assert_eq!(ms(Some(0.4321)), "0.43 ms");
        assert_eq!(ms(Some(4.321)), "4.3 ms");
        assert_eq!(ms(Some(43.21)), "43 ms");
        assert_eq!(ms(None), "lost");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(spread(&[Some(3.0), Some(1.0), None], ms), "3.0 ms (1.0 ms–lost)");
        assert_eq!(spread(&[Some(3.01), Some(3.02)], ms), "3.0 ms");
    }
}
