//! How `eprof serve` runs: its limits and the token, set by the command line.

/// How `eprof serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Required on every API call and WebSocket when set (`Authorization: Bearer T`,
    /// or `?token=T` where a browser cannot set headers).
    pub token: Option<String>,
    /// Let a request name a model by path instead of by id.
    pub allow_model_paths: bool,
    /// Largest request body, bytes (413 above).
    pub max_body_bytes: usize,
    /// Longest prompt, characters (400 above).
    pub max_prompt_chars: usize,
    /// Most tokens a request may generate (400 above).
    pub max_tokens: u32,
    /// Runs that may wait behind the running one (503 above).
    pub max_queue: usize,
    /// Bytes queued for one WebSocket client before its oldest power samples are
    /// dropped.
    pub ws_buffer_bytes: usize,
    /// Bytes queued for one client (that has stopped reading) before it is
    /// disconnected.
    pub ws_limit_bytes: usize,
    /// The viewer page served at `/`, if this build has it.
    pub viewer_html: Option<&'static str>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            token: None,
            allow_model_paths: false,
            max_body_bytes: 64 * 1024,
            max_prompt_chars: 32 * 1024,
            max_tokens: 8192,
            max_queue: 16,
            ws_buffer_bytes: 4 << 20,
            ws_limit_bytes: 64 << 20,
            viewer_html: None,
        }
    }
}
