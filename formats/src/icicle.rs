//! The icicle (flame) hierarchy: run > phase > section > layer > component >
//! operation. It is the treemap's hierarchy ([`crate::layout::tree`]) with the
//! sections of each phase (embedding, layers, lm_head, sampling ...) put between a
//! phase and its layers, so a row of the icicle is one level of the pipeline.

use crate::layout::{Measure, Node};
use crate::model::Trace;
use crate::summary::Energies;

/// The section whose time the layers' spans divide up.
const LAYERS: &str = "layers";

/// The icicle hierarchy of a trace, from its treemap hierarchy `tree` (so the spans,
/// which the viewer's page does not hold, are read once, where the tree was built).
/// Every node's children sum to it: what no child covers is an `other` child.
pub fn icicle(tree: &Node, trace: &Trace, en: &Energies, measure: Measure) -> Node {
    let phases = tree
        .children
        .iter()
        .map(|phase| {
            let Some(ph) = trace
                .sections
                .iter()
                .find(|s| s.is_phase() && s.name == phase.name)
            else {
                return phase.clone();
            };
            // This phase's sections, summed by name in the order they first appear.
            let mut parts: Vec<(String, f64)> = Vec::new();
            for (s, e) in trace.sections.iter().zip(&en.sections) {
                if s.is_phase() || s.phase != ph.phase {
                    continue;
                }
                let v = match measure {
                    Measure::TimeNs => s.duration_ns() as f64,
                    Measure::EnergyJ => e.map_or(0.0, |e| e.joules),
                };
                match parts.iter_mut().find(|(n, _)| *n == s.name) {
                    Some(p) => p.1 += v,
                    None => parts.push((s.name.clone(), v)),
                }
            }
            let layers: Vec<Node> = phase
                .children
                .iter()
                .filter(|c| c.name != "other")
                .cloned()
                .collect();
            let has_layers = parts.iter().any(|(n, v)| n == LAYERS && *v > 0.0);
            let mut children: Vec<Node> = parts
                .into_iter()
                .filter(|(_, v)| *v > 0.0)
                .map(|(name, value)| {
                    let mut n = Node::leaf(name, value);
                    if n.name == LAYERS {
                        n.children = layers.clone();
                        n = n.close();
                    }
                    n
                })
                .collect();
            // A trace without a `layers` section (older recorders, synthetic runs):
            // the layers sit right under their phase, as in the treemap.
            if !has_layers {
                children.extend(layers);
            }
            Node {
                name: phase.name.clone(),
                value: phase.value,
                children,
            }
            .close()
        })
        .collect();
    Node {
        name: tree.name.clone(),
        value: tree.value,
        children: phases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Depth;
    use crate::layout::tree;
    use crate::model::{Phase, Section};
    use crate::synthetic::{self, Shape};

    /// Every node with children: the children sum to it.
    fn sums_hold(n: &Node, path: &str) {
        if !n.children.is_empty() {
            let s: f64 = n.children.iter().map(|c| c.value).sum();
            assert!(
                (s - n.value).abs() <= 1e-9 * n.value.abs().max(1e-12),
                "{path}/{}: children {s} vs {}",
                n.name,
                n.value
            );
        }
        for c in &n.children {
            sums_hold(c, &format!("{path}/{}", n.name));
        }
    }

    #[test]
    fn sections_sit_between_phases_and_layers_and_everything_adds_up() {
        let plain = synthetic::trace(&Shape {
            generated_tokens: 5,
            layers: 3,
            depth: Depth::Deep,
            ..Shape::default()
        });
        // Without `layers` sections, layers sit under their phase.
        let en = Energies::compute(&plain);
        let ice = icicle(
            &tree(&plain, &en, Measure::TimeNs),
            &plain,
            &en,
            Measure::TimeNs,
        );
        sums_hold(&ice, "");
        let decode = ice.children.iter().find(|p| p.name == "decode").unwrap();
        assert!(decode.children.iter().any(|c| c.name == "L2"));
        // As a recording writes them: an embedding and a layers section per step.
        let mut t = plain.clone();
        for st in plain.steps() {
            let (first, last) = (0..plain.spans.len())
                .filter(|&i| plain.spans.step[i] == st.index)
                .fold((u64::MAX, 0), |(a, b), i| {
                    (a.min(plain.spans.start_ns[i]), b.max(plain.spans.end_ns[i]))
                });
            let phase = if st.index == 0 {
                Phase::Prefill
            } else {
                Phase::Decode
            };
            for (name, a, b) in [("embedding", st.start_ns, first), ("layers", first, last)] {
                t.sections.push(Section {
                    phase,
                    name: name.into(),
                    step: Some(st.index),
                    start_ns: a,
                    end_ns: b,
                });
            }
        }
        let en = Energies::compute(&t);
        for m in [Measure::EnergyJ, Measure::TimeNs] {
            let tr = tree(&t, &en, m);
            let ice = icicle(&tr, &t, &en, m);
            assert_eq!(ice.value, tr.value);
            sums_hold(&ice, "");
            let decode = ice.children.iter().find(|p| p.name == "decode").unwrap();
            let names: Vec<&str> = decode.children.iter().map(|c| c.name.as_str()).collect();
            let layers = decode.children.iter().find(|c| c.name == "layers");
            let layers = layers.unwrap_or_else(|| panic!("{names:?}"));
            assert_eq!(layers.children[0].name, "L0");
            let attention = layers.children[0]
                .children
                .iter()
                .find(|c| c.name == "attention")
                .unwrap();
            assert!(attention.children.iter().any(|o| o.name == "softmax"));
        }
    }
}
