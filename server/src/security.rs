//! The checks every request passes before a handler sees it (docs/architecture.md,
//! "The server"):
//! - `Host` must name this server (a loopback name and its port when bound to
//!   loopback), so a DNS-rebinding page cannot reach it under another name;
//! - a mutating request or a WebSocket upgrade with an `Origin` header must come from
//!   this server's own origin, so another site's page cannot start or delete runs
//!   (requests without `Origin`, like curl's, are not from a browser page);
//! - with a token, every API call and WebSocket must carry it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

#[derive(Debug)]
pub struct Security {
    /// `Host` values accepted; empty: any (bound beyond loopback, where the token
    /// guards).
    hosts: Vec<String>,
    token: Option<String>,
    pub max_body_bytes: usize,
}

impl Security {
    pub fn new(addr: SocketAddr, token: Option<String>, max_body_bytes: usize) -> Self {
        let port = addr.port();
        let hosts = if addr.ip().is_loopback() {
            ["127.0.0.1", "localhost", "[::1]"]
                .into_iter()
                .flat_map(|h| [h.to_string(), format!("{h}:{port}")])
                .collect()
        } else {
            Vec::new()
        };
        Security {
            hosts,
            token,
            max_body_bytes,
        }
    }

    /// Why a request must be refused, if it must.
    pub fn check(&self, req: &Request) -> Result<(), ApiError> {
        let h = req.headers();
        let host = h
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if host.is_empty() || (!self.hosts.is_empty() && !self.hosts.iter().any(|x| x == host)) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("Host {host:?} is not this server"),
            )
            .hint("connect as http://127.0.0.1:PORT or http://localhost:PORT"));
        }
        let path = req.uri().path();
        let upgrade = h.contains_key(header::UPGRADE) || path.starts_with("/ws/");
        let mutating = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if (mutating || upgrade)
            && let Some(origin) = h.get(header::ORIGIN)
        {
            let ok = origin
                .to_str()
                .ok()
                .and_then(|o| o.strip_prefix("http://"))
                .is_some_and(|o| o == host);
            if !ok {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("requests from origin {origin:?} are not allowed"),
                )
                .hint("only pages served by this eprof may start, stop or delete runs"));
            }
        }
        let guarded = path.starts_with("/api/") || path.starts_with("/ws/") || path == "/metrics";
        if let (true, Some(token)) = (guarded, &self.token) {
            let bearer = h
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let query = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
            let given = bearer.or(query).unwrap_or("");
            if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "this server needs its token",
                )
                .hint("send `Authorization: Bearer TOKEN` (or ?token=TOKEN on the WebSocket); `eprof serve` printed it"));
            }
        }
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn guard(State(sec): State<Arc<Security>>, req: Request, next: Next) -> Response {
    match sec.check(&req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> Request {
        let mut b = axum::http::Request::builder().method(method).uri(path);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(Body::empty()).unwrap()
    }

    fn status(s: &Security, r: &Request) -> Option<StatusCode> {
        s.check(r).err().map(|e| e.status())
    }

    #[test]
    fn loopback_checks_host_and_origin() {
        let s = Security::new("127.0.0.1:7878".parse().unwrap(), None, 0);
        let ok = req("GET", "/api/models", &[("Host", "127.0.0.1:7878")]);
        assert_eq!(status(&s, &ok), None);
        assert_eq!(status(&s, &req("GET", "/", &[("Host", "localhost")])), None);
        let rebound = req("GET", "/api/models", &[("Host", "attacker.example:7878")]);
        assert_eq!(status(&s, &rebound), Some(StatusCode::FORBIDDEN));
        assert_eq!(
            status(&s, &req("GET", "/", &[])),
            Some(StatusCode::FORBIDDEN)
        );
        let foreign = [
            ("Host", "127.0.0.1:7878"),
            ("Origin", "http://evil.example"),
        ];
        assert_eq!(
            status(&s, &req("POST", "/api/profiling/generate", &foreign)),
            Some(StatusCode::FORBIDDEN)
        );
        // Reading is not mutating: a foreign page's GET (no CORS headers are sent, so
        // it cannot read the answer) is not refused here.
        assert_eq!(status(&s, &req("GET", "/api/models", &foreign)), None);
        let own = [
            ("Host", "127.0.0.1:7878"),
            ("Origin", "http://127.0.0.1:7878"),
        ];
        assert_eq!(
            status(&s, &req("DELETE", "/api/profiling/run/x", &own)),
            None
        );
    }

    #[test]
    fn beyond_loopback_any_host_but_the_token_is_required() {
        let s = Security::new(
            "0.0.0.0:7878".parse().unwrap(),
            Some("0123456789abcdef".into()),
            0,
        );
        let h = ("Host", "gpu-box.lan:7878");
        assert_eq!(
            status(&s, &req("GET", "/api/models", &[h])),
            Some(StatusCode::UNAUTHORIZED)
        );
        let bearer = ("Authorization", "Bearer 0123456789abcdef");
        assert_eq!(status(&s, &req("GET", "/api/models", &[h, bearer])), None);
        assert_eq!(
            status(
                &s,
                &req("GET", "/ws/profiling?token=0123456789abcdef", &[h])
            ),
            None
        );
        assert_eq!(
            status(
                &s,
                &req("GET", "/ws/profiling?token=0123456789abcdeX", &[h])
            ),
            Some(StatusCode::UNAUTHORIZED)
        );
        // Prometheus sends the token as a bearer credential (`authorization:` in the
        // scrape config).
        assert_eq!(
            status(&s, &req("GET", "/metrics", &[h])),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(status(&s, &req("GET", "/metrics", &[h, bearer])), None);
        // The page itself needs no token (it asks for one).
        assert_eq!(status(&s, &req("GET", "/", &[h])), None);
    }
}
