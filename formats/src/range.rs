//! What a stretch of a run cost: the figures of any time range `[from, to]` of a
//! trace: duration, energy per channel and in total, average power, how the figures
//! inside it were obtained, and the tokens and steps it covers. `eprof show --from
//! --to` and the viewer's range selection both call [`RangeCost::of`].

use serde::Serialize;

use crate::attribution::{Energy, EnergyLabel};
use crate::model::Trace;
use crate::summary::Energies;

/// One end of a range as a user writes it: a time on the trace's clock (`1.5s`,
/// `250ms`, `800us`, `1200000ns`, or plain nanoseconds) or a generated token (`#5`:
/// the start of its step as a range's start, the end of its step as a range's end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeEnd {
    Ns(u64),
    /// A generated token, numbered from 0 in step order.
    Token(u32),
}

impl std::str::FromStr for RangeEnd {
    type Err = String;
    fn from_str(s: &str) -> Result<RangeEnd, String> {
        let s = s.trim();
        if let Some(n) = s.strip_prefix('#') {
            return n
                .parse()
                .map(RangeEnd::Token)
                .map_err(|_| format!("{s:?}: a token is #N, N a whole number (from 0)"));
        }
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let scale = match unit {
            "" | "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            _ => {
                return Err(format!(
                    "{s:?}: give a time with a unit (ns, us, ms, s) or a token as #N"
                ));
            }
        };
        let v: f64 = num
            .parse()
            .map_err(|_| format!("{s:?}: not a number followed by a unit"))?;
        let ns = (v * scale).round();
        if !(0.0..=u64::MAX as f64).contains(&ns) {
            return Err(format!("{s:?}: out of range"));
        }
        Ok(RangeEnd::Ns(ns as u64))
    }
}

/// The figures of one range of a trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RangeCost {
    pub from_ns: u64,
    pub to_ns: u64,
    pub duration_ns: u64,
    /// Energy of the channels that add into the total; `None` without readings.
    pub total: Option<Energy>,
    /// Every channel of the power source, in its order.
    pub channels: Vec<ChannelCost>,
    /// Total energy over duration.
    pub avg_power_w: Option<f64>,
    /// How the energy figures of the sections and token steps wholly inside the range
    /// were obtained, weakest last, with how many of each.
    pub label_mix: Vec<(EnergyLabel, u32)>,
    /// The generated tokens whose steps overlap the range (numbered from 0 in step
    /// order, as `#N`), first and last; `None` when it overlaps none.
    pub tokens: Option<(u32, u32)>,
    /// Their step indices, first and last.
    pub steps: Option<(u32, u32)>,
    /// The phases the range overlaps, in trace order.
    pub phases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelCost {
    pub name: String,
    pub joules: Option<f64>,
    pub avg_power_w: Option<f64>,
    pub label: EnergyLabel,
    /// Whether the channel adds into the total.
    pub in_total: bool,
}

impl RangeCost {
    /// The time on the trace's clock of a range end; `start` says which end of a
    /// token's step it is.
    pub fn resolve(trace: &Trace, end: RangeEnd, start: bool) -> Result<u64, String> {
        match end {
            RangeEnd::Ns(t) => Ok(t),
            RangeEnd::Token(n) => {
                let steps = trace.steps();
                let s = steps.get(n as usize).ok_or_else(|| {
                    format!(
                        "token #{n}: this run generated {} token(s) (#0 to #{})",
                        steps.len(),
                        steps.len().saturating_sub(1)
                    )
                })?;
                Ok(if start { s.start_ns } else { s.end_ns })
            }
        }
    }

    /// The figures of `[from_ns, to_ns]` (swapped when given backwards).
    pub fn of(trace: &Trace, en: &Energies, from_ns: u64, to_ns: u64) -> RangeCost {
        let (a, b) = (from_ns.min(to_ns), from_ns.max(to_ns));
        let att = &en.attribution;
        let dt = (b - a) as f64 * 1e-9;
        let total = att.energy(a, b);
        let power = &trace.meta.power;
        let channels = power
            .channels
            .iter()
            .enumerate()
            .map(|(c, ch)| {
                let joules = att.channel_joules(c, a, b);
                ChannelCost {
                    name: ch.name.clone(),
                    joules,
                    avg_power_w: joules.filter(|_| dt > 0.0).map(|j| j / dt),
                    label: att.channel_label(c, a, b),
                    in_total: ch.in_total,
                }
            })
            .collect();
        let mut mix = [0u32; EnergyLabel::ALL.len()];
        let inside = |s: u64, e: u64| s >= a && e <= b;
        let figures = trace
            .sections
            .iter()
            .zip(&en.sections)
            .filter(|(s, _)| inside(s.start_ns, s.end_ns))
            .filter_map(|(_, e)| *e)
            .chain(
                trace
                    .tokens
                    .iter()
                    .zip(&en.tokens)
                    .filter(|(t, _)| t.step.is_some_and(|s| inside(s.start_ns, s.end_ns)))
                    .filter_map(|(_, e)| *e),
            );
        for e in figures {
            mix[e.label as usize] += 1;
        }
        let label_mix = EnergyLabel::ALL
            .iter()
            .zip(mix)
            .filter(|(_, n)| *n > 0)
            .map(|(l, n)| (*l, n))
            .collect();
        let overlaps = |s: u64, e: u64| s < b && e > a || (a == b && s <= a && a <= e);
        let mut tokens = None::<(u32, u32)>;
        let mut steps = None::<(u32, u32)>;
        for (i, s) in trace.steps().iter().enumerate() {
            if overlaps(s.start_ns, s.end_ns) {
                let i = i as u32;
                tokens = Some(tokens.map_or((i, i), |(f, _)| (f, i)));
                steps = Some(steps.map_or((s.index, s.index), |(f, l)| {
                    (f.min(s.index), l.max(s.index))
                }));
            }
        }
        let phases = trace
            .phases()
            .filter(|p| overlaps(p.start_ns, p.end_ns))
            .map(|p| p.name.clone())
            .collect();
        RangeCost {
            from_ns: a,
            to_ns: b,
            duration_ns: b - a,
            avg_power_w: total.filter(|_| dt > 0.0).map(|e| e.joules / dt),
            total,
            channels,
            label_mix,
            tokens,
            steps,
            phases,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Depth;
    use crate::synthetic::{self, Shape};

    fn run() -> Trace {
        synthetic::trace(&Shape {
            prompt_tokens: 3,
            generated_tokens: 6,
            layers: 2,
            depth: Depth::Module,
            watts: 10.0,
        })
    }

    #[test]
    fn range_ends_parse_as_written() {
        for (text, want) in [
            ("1.5s", RangeEnd::Ns(1_500_000_000)),
            ("250ms", RangeEnd::Ns(250_000_000)),
            ("800us", RangeEnd::Ns(800_000)),
            ("1200ns", RangeEnd::Ns(1200)),
            ("42", RangeEnd::Ns(42)),
            ("#3", RangeEnd::Token(3)),
        ] {
            assert_eq!(text.parse::<RangeEnd>(), Ok(want), "{text}");
        }
        for bad in ["1.5h", "#x", "ms", "-3ms", ""] {
            assert!(bad.parse::<RangeEnd>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_range_adds_up_as_its_parts_do() {
        let t = run();
        let en = Energies::compute(&t);
        let (s, e) = t.pipeline_bounds().unwrap();
        let whole = RangeCost::of(&t, &en, s, e);
        let total = en.total.unwrap().joules;
        assert!((whole.total.unwrap().joules - total).abs() <= 1e-9 * total);
        let mid = s + (e - s) / 3;
        let (left, right) = (
            RangeCost::of(&t, &en, s, mid),
            RangeCost::of(&t, &en, mid, e),
        );
        let sum = left.total.unwrap().joules + right.total.unwrap().joules;
        assert!((sum - total).abs() <= 1e-9 * total, "{sum} vs {total}");
        assert_eq!(whole.tokens, Some((0, 5)));
        assert_eq!(
            whole.phases,
            ["pre_inference", "prefill", "decode", "post_inference"]
        );
        let w = whole.avg_power_w.unwrap();
        assert!((w - total / ((e - s) as f64 * 1e-9)).abs() < 1e-9);
        assert!(whole.label_mix.iter().map(|(_, n)| n).sum::<u32>() > 6);
        // Backwards is the same range; a token's range is its step.
        assert_eq!(RangeCost::of(&t, &en, e, s), whole);
        let steps = t.steps();
        let a = RangeCost::resolve(&t, RangeEnd::Token(2), true).unwrap();
        let b = RangeCost::resolve(&t, RangeEnd::Token(3), false).unwrap();
        assert_eq!((a, b), (steps[2].start_ns, steps[3].end_ns));
        let two = RangeCost::of(&t, &en, a, b);
        assert_eq!(two.tokens, Some((2, 3)));
        let per_token: f64 = en
            .tokens
            .iter()
            .zip(&t.tokens)
            .filter(|(_, tok)| {
                tok.step
                    .is_some_and(|s| s.index == steps[2].index || s.index == steps[3].index)
            })
            .map(|(e, _)| e.unwrap().joules)
            .sum();
        // Synthetic steps are back to back: the range is exactly the two tokens.
        assert_eq!(steps[3].start_ns, steps[2].end_ns);
        assert!((two.total.unwrap().joules - per_token).abs() < 1e-9);
        let e = RangeCost::resolve(&t, RangeEnd::Token(6), true).unwrap_err();
        assert!(e.contains("#0 to #5"), "{e}");
    }
}
