//! Numbers with their units, one way for every front end (`eprof show`, the live
//! status line, the viewer): `1.234 J`, `12.500 ms`, `3.20 W`; and text clipped to
//! one short line.

/// Joules, scaled to J, mJ or µJ, three decimals; what would print as `0.000 µJ`
/// (rounding noise of a difference, either sign) is `0 J`.
pub fn joules(j: f64) -> String {
    let a = j.abs();
    if a < 0.5e-9 {
        "0 J".into()
    } else if a >= 1.0 {
        format!("{j:.3} J")
    } else if a >= 1e-3 {
        format!("{:.3} mJ", j * 1e3)
    } else {
        format!("{:.3} µJ", j * 1e6)
    }
}

/// A duration in nanoseconds, scaled to s, ms, µs or ns.
pub fn duration_ns(ns: f64) -> String {
    let a = ns.abs();
    if a >= 1e9 {
        format!("{:.3} s", ns * 1e-9)
    } else if a >= 1e6 {
        format!("{:.3} ms", ns * 1e-6)
    } else if a >= 1e3 {
        format!("{:.3} µs", ns * 1e-3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Watts, two decimals.
pub fn watts(w: f64) -> String {
    format!("{w:.2} W")
}

/// `300.000 mJ` -> `300 mJ`, `2.500 ms` -> `2.5 ms` (axis ticks).
pub fn trim_zeros(s: &str) -> String {
    let (num, unit) = s.split_once(' ').unwrap_or((s, ""));
    let num = if num.contains('.') && !num.contains('e') {
        num.trim_end_matches('0').trim_end_matches('.')
    } else {
        num
    };
    if unit.is_empty() {
        num.to_string()
    } else {
        format!("{num} {unit}")
    }
}

/// A size in bytes: `812 B`, `41.3 kB`, `12.8 MB` (decimal units, like the sizes the
/// docs report).
pub fn bytes(n: u64) -> String {
    let v = n as f64;
    if v < 1e3 {
        format!("{n} B")
    } else if v < 1e6 {
        format!("{} kB", trim_zeros(&format!("{:.1}", v / 1e3)))
    } else if v < 1e9 {
        format!("{} MB", trim_zeros(&format!("{:.1}", v / 1e6)))
    } else {
        format!("{} GB", trim_zeros(&format!("{:.2}", v / 1e9)))
    }
}

/// A plain number, 4 significant digits (scientific outside 1e-3..1e6).
pub fn number(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{v:.3e}")
    } else {
        let digits = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        format!("{v:.digits$}")
    }
}

/// Shorten to `n` characters, on one line.
pub fn clip(s: &str, n: usize) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one.chars().count() <= n {
        one
    } else {
        let mut t: String = one.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_scale_and_trim() {
        assert_eq!(joules(1.5), "1.500 J");
        assert_eq!(joules(0.0123), "12.300 mJ");
        assert_eq!(joules(2e-6), "2.000 µJ");
        assert_eq!(joules(0.0), "0 J");
        assert_eq!(joules(-1e-16), "0 J");
        assert_eq!(joules(-2e-6), "-2.000 µJ");
        assert_eq!(duration_ns(2.5e9), "2.500 s");
        assert_eq!(duration_ns(12_500_000.0), "12.500 ms");
        assert_eq!(duration_ns(1500.0), "1.500 µs");
        assert_eq!(duration_ns(999.0), "999 ns");
        assert_eq!(watts(3.2), "3.20 W");
        assert_eq!(trim_zeros("300.000 mJ"), "300 mJ");
        assert_eq!(trim_zeros("2.500 ms"), "2.5 ms");
        assert_eq!(number(1234.6), "1235");
        assert_eq!(number(0.5), "0.5000");
        assert_eq!(number(2e7), "2.000e7");
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(41_300), "41.3 kB");
        assert_eq!(bytes(12_000_000), "12 MB");
        assert_eq!(bytes(2_500_000_000), "2.5 GB");
    }
}
