//! The origin of a URL (scheme, host, port), the unit the sanctioned destinations are compared
//! in: `https://assistant.internal.example/v1` and `https://assistant.internal.example:443/x`
//! are one destination; `https://assistant.internal.example@evil.example/` is evil.example.

/// Scheme, lowercase host (IPv6 without brackets) and port (the scheme's default when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// Parses an absolute `http`/`https`/`ws`/`wss` URL; anything else is `None`.
    pub fn of(url: &str) -> Option<Origin> {
        let url = url.trim();
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" | "ws" => 80,
            "https" | "wss" => 443,
            _ => return None,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        // Userinfo (`user:pass@`) is not the host: the host follows the last '@'.
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = if let Some(inner) = host_port.strip_prefix('[') {
            let (host, after) = inner.split_once(']')?;
            (host, after.strip_prefix(':'))
        } else {
            match host_port.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            }
        };
        if host.is_empty() {
            return None;
        }
        let port = match port {
            Some(p) if !p.is_empty() => p.parse().ok()?,
            _ => default_port,
        };
        Some(Origin { scheme, host: host.trim_end_matches('.').to_ascii_lowercase(), port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_what_a_client_connects_to() {
        let a = Origin::of("https://Assistant.Internal.Example/v1").unwrap();
        assert_eq!(a, Origin::of("https://assistant.internal.example:443/other?q").unwrap());
        assert_ne!(a, Origin::of("http://assistant.internal.example/v1").unwrap());
        assert_eq!(Origin::of("https://assistant.internal.example@evil.example/v1").unwrap().host, "evil.example");
        assert_eq!(
            Origin::of("http://[::1]:8788/v1").unwrap(),
            Origin { scheme: "http".into(), host: "::1".into(), port: 8788 }
        );
        assert_eq!(Origin::of("http://127.0.0.1:8788").unwrap().port, 8788);
        for bad in ["", "assistant.internal.example", "file:///etc/passwd", "https://", "http://h:notaport/"] {
            assert_eq!(Origin::of(bad), None, "{bad}");
        }
    }
}
