//! The spend ledger: calls, tokens and cost summed by process, model or provider, and its report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use crate::call::{Origin, Usage};

use super::cost::cost_usd;
use super::prices::PriceTable;

/// What the ledger needs from one JSONL call record (the shape written by `--jsonl`). Other
/// fields are ignored, so records from newer versions still read.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SpendRecord {
    #[serde(default)]
    pub start_time_unix_nano: Option<u64>,
    #[serde(default)]
    pub provider: String,
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub request: ModelField,
    #[serde(default)]
    pub response: ModelField,
    #[serde(default)]
    pub usage: Usage,
    #[serde(default)]
    pub cost_usd: Option<f64>,
    #[serde(default)]
    pub process: Option<ProcessName>,
    #[serde(default)]
    pub origin: Origin,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ModelField {
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProcessName {
    #[serde(default)]
    pub service_name: Option<String>,
    #[serde(default)]
    pub executable_name: Option<String>,
}

impl SpendRecord {
    pub fn model(&self) -> Option<&str> {
        self.response
            .model
            .as_deref()
            .or(self.request.model.as_deref())
            .filter(|m| !m.is_empty())
    }

    fn process_name(&self) -> String {
        let p = self.process.as_ref();
        p.and_then(|p| p.service_name.clone())
            .or_else(|| p.and_then(|p| p.executable_name.clone()))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                if self.origin.comm.is_empty() {
                    format!("pid {}", self.origin.pid)
                } else {
                    self.origin.comm.clone()
                }
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupBy {
    #[default]
    Process,
    Model,
    Provider,
}

impl GroupBy {
    fn title(self) -> &'static str {
        match self {
            GroupBy::Process => "PROCESS",
            GroupBy::Model => "MODEL",
            GroupBy::Provider => "PROVIDER",
        }
    }
}

/// Totals of one group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub calls: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Calls with a known cost (the cost column is `-` when none).
    pub priced_calls: u64,
}

/// Sums call records into rows.
#[derive(Debug, Clone)]
pub struct Ledger {
    by: GroupBy,
    since_unix_nano: Option<u64>,
    rows: BTreeMap<String, Row>,
    /// `provider/model` -> calls with no price in the table.
    unpriced: BTreeMap<String, u64>,
    /// Calls whose model is priced but whose usage is unknown (e.g. a stream cut short).
    usage_unknown: u64,
    /// Records outside the `since` window, or undated when a window is set.
    filtered: u64,
    /// Lines that were not a call record.
    unreadable: u64,
}

impl Ledger {
    pub fn new(by: GroupBy, since_unix_nano: Option<u64>) -> Self {
        Ledger {
            by,
            since_unix_nano,
            rows: BTreeMap::new(),
            unpriced: BTreeMap::new(),
            usage_unknown: 0,
            filtered: 0,
            unreadable: 0,
        }
    }

    /// Add one JSONL line. Blank lines are ignored; anything unreadable is counted, never fatal.
    pub fn add_line(&mut self, line: &str, table: &PriceTable) {
        if line.trim().is_empty() {
            return;
        }
        match serde_json::from_str::<SpendRecord>(line) {
            Ok(record) => self.add(&record, table),
            Err(_) => self.unreadable += 1,
        }
    }

    pub fn add(&mut self, record: &SpendRecord, table: &PriceTable) {
        if let Some(since) = self.since_unix_nano {
            if record.start_time_unix_nano.is_none_or(|t| t < since) {
                self.filtered += 1;
                return;
            }
        }
        let model = record.model();
        // The cost recorded at capture time wins; otherwise price it now (the table may have
        // gained the model since).
        let price = model.and_then(|m| table.lookup(&record.provider, m));
        let cost = record.cost_usd.filter(|c| c.is_finite()).or_else(|| {
            price
                .as_ref()
                .and_then(|p| cost_usd(p.price, &record.usage, &record.operation))
        });
        if cost.is_none() {
            if price.is_some() {
                self.usage_unknown += 1;
            } else {
                let name = format!("{}/{}", record.provider, model.unwrap_or("(unknown model)"));
                *self.unpriced.entry(name).or_default() += 1;
            }
        }
        let key = match self.by {
            GroupBy::Process => record.process_name(),
            GroupBy::Model => format!(
                "{} ({})",
                model.unwrap_or("(unknown model)"),
                record.provider
            ),
            GroupBy::Provider => record.provider.clone(),
        };
        let row = self.rows.entry(key).or_default();
        row.calls += 1;
        let u = &record.usage;
        row.input_tokens = row.input_tokens.saturating_add(u.input_tokens.unwrap_or(0));
        row.cached_input_tokens = row
            .cached_input_tokens
            .saturating_add(u.cache_read_input_tokens.unwrap_or(0));
        row.output_tokens = row
            .output_tokens
            .saturating_add(u.output_tokens.unwrap_or(0));
        if let Some(c) = cost {
            row.cost_usd += c;
            row.priced_calls += 1;
        }
    }

    /// Rows sorted by cost (highest first), then calls, then name.
    pub fn rows(&self) -> Vec<(&str, &Row)> {
        let mut rows: Vec<(&str, &Row)> = self.rows.iter().map(|(k, r)| (k.as_str(), r)).collect();
        rows.sort_by(|a, b| {
            b.1.cost_usd
                .total_cmp(&a.1.cost_usd)
                .then(b.1.calls.cmp(&a.1.calls))
                .then(a.0.cmp(b.0))
        });
        rows
    }

    pub fn unpriced(&self) -> &BTreeMap<String, u64> {
        &self.unpriced
    }

    pub fn total(&self) -> Row {
        let mut t = Row::default();
        for r in self.rows.values() {
            t.calls += r.calls;
            t.input_tokens = t.input_tokens.saturating_add(r.input_tokens);
            t.cached_input_tokens = t.cached_input_tokens.saturating_add(r.cached_input_tokens);
            t.output_tokens = t.output_tokens.saturating_add(r.output_tokens);
            t.cost_usd += r.cost_usd;
            t.priced_calls += r.priced_calls;
        }
        t
    }

    /// The printed report: an aligned table, a total, and what could not be priced.
    pub fn report(&self, table: &PriceTable) -> String {
        let header = [
            self.by.title(),
            "CALLS",
            "INPUT",
            "CACHED",
            "OUTPUT",
            "COST",
        ];
        let mut lines: Vec<[String; 6]> = Vec::new();
        let cells = |name: &str, r: &Row| -> [String; 6] {
            [
                name.to_string(),
                r.calls.to_string(),
                r.input_tokens.to_string(),
                r.cached_input_tokens.to_string(),
                r.output_tokens.to_string(),
                if r.priced_calls == 0 {
                    "-".to_string()
                } else {
                    format_usd(r.cost_usd)
                },
            ]
        };
        for (name, row) in self.rows() {
            lines.push(cells(name, row));
        }
        let total = cells("TOTAL", &self.total());
        let mut widths = header.map(str::len);
        for l in lines.iter().chain(std::iter::once(&total)) {
            for (w, c) in widths.iter_mut().zip(l.iter()) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let mut put = |cols: &[String; 6]| {
            let mut line = String::new();
            for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
                if i == 0 {
                    let pad = w.saturating_sub(c.chars().count());
                    let _ = write!(line, "{c}{}", " ".repeat(pad));
                } else {
                    let _ = write!(line, "  {c:>w$}");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        };
        put(&header.map(String::from));
        for l in &lines {
            put(l);
        }
        put(&total);
        if let Some(as_of) = table.as_of() {
            let _ = writeln!(out, "prices: USD per 1M tokens, as of {as_of}");
        }
        if !self.unpriced.is_empty() {
            let list: Vec<String> = self
                .unpriced
                .iter()
                .map(|(m, n)| format!("{m} ({n} call{})", if *n == 1 { "" } else { "s" }))
                .collect();
            let _ = writeln!(out, "no price for: {}", list.join(", "));
        }
        if self.usage_unknown > 0 {
            let _ = writeln!(
                out,
                "usage unknown (no cost): {} call{}",
                self.usage_unknown,
                if self.usage_unknown == 1 { "" } else { "s" }
            );
        }
        if self.filtered > 0 {
            let _ = writeln!(out, "outside the time window: {} call(s)", self.filtered);
        }
        if self.unreadable > 0 {
            let _ = writeln!(out, "unreadable lines skipped: {}", self.unreadable);
        }
        out
    }
}

/// `$0.000150`, `$12.34`: six decimals below a dollar so single calls stay visible.
pub fn format_usd(v: f64) -> String {
    if v.abs() >= 1.0 {
        format!("${v:.2}")
    } else {
        format!("${v:.6}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(t: u64, proc: &str, provider: &str, model: &str, i: u64, o: u64, c: u64) -> String {
        format!(
            r#"{{"start_time_unix_nano":{t},"provider":"{provider}","operation":"chat",
               "request":{{"model":"{model}"}},"response":{{"model":null}},
               "usage":{{"input_tokens":{i},"output_tokens":{o},"cache_read_input_tokens":{c}}},
               "process":{{"pid":7,"service_name":"{proc}","executable_name":"python3"}},
               "origin":{{"pid":7,"tid":7,"comm":"python3","conn":1}}}}"#
        )
        .replace('\n', "")
    }

    fn ledger(by: GroupBy, since: Option<u64>) -> Ledger {
        let table = PriceTable::builtin();
        let mut l = Ledger::new(by, since);
        for s in [
            line(100, "agent", "openai", "gpt-4o-mini", 1000, 200, 0),
            line(200, "agent", "openai", "gpt-4o", 2000, 100, 1000),
            line(
                300,
                "batch",
                "anthropic",
                "claude-3-5-haiku-20241022",
                4000,
                1000,
                0,
            ),
            line(400, "batch", "openai", "gpt-9-preview", 10, 10, 0),
            "not json".to_string(),
            String::new(),
        ] {
            l.add_line(&s, &table);
        }
        l
    }

    #[test]
    fn groups_by_process_sorted_by_cost() {
        let table = PriceTable::builtin();
        let l = ledger(GroupBy::Process, None);
        let rows = l.rows();
        assert_eq!(rows.len(), 2);
        // batch: haiku 4000*0.8 + 1000*4 = 7200 per 1M = 0.0072
        // agent: mini 1000*0.15+200*0.6 = 270; 4o 1000*2.5+1000*1.25+100*10 = 4750 -> 0.00502
        assert_eq!(rows[0].0, "batch");
        assert!((rows[0].1.cost_usd - 0.0072).abs() < 1e-12);
        assert_eq!(rows[1].0, "agent");
        assert!((rows[1].1.cost_usd - 0.00502).abs() < 1e-12);
        assert_eq!(rows[1].1.cached_input_tokens, 1000);
        assert_eq!(l.unpriced().get("openai/gpt-9-preview"), Some(&1));
        let report = l.report(&table);
        let expected = "\
PROCESS  CALLS  INPUT  CACHED  OUTPUT       COST
batch        2   4010       0    1010  $0.007200
agent        2   3000    1000     300  $0.005020
TOTAL        4   7010    1000    1310  $0.012220
prices: USD per 1M tokens, as of 2025-10-01
no price for: openai/gpt-9-preview (1 call)
unreadable lines skipped: 1
";
        assert_eq!(report, expected, "\n{report}");
    }

    #[test]
    fn groups_by_model_and_provider() {
        let l = ledger(GroupBy::Model, None);
        let names: Vec<&str> = l.rows().iter().map(|r| r.0).collect();
        assert_eq!(
            names,
            [
                "claude-3-5-haiku-20241022 (anthropic)",
                "gpt-4o (openai)",
                "gpt-4o-mini (openai)",
                "gpt-9-preview (openai)"
            ]
        );
        // The unpriced row shows "-" rather than $0.
        let report = l.report(&PriceTable::builtin());
        let unpriced = report.lines().find(|l| l.starts_with("gpt-9")).unwrap();
        assert!(unpriced.ends_with(" -"), "{unpriced}");
        let l = ledger(GroupBy::Provider, None);
        let rows = l.rows();
        assert_eq!((rows[0].0, rows[0].1.calls), ("anthropic", 1));
        assert_eq!((rows[1].0, rows[1].1.calls), ("openai", 3));
    }

    #[test]
    fn since_window_filters_and_counts() {
        let l = ledger(GroupBy::Provider, Some(250));
        assert_eq!(l.total().calls, 2);
        assert!(l
            .report(&PriceTable::builtin())
            .contains("outside the time window: 2 call(s)"));
    }

    #[test]
    fn recorded_cost_wins_and_unknown_usage_is_reported() {
        let table = PriceTable::builtin();
        let mut l = Ledger::new(GroupBy::Provider, None);
        l.add_line(
            r#"{"provider":"openai","request":{"model":"gpt-4o"},"usage":{"input_tokens":1},"cost_usd":1.5}"#,
            &table,
        );
        l.add_line(
            r#"{"provider":"openai","request":{"model":"gpt-4o"},"usage":{}}"#,
            &table,
        );
        let r = l.total();
        assert_eq!((r.calls, r.priced_calls), (2, 1));
        assert_eq!(r.cost_usd, 1.5);
        assert!(l
            .report(&table)
            .contains("usage unknown (no cost): 1 call\n"));
    }
}
