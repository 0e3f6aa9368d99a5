//! Incremental body framings used by LLM streams: SSE, NDJSON, AWS event stream, streamed JSON array.
