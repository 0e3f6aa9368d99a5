//! The recording format (`llm-tracer record` / `replay`): one JSON object per TlsEvent.
