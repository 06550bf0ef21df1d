//! What a link restores: the URL fragment (`#token=12&metric=energy&range=A-B&zoom=A-B`,
//! plus `run=` and `auth=` on a server) read at start and kept up to date as the
//! selection changes, without a history entry or a scroll.

#[cfg(target_arch = "wasm32")]
pub use browser::*;

/// The selection a link carries. Times are ns on the trace's clock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewState {
    pub token: Option<u32>,
    pub metric: Option<String>,
    pub range: Option<(u64, u64)>,
    pub zoom: Option<(u64, u64)>,
}

impl ViewState {
    pub(crate) fn parse(params: &[(String, String)]) -> ViewState {
        let get = |k: &str| params.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
        let span = |k: &str| {
            let (a, b) = get(k)?.split_once('-')?;
            let (a, b) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?);
            (a < b).then_some((a, b))
        };
        ViewState {
            token: get("token").and_then(|t| t.parse().ok()),
            metric: get("metric").map(str::to_string),
            range: span("range"),
            zoom: span("zoom"),
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod browser {
    use leptos::prelude::*;
    use wasm_bindgen::JsValue;

    use super::ViewState;

    impl ViewState {
        /// The selection in the current URL's fragment.
        pub fn from_url() -> ViewState {
            ViewState::parse(&hash_params())
        }

        fn parts(&self) -> Vec<String> {
            let mut parts = Vec::new();
            if let Some(t) = self.token {
                parts.push(format!("token={t}"));
            }
            if let Some(m) = &self.metric {
                parts.push(format!(
                    "metric={}",
                    js_sys::encode_uri_component(m)
                        .as_string()
                        .unwrap_or_default()
                ));
            }
            if let Some((a, b)) = self.range {
                parts.push(format!("range={a}-{b}"));
            }
            if let Some((a, b)) = self.zoom {
                parts.push(format!("zoom={a}-{b}"));
            }
            parts
        }
    }

    /// `key=value` pairs of the URL's fragment.
    pub fn hash_params() -> Vec<(String, String)> {
        let h = window().location().hash().unwrap_or_default();
        h.trim_start_matches('#')
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| {
                let v = js_sys::decode_uri_component(v)
                    .ok()
                    .and_then(|s| s.as_string())
                    .unwrap_or_else(|| v.to_string());
                (k.to_string(), v)
            })
            .collect()
    }

    pub fn hash_param(key: &str) -> Option<String> {
        hash_params()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Rewrite the fragment: the open runs (on a server), the selection, and the
    /// server's token when the URL carries one.
    pub fn set_hash(runs: &[String], state: &ViewState) {
        let mut parts = Vec::new();
        if !runs.is_empty() {
            parts.push(format!("run={}", runs.join(",")));
        }
        parts.extend(state.parts());
        if let Some(a) = hash_param("auth").filter(|t| !t.is_empty()) {
            parts.push(format!("auth={a}"));
        }
        let url = format!(
            "{}{}#{}",
            window().location().pathname().unwrap_or_default(),
            window().location().search().unwrap_or_default(),
            parts.join("&")
        );
        if let Ok(h) = window().history() {
            let _ = h.replace_state_with_url(&JsValue::NULL, "", Some(&url));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fragment_parses_to_the_selection_it_wrote() {
        let p = |s: &str| {
            s.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let s = ViewState::parse(&p("run=x&token=4&metric=energy&range=10-20&zoom=5-50"));
        assert_eq!(
            s,
            ViewState {
                token: Some(4),
                metric: Some("energy".into()),
                range: Some((10, 20)),
                zoom: Some((5, 50)),
            }
        );
        // A backwards or broken span is no span.
        let s = ViewState::parse(&p("range=20-10&zoom=a-b"));
        assert_eq!((s.range, s.zoom), (None, None));
    }
}
