//! Reading numbers out of the Prometheus text format a worker serves on `/metrics`.

/// The sum of every series of metric `name` whose labels include `label` (Prometheus text);
/// an empty `label` matches every series.
pub fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            (metric == name && series.contains(label)).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::metric_sum;

    const TEXT: &str = "\
# HELP hookfleet_deliveries_total Deliveries.
# TYPE hookfleet_deliveries_total counter
hookfleet_deliveries_total{result=\"delivered\",tenant=\"a\"} 3
hookfleet_deliveries_total{result=\"delivered\",tenant=\"b\"} 4
hookfleet_deliveries_total{result=\"failed\"} 5
hookfleet_deliveries_total_extra 100
hookfleet_consumer_restarts_total 2
";

    #[test]
    fn sums_the_series_that_match() {
        let cases = [
            ("hookfleet_deliveries_total", "result=\"delivered\"", 7.0),
            ("hookfleet_deliveries_total", "", 12.0),
            ("hookfleet_consumer_restarts_total", "", 2.0),
            ("hookfleet_missing_total", "", 0.0),
        ];
        for (name, label, expected) in cases {
            assert_eq!(metric_sum(TEXT, name, label), expected, "{name} {label}");
        }
    }
}
