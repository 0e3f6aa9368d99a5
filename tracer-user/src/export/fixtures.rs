//! Synthetic calls for the export tests.

use std::sync::Arc;

use tracer_core::call::*;

use super::{ExportedCall, ProcessInfo, WallClock};

/// Unix time 2025-11-25T13:00:00Z at monotonic 0.
pub const OFFSET_NS: i128 = 1_764_075_600_000_000_000;

pub fn clock() -> WallClock {
    WallClock::from_offset_ns(OFFSET_NS)
}

/// A streamed OpenAI chat completion inside the caller's trace.
pub fn openai_stream() -> LlmCall {
    LlmCall {
        origin: Origin {
            pid: 4242,
            tid: 4243,
            comm: "python3".into(),
            conn: 0xdead,
        },
        provider: "openai".into(),
        operation: "chat".into(),
        api_type: Some("chat_completions".into()),
        request: RequestParams {
            model: Some("gpt-4o-mini".into()),
            max_tokens: Some(256),
            temperature: Some(0.7),
            top_p: Some(0.9),
            stop_sequences: Some(vec!["END".into()]),
            seed: Some(42),
            stream: Some(true),
            service_tier: Some("auto".into()),
            ..Default::default()
        },
        response: ResponseInfo {
            model: Some("gpt-4o-mini-2024-07-18".into()),
            id: Some("chatcmpl-abc123".into()),
            finish_reasons: vec!["stop".into()],
            service_tier: Some("default".into()),
            system_fingerprint: Some("fp_44709d6fcb".into()),
        },
        usage: Usage {
            input_tokens: Some(1200),
            output_tokens: Some(350),
            cache_read_input_tokens: Some(200),
            cache_creation_input_tokens: None,
            reasoning_output_tokens: None,
        },
        server_address: Some("api.openai.com".into()),
        server_port: Some(443),
        http_method: "POST".into(),
        http_path: "/v1/chat/completions".into(),
        http_status: Some(200),
        error_type: None,
        streamed: true,
        output_chunks: 41,
        timing: Timing {
            request_start_ns: 1_000_000_000,
            request_end_ns: Some(1_001_000_000),
            response_start_ns: Some(1_300_000_000),
            first_output_ns: Some(1_321_000_000),
            end_ns: 2_204_000_000,
        },
        quality: CaptureQuality::default(),
        trace_parent: Some(TraceParent {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            parent_span_id: "00f067aa0ba902b7".into(),
            sampled: true,
        }),
        content: None,
        http_version: "1.1".into(),
    }
}

/// A rate-limited Anthropic call: no usage, error status.
pub fn anthropic_429() -> LlmCall {
    LlmCall {
        origin: Origin {
            pid: 777,
            tid: 777,
            comm: "node".into(),
            conn: 1,
        },
        provider: "anthropic".into(),
        operation: "chat".into(),
        request: RequestParams {
            model: Some("claude-3-5-haiku-20241022".into()),
            max_tokens: Some(1024),
            ..Default::default()
        },
        server_address: Some("api.anthropic.com".into()),
        server_port: Some(443),
        http_method: "POST".into(),
        http_path: "/v1/messages".into(),
        http_status: Some(429),
        error_type: Some("rate_limit_error".into()),
        timing: Timing {
            request_start_ns: 5_000_000_000,
            end_ns: 5_120_000_000,
            ..Default::default()
        },
        http_version: "2".into(),
        ..Default::default()
    }
}

/// A non-streamed call to a model the price table does not know, cut short.
pub fn unknown_model_incomplete() -> LlmCall {
    LlmCall {
        origin: Origin {
            pid: 31337,
            tid: 31337,
            comm: "curl".into(),
            conn: 2,
        },
        provider: "openai".into(),
        operation: "chat".into(),
        request: RequestParams {
            model: Some("gpt-9-experimental".into()),
            ..Default::default()
        },
        usage: Usage {
            input_tokens: Some(10),
            ..Default::default()
        },
        server_address: Some("llm.internal".into()),
        server_port: Some(8443),
        http_method: "POST".into(),
        http_path: "/v1/chat/completions".into(),
        http_status: Some(200),
        error_type: Some("incomplete".into()),
        quality: CaptureQuality {
            incomplete: true,
            gap: true,
            ..Default::default()
        },
        timing: Timing {
            request_start_ns: 9_000_000_000,
            end_ns: 9_500_000_000,
            ..Default::default()
        },
        http_version: "1.1".into(),
        ..Default::default()
    }
}

pub fn process_for(call: &LlmCall) -> Arc<ProcessInfo> {
    let mut p = ProcessInfo::from_origin(&call.origin);
    if call.origin.pid == 4242 {
        p.service_name = "chatbot".into();
        p.executable_name = Some("python3.11".into());
        p.executable_path = Some("/usr/bin/python3.11".into());
        p.command_line = Some("python3 agent.py --api-key [REDACTED]".into());
        p.owner = Some("alice".into());
        p.attributes = vec![("deployment.environment".into(), "dev".into())];
        p.start_ticks = Some(1000);
    }
    Arc::new(p)
}

pub fn exported(call: &LlmCall) -> ExportedCall<'_> {
    let prices = tracer_core::spend::PriceTable::builtin();
    ExportedCall {
        call,
        process: process_for(call),
        cost_usd: tracer_core::spend::call_cost(&prices, call),
        clock: clock(),
    }
}

/// Log lines written while `f` runs (a `tracing` subscriber for this thread only).
pub fn logs_of(f: impl FnOnce()) -> String {
    use std::sync::Mutex;
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("test buffer").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let out = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || buf.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(sub, f);
    let text = out.0.lock().expect("test buffer").clone();
    String::from_utf8_lossy(&text).into_owned()
}
