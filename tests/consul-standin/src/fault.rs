//! Fault injection: the `Fault` modes, their `?mode=` spelling for
//! `PUT /v1/_standin/fault`, and how each one turns a correct read response into
//! what actually goes on the wire. Faults hit only the Consul *read* endpoints
//! (health, catalog, agent/self, status/leader); agent writes and `/v1/_standin/*`
//! keep working so a test can always set up state and clear the fault. `Refuse`,
//! `Hang`, `Slow` and `IndexBackwards` are carried out by the server loop; this
//! file decides bytes only. Pure; no I/O.

use std::time::Duration;

use crate::http::Response;

/// A failure mode of the stand-in, switchable at run time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fault {
    /// Behave like a healthy Consul agent.
    #[default]
    None,
    /// Close the listening socket (connects get ECONNREFUSED) and drop open
    /// connections; clearing the fault listens again on the same port.
    Refuse,
    /// `500 No cluster leader`.
    Error500,
    /// `200` with a JSON content type and a body that is not JSON.
    Malformed,
    /// `200` whose body is the first half of the real one, with an *honest*
    /// `Content-Length` for the cut body, then the connection is closed.
    Truncated,
    /// Read the request and never answer until the fault is cleared (then answer
    /// normally) or 60 s pass (then close without an answer).
    Hang,
    /// Wait this long after the request arrives, then answer correctly.
    Slow(Duration),
    /// A valid 200 body padded with JSON whitespace to this many bytes (or the
    /// natural size when that is larger).
    Oversized(usize),
    /// Every index is halved once, when this is set (a snapshot restore);
    /// blocked readers wake and see the lower index. Clearing keeps the new base.
    IndexBackwards,
    /// Headers announcing the full `Content-Length`, half the body, then close.
    CloseMidBody,
    /// `200 []` with `X-Consul-Results-Filtered-By-ACLs: true`.
    AclFiltered,
}

impl Fault {
    /// Parses `mode` plus its argument (`delay_ms` for slow, `bytes` for oversized).
    pub fn from_query(mode: &str, arg: impl Fn(&str) -> Option<String>) -> Result<Fault, String> {
        let number = |key: &str| -> Result<u64, String> {
            let text = arg(key).ok_or_else(|| format!("mode={mode} needs &{key}=N"))?;
            text.parse().map_err(|_| format!("invalid {key}: {text:?}"))
        };
        Ok(match mode {
            "none" | "" => Fault::None,
            "refuse" => Fault::Refuse,
            "error500" => Fault::Error500,
            "malformed" => Fault::Malformed,
            "truncated" => Fault::Truncated,
            "hang" => Fault::Hang,
            "slow" => Fault::Slow(Duration::from_millis(number("delay_ms")?)),
            "oversized" => Fault::Oversized(number("bytes")? as usize),
            "index_backwards" => Fault::IndexBackwards,
            "close_mid_body" => Fault::CloseMidBody,
            "acl_filtered" => Fault::AclFiltered,
            other => return Err(format!("unknown fault mode {other:?}")),
        })
    }

    /// The query-string spelling, inverse of `from_query`.
    pub fn describe(&self) -> String {
        match self {
            Fault::None => "none".into(),
            Fault::Refuse => "refuse".into(),
            Fault::Error500 => "error500".into(),
            Fault::Malformed => "malformed".into(),
            Fault::Truncated => "truncated".into(),
            Fault::Hang => "hang".into(),
            Fault::Slow(d) => format!("slow&delay_ms={}", d.as_millis()),
            Fault::Oversized(n) => format!("oversized&bytes={n}"),
            Fault::IndexBackwards => "index_backwards".into(),
            Fault::CloseMidBody => "close_mid_body".into(),
            Fault::AclFiltered => "acl_filtered".into(),
        }
    }

    /// Whether switching to this fault should cut short a blocked read so the
    /// reader sees it at once (a leader loss fails in-flight queries too).
    pub fn interrupts_blocking(&self) -> bool {
        !matches!(self, Fault::None | Fault::Slow(_))
    }
}

/// What to put on the wire for one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// Send this response as is.
    Whole(Response),
    /// Send this response, then close the connection.
    WholeThenClose(Response),
    /// Announce the full body length but send only `sent` bytes, then close.
    CutShort { resp: Response, sent: usize },
    /// Send `resp` with its body padded with spaces before the last byte to `total`.
    Padded { resp: Response, total: usize },
}

/// What a read answers under `fault`, given the correct response and the body an
/// ACL-filtered answer would carry (`[]` or `{}`). `Refuse`/`Hang` never get here.
pub fn apply(fault: &Fault, normal: Response, filtered_body: &[u8]) -> Wire {
    match fault {
        Fault::Error500 => Wire::Whole(Response::text(500, "No cluster leader")),
        Fault::Malformed => Wire::Whole(Response {
            body: MALFORMED.to_vec(),
            ..normal
        }),
        Fault::Truncated => {
            let cut = normal.body.len() / 2;
            let body = normal.body[..cut].to_vec();
            Wire::WholeThenClose(Response { body, ..normal })
        }
        Fault::CloseMidBody => {
            let sent = normal.body.len() / 2;
            Wire::CutShort { resp: normal, sent }
        }
        Fault::Oversized(n) if *n > normal.body.len() && !normal.body.is_empty() => Wire::Padded {
            total: *n,
            resp: normal,
        },
        Fault::AclFiltered => Wire::Whole(
            Response {
                body: filtered_body.to_vec(),
                ..normal
            }
            .with_header("X-Consul-Results-Filtered-By-ACLs", "true"),
        ),
        _ => Wire::Whole(normal),
    }
}

/// Starts like a real answer, then stops being JSON.
const MALFORMED: &[u8] =
    b"[{\"Node\":{\"ID\":\"8d3c\",\"Node\":\"standin-node\",,}<html>502 Bad Gateway</html>";

#[cfg(test)]
mod tests {
    use super::*;

    fn normal() -> Response {
        Response::json(200, br#"[{"a":1},{"b":2}]"#.to_vec()).with_header("X-Consul-Index", "12")
    }

    #[test]
    fn modes_round_trip_through_their_query_spelling() {
        let all = [
            Fault::None,
            Fault::Refuse,
            Fault::Error500,
            Fault::Malformed,
            Fault::Truncated,
            Fault::Hang,
            Fault::Slow(Duration::from_millis(250)),
            Fault::Oversized(4096),
            Fault::IndexBackwards,
            Fault::CloseMidBody,
            Fault::AclFiltered,
        ];
        for f in all {
            let text = f.describe();
            let (mode, rest) = text.split_once('&').unwrap_or((&text, ""));
            let arg = |k: &str| rest.strip_prefix(&format!("{k}=")).map(str::to_string);
            assert_eq!(Fault::from_query(mode, arg), Ok(f));
        }
        assert!(Fault::from_query("slow", |_| None).is_err());
        assert!(Fault::from_query("explode", |_| None).is_err());
    }

    #[test]
    fn malformed_and_truncated_bodies_are_not_json() {
        for f in [Fault::Malformed, Fault::Truncated] {
            let body = match apply(&f, normal(), b"[]") {
                Wire::Whole(r) | Wire::WholeThenClose(r) => r.body,
                other => panic!("{other:?}"),
            };
            assert!(
                serde_json::from_slice::<serde_json::Value>(&body).is_err(),
                "{f:?}"
            );
        }
    }

    #[test]
    fn close_mid_body_promises_more_than_it_sends() {
        let Wire::CutShort { resp, sent } = apply(&Fault::CloseMidBody, normal(), b"[]") else {
            panic!()
        };
        assert!(sent < resp.body.len());
    }

    #[test]
    fn acl_filtered_keeps_index_and_flags_the_filtering() {
        let Wire::Whole(r) = apply(&Fault::AclFiltered, normal(), b"[]") else {
            panic!()
        };
        assert_eq!(r.body, b"[]");
        assert_eq!(r.header("X-Consul-Results-Filtered-By-ACLs"), Some("true"));
        assert_eq!(r.header("X-Consul-Index"), Some("12"));
    }

    #[test]
    fn oversized_pads_only_when_bigger() {
        assert!(matches!(
            apply(&Fault::Oversized(1000), normal(), b"[]"),
            Wire::Padded { total: 1000, .. }
        ));
        assert!(matches!(
            apply(&Fault::Oversized(3), normal(), b"[]"),
            Wire::Whole(_)
        ));
    }
}
