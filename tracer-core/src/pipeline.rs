//! The whole pure pipeline: TlsEvents in, LlmCalls out.
