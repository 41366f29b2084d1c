//! What one scenario measured, and the markdown table of the reliability report.

use std::fmt::Write as _;
use std::time::Duration;

/// One row of the report: one receiver path of one scenario.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub scenario: String,
    /// Events the broker confirmed.
    pub published: usize,
    /// Events that never got a confirm (not expected anywhere).
    pub not_published: usize,
    /// Published events this path answered 2xx (or, for poison, parked in dead letters).
    pub delivered: usize,
    /// Published events that neither arrived nor were parked as the scenario expects.
    pub lost: usize,
    /// 2xx answers beyond the first for the same event id.
    pub duplicates: usize,
    /// How many duplicates the design allows in this scenario (0 unless a crash or lost
    /// Redis state opens the at-least-once window).
    pub allowed_duplicates: usize,
    /// From the fault's end to the first 2xx after it; `None` when not applicable.
    pub first_delivery_in: Option<Duration>,
    /// From the fault's end to the last missing delivery; `None` when not applicable or
    /// never reached.
    pub recovered_in: Option<Duration>,
    /// What happened, in a few words (printed under the table).
    pub note: String,
}

impl Outcome {
    /// Nothing lost, and no more duplicates than the design allows.
    pub fn holds(&self) -> bool {
        self.lost == 0 && self.duplicates <= self.allowed_duplicates
    }
}

/// The report as a markdown table, followed by each scenario's note.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "| scenario | events published | delivered | lost | duplicates | time to recover (first delivery / all delivered) |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for o in outcomes {
        let published = if o.not_published > 0 {
            format!("{} (+{} unconfirmed)", o.published, o.not_published)
        } else {
            o.published.to_string()
        };
        let secs = |d: Option<Duration>| {
            d.map_or_else(|| "—".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
        };
        let recover = match (o.first_delivery_in, o.recovered_in) {
            (None, None) => "—".to_owned(),
            (first, all) => format!("{} / {}", secs(first), secs(all)),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            o.scenario, published, o.delivered, o.lost, o.duplicates, recover
        );
    }
    out.push('\n');
    for o in outcomes.iter().filter(|o| !o.note.is_empty()) {
        let _ = writeln!(out, "- **{}**: {}", o.scenario, o.note);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_row_per_outcome_and_the_notes_below() {
        let outcomes = [
            Outcome {
                scenario: "a".into(),
                published: 10,
                delivered: 10,
                first_delivery_in: Some(Duration::from_millis(200)),
                recovered_in: Some(Duration::from_millis(1500)),
                note: "fine".into(),
                ..Outcome::default()
            },
            Outcome {
                scenario: "b".into(),
                published: 5,
                not_published: 1,
                delivered: 4,
                lost: 1,
                ..Outcome::default()
            },
        ];
        let text = table(&outcomes);
        assert!(
            text.contains("| a | 10 | 10 | 0 | 0 | 0.2 s / 1.5 s |"),
            "{text}"
        );
        assert!(
            text.contains("| b | 5 (+1 unconfirmed) | 4 | 1 | 0 | — |"),
            "{text}"
        );
        assert!(text.contains("- **a**: fine"), "{text}");
    }
}
