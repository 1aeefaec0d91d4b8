//! ACLs for reads, the way the agent resolves them (reference §4.1; agent/http.go
//! `parseTokenInternal`): which token a request carries and what that token may
//! see. Only reads are gated; agent writes and `/v1/_standin/*` ignore tokens so
//! test set-up never needs one. Pure; no I/O.

use crate::http::HttpRequest;
use crate::Acl;

/// How ACLs treat a read (reference §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclVerdict {
    Allow,
    /// Entries hidden; `flagged` sets `X-Consul-Results-Filtered-By-ACLs`, which
    /// Consul only does when the request carried a (valid) token.
    Filter {
        flagged: bool,
    },
    /// `403 ACL not found`.
    Deny,
}

/// The token a request carries: `?token=`, then `X-Consul-Token`, then
/// `Authorization: Bearer` (agent/http.go `parseTokenInternal`).
pub fn token_of(req: &HttpRequest) -> Option<String> {
    let bearer = || {
        let v = req.header("Authorization")?;
        let (scheme, rest) = v.split_once(' ')?;
        let token = rest.split_whitespace().next()?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.to_string())
    };
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    req.param("token")
        .and_then(nonempty)
        .or_else(|| req.header("X-Consul-Token").and_then(nonempty))
        .or_else(bearer)
}

/// With ACLs off everything is allowed; with them on, the anonymous token may not
/// read (default-deny), a `no_read` token is filtered, an unknown one is refused.
pub fn acl_verdict(acl: Option<&Acl>, token: Option<&str>) -> AclVerdict {
    let Some(acl) = acl else {
        return AclVerdict::Allow;
    };
    match token {
        None => AclVerdict::Filter { flagged: false },
        Some(t) if acl.full.iter().any(|f| f == t) => AclVerdict::Allow,
        Some(t) if acl.no_read.iter().any(|f| f == t) => AclVerdict::Filter { flagged: true },
        Some(_) => AclVerdict::Deny,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::read_request;

    fn req(method: &str, target: &str, headers: &str) -> HttpRequest {
        let raw = format!("{method} {target} HTTP/1.1\r\n{headers}\r\n");
        read_request(&mut raw.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn token_precedence_and_bearer() {
        let r = req(
            "GET",
            "/x?token=q",
            "X-Consul-Token: h\r\nAuthorization: Bearer b\r\n",
        );
        assert_eq!(token_of(&r).as_deref(), Some("q"));
        let r = req(
            "GET",
            "/x",
            "X-Consul-Token: h\r\nAuthorization: Bearer b\r\n",
        );
        assert_eq!(token_of(&r).as_deref(), Some("h"));
        let r = req("GET", "/x", "Authorization: bearer b extra\r\n");
        assert_eq!(token_of(&r).as_deref(), Some("b"));
        let r = req("GET", "/x", "Authorization: Basic abc\r\n");
        assert_eq!(token_of(&r), None);
    }

    #[test]
    fn acl_verdicts() {
        let acl = Acl {
            full: vec!["f".into()],
            no_read: vec!["n".into()],
        };
        assert_eq!(acl_verdict(None, Some("x")), AclVerdict::Allow);
        assert_eq!(acl_verdict(Some(&acl), Some("f")), AclVerdict::Allow);
        assert_eq!(
            acl_verdict(Some(&acl), Some("n")),
            AclVerdict::Filter { flagged: true }
        );
        assert_eq!(
            acl_verdict(Some(&acl), None),
            AclVerdict::Filter { flagged: false }
        );
        assert_eq!(acl_verdict(Some(&acl), Some("x")), AclVerdict::Deny);
    }
}
