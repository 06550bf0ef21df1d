//! Search: a token by its text, or a site by name (`L12.q_proj`, `q_proj`,
//! `softmax`, `L3.attention.softmax`). A token found becomes the selected token (the
//! slider, the heatmap, the drilldown follow); a site found becomes the drilldown's
//! and is marked on the heatmap.

use crate::data::TraceView;

/// What a search found.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// A generated token: its step, and its text.
    Token {
        step: u32,
        text: String,
    },
    /// A site: the drilldown's layer and component, and the operation asked for.
    Site {
        layer: usize,
        component: String,
        op: Option<String>,
    },
    Nothing,
}

impl Found {
    /// One line for the page.
    pub fn describe(&self) -> String {
        match self {
            Found::Token { step, text } => format!("token {step}: {text:?}"),
            Found::Site {
                layer,
                component,
                op,
            } => match op {
                Some(op) => format!("site L{layer}.{component}.{op}"),
                None => format!("site L{layer}.{component}"),
            },
            Found::Nothing => "nothing found".into(),
        }
    }
}

/// Find `query` in `v`: a site name first (a bare component or operation name is
/// taken at `layer`, the drilldown's), then a token whose text holds it (the first
/// such token after `after`, so searching again goes on to the next one).
pub fn find(v: &TraceView, query: &str, layer: usize, after: Option<u32>) -> Found {
    let q = query.trim();
    if q.is_empty() {
        return Found::Nothing;
    }
    if let Some(f) = site(v, q, layer) {
        return f;
    }
    let steps = &v.steps;
    let start = after.and_then(|s| steps.row(s)).map_or(0, |r| r + 1);
    let n = steps.step.len();
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&r| steps.text[r].contains(q))
        .map_or(Found::Nothing, |r| Found::Token {
            step: steps.step[r],
            text: steps.text[r].clone(),
        })
}

/// `L12.q_proj`, `L3.attention.softmax`, `q_proj`, `softmax`.
fn site(v: &TraceView, q: &str, layer: usize) -> Option<Found> {
    let (layer, rest) = match q.strip_prefix('L').and_then(|r| r.split_once('.')) {
        Some((l, rest)) => (l.parse::<usize>().ok()?, rest),
        None => (layer, q),
    };
    let (component, op) = match rest.split_once('.') {
        Some((c, o)) => (c, Some(o)),
        None => (rest, None),
    };
    let at = |l: usize| {
        v.trace
            .sites
            .iter()
            .filter(move |s| s.layer.map(usize::from) == Some(l))
    };
    // A component of that layer, or one of its operations.
    if let Some(s) = at(layer).find(|s| {
        s.component == component && s.op.as_deref() == op && (op.is_some() || s.is_component())
    }) {
        return Some(Found::Site {
            layer,
            component: s.component.clone(),
            op: s.op.clone(),
        });
    }
    if op.is_none()
        && let Some(s) = at(layer).find(|s| s.op.as_deref() == Some(component))
    {
        return Some(Found::Site {
            layer,
            component: s.component.clone(),
            op: s.op.clone(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tests::view;
    use eprof_format::Depth;

    #[test]
    fn finds_sites_by_name_and_tokens_by_text() {
        let v = view(6, 3, Depth::Deep);
        let site = |l: usize, c: &str, op: Option<&str>| Found::Site {
            layer: l,
            component: c.into(),
            op: op.map(str::to_string),
        };
        assert_eq!(find(&v, "L2.q_proj", 0, None), site(2, "q_proj", None));
        assert_eq!(find(&v, "q_proj", 1, None), site(1, "q_proj", None));
        assert_eq!(
            find(&v, "softmax", 1, None),
            site(1, "attention", Some("softmax"))
        );
        assert_eq!(
            find(&v, "L0.attention.softmax", 2, None),
            site(0, "attention", Some("softmax"))
        );
        assert_eq!(find(&v, "L9.q_proj", 0, None), Found::Nothing);
        let Found::Token { step, text } = find(&v, "tok3", 0, None) else {
            panic!("a token")
        };
        assert_eq!((step, text.as_str()), (3, " tok3"));
        // Again from there: the next match, round the end.
        let Found::Token { step, .. } = find(&v, "tok", 0, Some(5)) else {
            panic!("a token")
        };
        assert_eq!(step, 0);
        assert_eq!(find(&v, "  ", 0, None), Found::Nothing);
        assert_eq!(find(&v, "zebra", 0, None), Found::Nothing);
    }
}
