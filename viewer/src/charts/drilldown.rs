//! One layer component: its operations, time, energy, FLOPs and tensor metrics.

use eprof_format::StepOrder;

use super::*;

/// Operations, FLOP estimates, tensor statistics and attention metrics of one layer's
/// component, over the whole run or one step.
pub fn drilldown(v: &TraceView, layer: usize, component: &str, step: Option<u32>) -> String {
    let t = &v.trace;
    let sites: Vec<usize> = (0..t.sites.len())
        .filter(|&i| {
            let s = &t.sites[i];
            s.layer.map(usize::from) == Some(layer) && s.component == component
        })
        .collect();
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<h3>L{layer} · {c}{s}</h3>"#,
        c = esc(component),
        s = step.map_or(" · whole run".into(), |s| format!(" · token {s}"))
    );
    if sites.is_empty() {
        o.push_str("<p>Nothing was recorded at this site.</p>");
        return o;
    }
    let keep = |s: u32| step.is_none_or(|x| x == s);
    let flops = t
        .metrics
        .iter()
        .enumerate()
        .find(|(_, m)| m.probe == "model" && m.metric == "flops");
    o.push_str(
        r#"<table class="drill-ops"><thead><tr><th>site</th><th>calls</th><th>time</th><th>energy</th><th>how</th><th>GFLOP</th><th>GFLOP/s</th></tr></thead><tbody>"#,
    );
    // One pass over spans and FLOP values: the row of each site, by site id.
    let mut row_of = vec![None; t.sites.len()];
    for (k, &si) in sites.iter().enumerate() {
        row_of[si] = Some(k);
    }
    let mut calls = vec![(0u32, 0u64, Vec::new()); sites.len()];
    for i in StepOrder::range(&t.spans.step, v.order.spans, step) {
        if let Some(k) = row_of[t.spans.site[i] as usize]
            && keep(t.spans.step[i])
        {
            let c = &mut calls[k];
            c.0 += 1;
            c.1 += t.spans.duration_ns(i);
            c.2.extend(v.energies.spans[i]);
        }
    }
    let mut gflop = vec![0.0f64; sites.len()];
    if let Some((k, f)) = flops {
        let sorted = v.order.metrics.get(k).copied().unwrap_or(false);
        for i in StepOrder::range(&f.step, sorted, step) {
            if let Some(k) = row_of[f.site[i] as usize]
                && keep(f.step[i])
            {
                gflop[k] += f64::from(f.value[i]);
            }
        }
    }
    for ((&si, (n, ns, parts)), gf) in sites.iter().zip(calls).zip(gflop) {
        let e = eprof_format::Energy::sum(parts);
        let gf = flops.map(|_| gf * 1e-9);
        let _ = write!(o, r#"<tr class="drill-op" data-site="{si}">"#);
        cell(&mut o, &t.sites[si].label());
        cell(&mut o, &n.to_string());
        cell(&mut o, &fmt_ns(ns as f64));
        cell(&mut o, &e.map_or("-".into(), |e| fmt_joules(e.joules)));
        cell(&mut o, e.map_or("-", |e| e.label.as_str()));
        cell(&mut o, &gf.filter(|g| *g > 0.0).map_or("-".into(), fmt_num));
        cell(
            &mut o,
            &gf.filter(|g| *g > 0.0 && ns > 0)
                .map_or("-".into(), |g| fmt_num(g / (ns as f64 * 1e-9))),
        );
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table>");
    // Tensor statistics and attention metrics recorded at these sites.
    let mut rows = String::new();
    for (mk, ms) in t
        .metrics
        .iter()
        .enumerate()
        .filter(|(_, m)| m.probe != "model")
    {
        // (count, sum, min, max) per site, in one pass over the series.
        let mut acc = vec![(0usize, 0.0f64, f64::INFINITY, f64::NEG_INFINITY); sites.len()];
        let sorted = v.order.metrics.get(mk).copied().unwrap_or(false);
        for i in StepOrder::range(&ms.step, sorted, step) {
            if let Some(k) = row_of[ms.site[i] as usize]
                && keep(ms.step[i])
                && ms.value[i].is_finite()
            {
                let x = f64::from(ms.value[i]);
                let a = &mut acc[k];
                *a = (a.0 + 1, a.1 + x, a.2.min(x), a.3.max(x));
            }
        }
        for (&si, (n, sum, lo, hi)) in sites.iter().zip(acc) {
            if n == 0 {
                continue;
            }
            let mean = sum / n as f64;
            let _ = write!(rows, r#"<tr class="drill-metric">"#);
            cell(&mut rows, &ms.key());
            cell(&mut rows, &t.sites[si].label());
            cell(&mut rows, &n.to_string());
            cell(&mut rows, &fmt_num(mean));
            cell(&mut rows, &fmt_num(lo));
            cell(&mut rows, &fmt_num(hi));
            rows.push_str("</tr>");
        }
    }
    if rows.is_empty() {
        o.push_str("<p>No tensor metrics at this site (record with --probes to get them).</p>");
    } else {
        let _ = write!(
            o,
            r#"<table class="drill-metrics"><thead><tr><th>metric</th><th>site</th><th>n</th><th>mean</th><th>min</th><th>max</th></tr></thead><tbody>{rows}</tbody></table>"#
        );
    }
    o
}
