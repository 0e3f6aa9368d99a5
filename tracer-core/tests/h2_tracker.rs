//! HTTP/2 through the connection tracker: protocol detection (preface, or frames for a
//! connection opened before the capture), capture records cut anywhere, capture losses.

mod common;

use common::*;
use tracer_core::event::Direction;
use tracer_core::http::EndReason;

/// The python-h2 capture of `fixtures/h2/multiplexed.json` as a script (one item per record).
fn script() -> Vec<Item> {
    let path = format!(
        "{}/tests/fixtures/h2/multiplexed.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let hex = r["hex"].as_str().unwrap();
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            let d = if r["dir"] == "write" {
                Direction::Write
            } else {
                Direction::Read
            };
            msg(d, bytes)
        })
        .collect()
}

fn requests(events: &[N]) -> Vec<(u64, String, String, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            N::Req {
                ex,
                method,
                target,
                late,
                ..
            } => Some((*ex, method.clone(), target.clone(), *late)),
            _ => None,
        })
        .collect()
}

#[test]
fn h2_connection_through_the_tracker_at_any_split() {
    let events = split_invariant(&script(), 40);
    let reqs = requests(&events);
    assert_eq!(
        reqs.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 3, 5, 7, 9]
    );
    assert!(reqs.iter().all(|r| r.1 == "POST" && !r.3));
    assert_eq!(reqs[1].2, "/v1/messages");
    let ends: Vec<(u64, EndReason)> = events
        .iter()
        .filter_map(|e| match e {
            N::End { ex, reason, .. } => Some((*ex, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 5);
    assert!(ends.contains(&(7, EndReason::Reset)) && ends.contains(&(9, EndReason::Reset)));
    assert!(ends.contains(&(1, EndReason::Complete)));
}

#[test]
fn h2_connection_attached_mid_way_is_detected_and_flagged() {
    // Start the capture after stream 1's request, 3's head and 5's head were sent.
    let s = script();
    let late = split_invariant(&s[5..], 20);
    let reqs = requests(&late);
    assert!(!reqs.is_empty(), "{late:?}");
    assert!(
        reqs.iter().all(|r| r.3),
        "late attach not flagged: {reqs:?}"
    );
    // Stream 7 and 9 heads were sent after the attach: recovered, with static-table and literal
    // fields only (method, path are static-table names with literal values, or indexed).
    for (ex, method, target, _) in &reqs {
        assert!(method.is_empty() || method == "POST", "{ex}: {method}");
        assert!(
            target.is_empty() || target.starts_with("/v1/"),
            "{ex}: {target}"
        );
    }
    // The responses of streams opened before the attach still come out, with their bodies.
    let data_1: Vec<u8> = late
        .iter()
        .filter_map(|e| match e {
            N::Data { ex: 1, data } => Some(data.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(String::from_utf8_lossy(&data_1).contains("data: [DONE]"));
}

#[test]
fn capture_loss_inside_a_data_frame_keeps_the_framing() {
    // The first read record that starts with a DATA frame loses 10 bytes inside that frame.
    let mut s = script();
    let idx = s
        .iter()
        .position(|i| match i {
            Item::Msg(Direction::Read, b) => {
                b[3] == 0 && u32::from_be_bytes([0, b[0], b[1], b[2]]) > 30
            }
            _ => false,
        })
        .expect("a DATA record");
    let Item::Msg(d, bytes) = s[idx].clone() else {
        unreachable!()
    };
    let sid = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as u64;
    let (a, rest) = bytes.split_at(9 + 5);
    let b = &rest[10..];
    s.splice(idx..=idx, [msg(d, a), Item::Lost(d, 10), msg(d, b)]);
    let events = run(records(&s, Split::Whole));
    let n = normalize(&events);
    let reqs = requests(&n);
    assert_eq!(reqs.len(), 5);
    // Exactly one exchange is flagged with a gap; all five still end.
    let gaps: Vec<u64> = n
        .iter()
        .filter_map(|e| match e {
            N::End { ex, gap: true, .. } => Some(*ex),
            _ => None,
        })
        .collect();
    assert_eq!(gaps, vec![sid]);
    assert_eq!(n.iter().filter(|e| matches!(e, N::End { .. })).count(), 5);
}
