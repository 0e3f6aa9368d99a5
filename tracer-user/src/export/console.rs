//! The default sink: one aligned, readable line per call.
//!
//! ```text
//! TIME (UTC)    PID/PROCESS           PROVIDER              MODEL                           IN    OUT CACHED      TTFC      TIME        COST  STATUS
//! 13:00:01.000  4242/chatbot          openai                gpt-4o-mini-2024-07-18        1200    350    200    0.321s    1.204s   $0.000375  ok
//! ```
//! Columns have fixed widths so successive lines align; a longer value widens its own line only.
//! Unknown values are `-`, never 0.

use std::io::Write;

use tracer_core::spend::format_usd;

use super::{ExportedCall, Sink, SinkError};

/// Column widths (left-aligned text, then right-aligned numbers).
const W_TIME: usize = 12;
const W_PROC: usize = 20;
const W_PROVIDER: usize = 20;
const W_MODEL: usize = 26;
const W_NUM: usize = 6;
const W_SECS: usize = 8;
const W_COST: usize = 10;

pub struct ConsoleSink<W: Write + Send> {
    out: W,
    header_written: bool,
}

impl<W: Write + Send> ConsoleSink<W> {
    pub fn new(out: W) -> Self {
        ConsoleSink {
            out,
            header_written: false,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl ConsoleSink<std::io::Stdout> {
    pub fn stdout() -> Self {
        Self::new(std::io::stdout())
    }
}

pub fn header() -> String {
    format!(
        "{:<W_TIME$}  {:<W_PROC$}  {:<W_PROVIDER$}  {:<W_MODEL$}  {:>W_NUM$} {:>W_NUM$} {:>W_NUM$}  {:>W_SECS$}  {:>W_SECS$}  {:>W_COST$}  STATUS",
        "TIME (UTC)", "PID/PROCESS", "PROVIDER", "MODEL", "IN", "OUT", "CACHED", "TTFC", "TIME", "COST"
    )
}

fn num(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |n| n.to_string())
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |s| format!("{s:.3}s"))
}

/// `HH:MM:SS.mmm` of a unix time in ns, UTC.
fn clock_time(unix_ns: u64) -> String {
    let ms = unix_ns / 1_000_000;
    let day_ms = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

/// The status column: `ok`, or `error <error.type>`, then capture-quality flags.
fn status(c: &ExportedCall<'_>) -> String {
    let call = c.call;
    let mut s = match &call.error_type {
        Some(e) => format!("error {e}"),
        None => "ok".to_string(),
    };
    let q = &call.quality;
    let flags: Vec<&str> = [
        (q.incomplete, "incomplete"),
        (q.truncated, "truncated"),
        (q.gap, "gap"),
        (q.late_attach, "late-attach"),
        (q.decompression_capped, "decompression-capped"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if !flags.is_empty() {
        s.push_str(&format!(" [{}]", flags.join(",")));
    }
    s
}

/// One console line (no newline).
pub fn line(c: &ExportedCall<'_>) -> String {
    let call = c.call;
    let proc_ = format!("{}/{}", c.process.pid, c.process.service_name);
    let cost = c.cost_usd.map_or_else(|| "-".to_string(), format_usd);
    let line = format!(
        "{:<W_TIME$}  {:<W_PROC$}  {:<W_PROVIDER$}  {:<W_MODEL$}  {:>W_NUM$} {:>W_NUM$} {:>W_NUM$}  {:>W_SECS$}  {:>W_SECS$}  {:>W_COST$}  {}",
        clock_time(c.start_unix_ns()),
        proc_,
        call.provider,
        c.display_model().unwrap_or("-"),
        num(call.usage.input_tokens),
        num(call.usage.output_tokens),
        num(call.usage.cache_read_input_tokens),
        secs(c.time_to_first_chunk_s()),
        secs(Some(c.duration_s())),
        cost,
        status(c),
    );
    // Values come from the traffic: keep control characters off the terminal.
    line.chars()
        .map(|ch| if ch.is_control() { '?' } else { ch })
        .collect()
}

impl<W: Write + Send> Sink for ConsoleSink<W> {
    fn name(&self) -> &'static str {
        "console"
    }

    fn export(&mut self, call: &ExportedCall<'_>) -> Result<(), SinkError> {
        if !self.header_written {
            writeln!(self.out, "{}", header())?;
            self.header_written = true;
        }
        writeln!(self.out, "{}", line(call))?;
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

    #[test]
    fn golden_console_output() {
        let mut sink = ConsoleSink::new(Vec::new());
        for call in [openai_stream(), anthropic_429(), unknown_model_incomplete()] {
            sink.export(&exported(&call)).unwrap();
        }
        let out = String::from_utf8(sink.into_inner()).unwrap();
        // Costs: gpt-4o-mini 1000*0.15 + 200*0.075 + 350*0.6 = 375 per 1M.
        let expected = "\
TIME (UTC)    PID/PROCESS           PROVIDER              MODEL                           IN    OUT CACHED      TTFC      TIME        COST  STATUS
13:00:01.000  4242/chatbot          openai                gpt-4o-mini-2024-07-18        1200    350    200    0.321s    1.204s   $0.000375  ok
13:00:05.000  777/node              anthropic             claude-3-5-haiku-20241022        -      -      -         -    0.120s           -  error rate_limit_error
13:00:09.000  31337/curl            openai                gpt-9-experimental              10      -      -         -    0.500s           -  error incomplete [incomplete,gap]
";
        assert_eq!(out, expected, "\n{out}");
        // Every line is aligned up to the status column.
        let col = |l: &str| l.find("STATUS").or_else(|| l.rfind("  ").map(|i| i + 2));
        let cols: Vec<_> = out.lines().map(col).collect();
        assert!(cols.windows(2).all(|w| w[0] == w[1]), "{cols:?}");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let mut call = openai_stream();
        call.response.model = Some("evil\u{1b}[2Jmodel\n".into());
        let l = line(&exported(&call));
        assert!(!l.contains('\u{1b}') && !l.contains('\n'), "{l:?}");
    }
}
