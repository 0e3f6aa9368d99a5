//! The llm-tracer agent: the edges around the pure core (probe attach, capture, export).
pub mod capture;
pub mod cli;
pub mod export;
pub mod k8s;
pub mod privilege;
pub mod probe;
