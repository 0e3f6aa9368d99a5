//! `--jsonl PATH`: one JSON object per call, every `LlmCall` field plus wall-clock times, cost
//! and the process. `llm-tracer spend` reads these files back.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::Serialize;
use tracer_core::call::LlmCall;

use super::{ExportedCall, ProcessInfo, Sink, SinkError};

/// The JSONL line: `LlmCall` flattened, plus the fields below.
#[derive(Debug, Serialize)]
pub struct JsonlRecord<'a> {
    /// Request start, RFC 3339 UTC with milliseconds.
    pub time: String,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub duration_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_first_chunk_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    pub process: &'a ProcessInfo,
    #[serde(flatten)]
    pub call: &'a LlmCall,
}

impl<'a> JsonlRecord<'a> {
    pub fn new(c: &'a ExportedCall<'a>) -> Self {
        JsonlRecord {
            time: humantime::format_rfc3339_millis(c.start()).to_string(),
            start_time_unix_nano: c.start_unix_ns(),
            end_time_unix_nano: c.end_unix_ns(),
            duration_s: c.duration_s(),
            time_to_first_chunk_s: c.time_to_first_chunk_s(),
            cost_usd: c.cost_usd,
            process: &c.process,
            call: c.call,
        }
    }
}

pub struct JsonlSink<W: Write + Send> {
    out: W,
}

impl JsonlSink<BufWriter<File>> {
    /// Append to `path` (created when missing).
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(JsonlSink::new(BufWriter::new(file)))
    }
}

impl<W: Write + Send> JsonlSink<W> {
    pub fn new(out: W) -> Self {
        JsonlSink { out }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write + Send> Sink for JsonlSink<W> {
    fn name(&self) -> &'static str {
        "jsonl"
    }

    fn export(&mut self, call: &ExportedCall<'_>) -> Result<(), SinkError> {
        let mut line = serde_json::to_vec(&JsonlRecord::new(call))?;
        line.push(b'\n');
        // One write per line, flushed: a reader (or a crash) never sees half a record.
        self.out.write_all(&line)?;
        self.out.flush()?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use tracer_core::spend::{GroupBy, Ledger, PriceTable};

    fn written() -> String {
        let mut sink = JsonlSink::new(Vec::new());
        for call in [openai_stream(), anthropic_429(), unknown_model_incomplete()] {
            sink.export(&exported(&call)).unwrap();
        }
        String::from_utf8(sink.into_inner()).unwrap()
    }

    #[test]
    fn one_object_per_call_with_every_field() {
        let text = written();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["time"], "2025-11-25T13:00:01.000Z");
        assert_eq!(v["start_time_unix_nano"], 1_764_075_601_000_000_000u64);
        assert_eq!(v["end_time_unix_nano"], 1_764_075_602_204_000_000u64);
        assert_eq!(v["duration_s"], 1.204);
        assert_eq!(v["time_to_first_chunk_s"], 0.321);
        assert_eq!(v["cost_usd"], 0.000375);
        assert_eq!(v["process"]["pid"], 4242);
        assert_eq!(v["process"]["service_name"], "chatbot");
        assert_eq!(
            v["process"]["command_line"],
            "python3 agent.py --api-key [REDACTED]"
        );
        // The LlmCall fields, flattened, round-trip exactly.
        let back: LlmCall = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, openai_stream());
        // Unknown stays unknown: no usage on the 429, no cost.
        let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert!(v.get("cost_usd").is_none());
        assert!(v["usage"]["input_tokens"].is_null());
    }

    #[test]
    fn spend_reads_what_jsonl_writes() {
        let table = PriceTable::builtin();
        let mut ledger = Ledger::new(GroupBy::Process, None);
        for l in written().lines() {
            ledger.add_line(l, &table);
        }
        let report = ledger.report(&table);
        let expected = "\
PROCESS  CALLS  INPUT  CACHED  OUTPUT       COST
chatbot      1   1200     200     350  $0.000375
curl         1     10       0       0          -
node         1      0       0       0          -
TOTAL        3   1210     200     350  $0.000375
prices: USD per 1M tokens, as of 2025-10-01
no price for: openai/gpt-9-experimental (1 call)
usage unknown (no cost): 1 call
";
        assert_eq!(report, expected, "\n{report}");
    }
}
