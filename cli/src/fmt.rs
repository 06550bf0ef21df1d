//! Human-readable numbers (eprof-format's `units`, shared with the viewer) and
//! plain-text tables.

use eprof_format::Energy;
use eprof_format::units;

pub fn ns(v: u64) -> String {
    units::duration_ns(v as f64)
}

pub fn joules(j: f64) -> String {
    units::joules(j)
}

pub fn opt_j(j: Option<f64>) -> String {
    j.map_or_else(|| "-".into(), joules)
}

pub fn energy(e: Option<Energy>) -> String {
    e.map_or_else(|| "-".into(), |e| joules(e.joules))
}

pub fn label(e: Option<Energy>) -> &'static str {
    e.map_or("-", |e| e.label.as_str())
}

pub fn watts(w: Option<f64>) -> String {
    w.map_or_else(|| "-".into(), units::watts)
}

/// `YYYY-MM-DD HH:MM` UTC from Unix milliseconds.
pub fn date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

pub use eprof_format::units::clip;

/// A plain-text table with right-aligned numbers.
pub struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(head: &[&str]) -> Self {
        Table {
            head: head.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let n = self.head.len();
        let mut w = vec![0usize; n];
        for r in std::iter::once(&self.head).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let numeric = |s: &str| {
            s.chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || c == '-')
                && s.chars().any(|c| c.is_ascii_digit())
        };
        for (ri, r) in std::iter::once(&self.head).chain(&self.rows).enumerate() {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate().take(n) {
                let pad = w[i] - c.chars().count();
                if i > 0 {
                    line.push_str("  ");
                }
                if ri > 0 && numeric(c) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    if i + 1 < n {
                        line.push_str(&" ".repeat(pad));
                    }
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_units() {
        assert_eq!(date(0), "1970-01-01 00:00");
        assert_eq!(date(1_767_225_600_000), "2026-01-01 00:00");
        assert_eq!(joules(0.0123), "12.300 mJ");
        assert_eq!(ns(1_500_000), "1.500 ms");
    }
}
