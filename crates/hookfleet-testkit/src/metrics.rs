//! Reading numbers out of the Prometheus text format a worker serves on `/metrics`.

/// The sum of every series of metric `name` whose labels include all of `labels`; 0 when
/// there is none.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let matches = metric == name
                && (labels.iter()).all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            matches.then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::metric_sum;

    const TEXT: &str = "\
# HELP hookfleet_deliveries_total Deliveries.
# TYPE hookfleet_deliveries_total counter
hookfleet_deliveries_total{event_type=\"a\",result=\"delivered\"} 3
hookfleet_deliveries_total{event_type=\"b\",result=\"delivered\"} 4
hookfleet_deliveries_total{event_type=\"a\",result=\"dead_lettered\"} 5
hookfleet_deliveries_total_extra 100
hookfleet_consumer_restarts_total 2
";

    #[test]
    fn sums_the_series_that_match() {
        type Labels<'a> = &'a [(&'a str, &'a str)];
        let cases: [(&str, Labels, f64); 5] = [
            (
                "hookfleet_deliveries_total",
                &[("result", "delivered")],
                7.0,
            ),
            (
                "hookfleet_deliveries_total",
                &[("event_type", "a"), ("result", "delivered")],
                3.0,
            ),
            ("hookfleet_deliveries_total", &[], 12.0),
            ("hookfleet_consumer_restarts_total", &[], 2.0),
            ("hookfleet_missing_total", &[], 0.0),
        ];
        for (name, labels, expected) in cases {
            assert_eq!(
                metric_sum(TEXT, name, labels),
                expected,
                "{name} {labels:?}"
            );
        }
    }
}
