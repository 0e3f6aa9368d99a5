//! W3C Trace Context: the `traceparent` request header into [`TraceParent`].

use super::Headers;
use crate::call::TraceParent;

/// The request's `traceparent`, when present and valid (W3C Trace Context level 1: version 00
/// exactly; later versions are read by their first four fields). Invalid values give `None`.
pub fn parse_traceparent(value: &str) -> Option<TraceParent> {
    let v = value.trim();
    let mut parts = v.split('-');
    let (version, trace_id, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    };
    if !hex(version, 2)
        || version == "ff"
        || !hex(trace_id, 32)
        || !hex(parent, 16)
        || !hex(flags, 2)
    {
        return None;
    }
    // Version 00 has exactly four fields; a future version may append more.
    if version == "00" && parts.next().is_some() {
        return None;
    }
    if trace_id.bytes().all(|c| c == b'0') || parent.bytes().all(|c| c == b'0') {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(TraceParent {
        trace_id: trace_id.to_string(),
        parent_span_id: parent.to_string(),
        sampled: flags & 1 == 1,
    })
}

/// [`parse_traceparent`] on a request's headers.
pub fn from_headers(headers: &Headers) -> Option<TraceParent> {
    headers.get("traceparent").and_then(parse_traceparent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid() {
        let t =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_span_id, "00f067aa0ba902b7");
        assert!(t.sampled);
        let t =
            parse_traceparent(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 ").unwrap();
        assert!(!t.sampled);
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-extra")
                .is_some()
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        let h = Headers(vec![(
            "traceparent".into(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        )]);
        assert!(from_headers(&h).is_some());
        assert!(from_headers(&Headers::default()).is_none());
    }
}
