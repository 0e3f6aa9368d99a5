//! The price table: USD per million tokens, per provider and model, with model-name matching.
//!
//! The built-in table is `tracer-core/data/prices.json`; a user file of the same shape overrides
//! or extends it entry by entry (`PriceTable::merge`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The built-in table, embedded at compile time.
pub const BUILTIN_PRICES_JSON: &str = include_str!("../../data/prices.json");

#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("price table is not valid JSON of the expected shape: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("price for {provider}/{model}: {field} must be a finite number >= 0")]
    Invalid {
        provider: String,
        model: String,
        field: &'static str,
    },
}

/// Prices of one model, USD per 1M tokens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Uncached input.
    pub input: f64,
    /// Cache read (OpenAI "cached input", Anthropic "cache hits"). Absent: cached input is
    /// charged at the input price.
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Cache creation (Anthropic "cache writes"). Absent: cache-creation tokens count as plain
    /// input.
    #[serde(default)]
    pub cache_write: Option<f64>,
    /// Output. Absent for input-only models (embeddings).
    #[serde(default)]
    pub output: Option<f64>,
    /// When this entry was last checked (overrides the table's `as_of`).
    #[serde(default)]
    pub as_of: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PriceFile {
    #[serde(default)]
    as_of: Option<String>,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
    #[serde(default)]
    providers: BTreeMap<String, BTreeMap<String, ModelPrice>>,
}

/// A loaded price table.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    as_of: Option<String>,
    /// provider -> provider whose table applies (e.g. `azure.ai.openai` -> `openai`).
    aliases: BTreeMap<String, String>,
    /// provider -> lower-cased model -> price.
    providers: BTreeMap<String, BTreeMap<String, ModelPrice>>,
}

/// A successful lookup: which table entry priced the model.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceMatch<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub price: &'a ModelPrice,
}

impl PriceTable {
    /// The table shipped with the binary.
    pub fn builtin() -> Self {
        // The embedded file is checked by a unit test, so this cannot fail in a built binary.
        Self::from_json(BUILTIN_PRICES_JSON).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Result<Self, PriceError> {
        let file: PriceFile = serde_json::from_str(text)?;
        let mut providers = BTreeMap::new();
        for (provider, models) in file.providers {
            let mut table = BTreeMap::new();
            for (model, price) in models {
                validate(&provider, &model, &price)?;
                table.insert(model.to_ascii_lowercase(), price);
            }
            providers.insert(provider, table);
        }
        Ok(PriceTable {
            as_of: file.as_of,
            aliases: file.aliases,
            providers,
        })
    }

    /// Overlay `other` (a user file) on this table: its entries replace or add to ours.
    pub fn merge(&mut self, other: PriceTable) {
        if other.as_of.is_some() {
            self.as_of = other.as_of;
        }
        self.aliases.extend(other.aliases);
        for (provider, models) in other.providers {
            self.providers.entry(provider).or_default().extend(models);
        }
    }

    pub fn as_of(&self) -> Option<&str> {
        self.as_of.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        self.providers.values().all(BTreeMap::is_empty)
    }

    /// Find the price of `model` as served by `provider`: exact name first, then with dated or
    /// versioned suffixes stripped (`gpt-4o-2024-08-06` -> `gpt-4o`), after removing routing
    /// prefixes (`openai/gpt-4o`, `models/gemini-2.0-flash`, Bedrock `us.anthropic.claude-...`).
    pub fn lookup(&self, provider: &str, model: &str) -> Option<PriceMatch<'_>> {
        let lowered = model.trim().to_ascii_lowercase();
        if lowered.is_empty() {
            return None;
        }
        let (vendor, bare) = split_prefixes(&lowered);
        // Clouds and routers that resell first-party models at the vendor's list price: the
        // model family tells which vendor table applies (Claude on Vertex, GPT via OpenRouter).
        let family = RESELLERS
            .contains(&provider)
            .then(|| family_vendor(bare))
            .flatten();
        let mut tables: Vec<&str> = Vec::with_capacity(4);
        for p in [
            Some(provider),
            self.aliases.get(provider).map(String::as_str),
            vendor,
            family,
        ]
        .into_iter()
        .flatten()
        {
            if !tables.contains(&p) {
                tables.push(p);
            }
        }
        for name in [lowered.as_str(), bare] {
            let mut candidate = name;
            loop {
                for table in &tables {
                    if let Some((k, (model, price))) = self
                        .providers
                        .get_key_value(*table)
                        .and_then(|(k, t)| t.get_key_value(candidate).map(|e| (k, e)))
                    {
                        return Some(PriceMatch {
                            provider: k,
                            model,
                            price,
                        });
                    }
                }
                match strip_version_suffix(candidate) {
                    Some(shorter) => candidate = shorter,
                    None => break,
                }
            }
        }
        None
    }
}

fn validate(provider: &str, model: &str, price: &ModelPrice) -> Result<(), PriceError> {
    let fields = [
        ("input", Some(price.input)),
        ("cached_input", price.cached_input),
        ("cache_write", price.cache_write),
        ("output", price.output),
    ];
    for (field, value) in fields {
        if let Some(v) = value {
            if !v.is_finite() || v < 0.0 {
                return Err(PriceError::Invalid {
                    provider: provider.to_string(),
                    model: model.to_string(),
                    field,
                });
            }
        }
    }
    Ok(())
}

/// Providers that serve other vendors' models at the vendor's list price. The `*_compatible`
/// ones are unknown hosts speaking a vendor's API, most often gateways (LiteLLM, corporate
/// proxies) in front of that vendor: a vendor model name there is priced as the vendor's.
const RESELLERS: &[&str] = &[
    "gcp.vertex_ai",
    "aws.bedrock",
    "azure.ai.openai",
    "azure.ai.inference",
    "openrouter",
    "openai_compatible",
    "anthropic_compatible",
];

/// The vendor table of a model family, by name prefix.
fn family_vendor(model: &str) -> Option<&'static str> {
    const FAMILIES: &[(&str, &str)] = &[
        ("claude-", "anthropic"),
        ("gemini-", "gcp.gemini"),
        ("gpt-", "openai"),
        ("o1", "openai"),
        ("o3", "openai"),
        ("o4", "openai"),
        ("text-embedding-3", "openai"),
        ("mistral-", "mistral_ai"),
        ("codestral", "mistral_ai"),
        ("deepseek-", "deepseek"),
        ("command-", "cohere"),
    ];
    FAMILIES
        .iter()
        .find(|(prefix, _)| model.starts_with(prefix))
        .map(|(_, vendor)| *vendor)
}

/// Bedrock model-id vendor prefixes and the provider tables they map to.
const VENDOR_PREFIXES: &[(&str, &str)] = &[
    ("anthropic.", "anthropic"),
    ("mistral.", "mistral_ai"),
    ("cohere.", "cohere"),
    ("deepseek.", "deepseek"),
    ("openai.", "openai"),
];

/// Bedrock cross-region inference profile prefixes.
const REGION_PREFIXES: &[&str] = &["us.", "eu.", "apac.", "us-gov.", "global."];

/// Remove routing prefixes. Returns the vendor table implied by the prefix, if any, and the bare
/// model name.
fn split_prefixes(model: &str) -> (Option<&'static str>, &str) {
    let mut vendor = None;
    // `openai/gpt-4o` (routers), `models/gemini-2.0-flash` (Gemini), `publishers/google/models/x`.
    let mut bare = match model.rsplit_once('/') {
        Some((prefix, rest)) => {
            let first = prefix.split('/').next().unwrap_or(prefix);
            vendor = vendor_of_router_prefix(first);
            rest
        }
        None => model,
    };
    for region in REGION_PREFIXES {
        if let Some(rest) = bare.strip_prefix(region) {
            if VENDOR_PREFIXES.iter().any(|(p, _)| rest.starts_with(p)) {
                bare = rest;
            }
        }
    }
    for (prefix, table) in VENDOR_PREFIXES {
        if let Some(rest) = bare.strip_prefix(prefix) {
            vendor = Some(table);
            bare = rest;
            break;
        }
    }
    (vendor, bare)
}

fn vendor_of_router_prefix(prefix: &str) -> Option<&'static str> {
    match prefix {
        "openai" => Some("openai"),
        "anthropic" => Some("anthropic"),
        "google" | "gemini" => Some("gcp.gemini"),
        "mistralai" | "mistral" => Some("mistral_ai"),
        "deepseek" | "deepseek-ai" => Some("deepseek"),
        "cohere" => Some("cohere"),
        _ => None,
    }
}

/// Strip one trailing version/date marker, or `None` when there is none:
/// `-2024-08-06`, `-20241022`, `@20240620`, `-0613`, `-001`, `-latest`, `-v2:0`, `:0`, `-v1`,
/// `-preview`, `-exp`.
fn strip_version_suffix(model: &str) -> Option<&str> {
    if let Some((head, tail)) = model.rsplit_once(':') {
        if !head.is_empty() && !tail.contains('-') {
            return Some(head);
        }
    }
    if let Some((head, _)) = model.rsplit_once('@') {
        if !head.is_empty() {
            return Some(head);
        }
    }
    // ISO date: ...-YYYY-MM-DD
    if let (Some(head), Some(tail)) = (
        model.get(..model.len().saturating_sub(11)),
        model.get(model.len().saturating_sub(11)..),
    ) {
        let b = tail.as_bytes();
        if b.len() == 11
            && b[0] == b'-'
            && b[5] == b'-'
            && b[8] == b'-'
            && [1, 2, 3, 4, 6, 7, 9, 10]
                .iter()
                .all(|&i| b[i].is_ascii_digit())
            && !head.is_empty()
        {
            return Some(head);
        }
    }
    let (head, tail) = model.rsplit_once('-')?;
    if head.is_empty() {
        return None;
    }
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let is_marker = matches!(tail, "latest" | "preview" | "exp")
        || (numeric(tail) && matches!(tail.len(), 3 | 4 | 6 | 8))
        || (tail.len() >= 2 && tail.starts_with('v') && numeric(&tail[1..]));
    is_marker.then_some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PriceTable {
        PriceTable::builtin()
    }

    #[test]
    fn builtin_table_parses_and_is_dated() {
        let t = PriceTable::from_json(BUILTIN_PRICES_JSON).expect("built-in table parses");
        assert!(!t.is_empty());
        assert_eq!(t.as_of(), Some("2025-10-01"));
    }

    #[test]
    fn exact_and_dated_names() {
        let t = table();
        let m = t.lookup("openai", "gpt-4o-mini").unwrap();
        assert_eq!((m.provider, m.model), ("openai", "gpt-4o-mini"));
        let m = t.lookup("openai", "gpt-4o-2024-08-06").unwrap();
        assert_eq!(m.model, "gpt-4o");
        let m = t.lookup("openai", "gpt-4o-mini-2024-07-18").unwrap();
        assert_eq!(m.model, "gpt-4o-mini");
        let m = t.lookup("anthropic", "claude-3-5-sonnet-20241022").unwrap();
        assert_eq!(m.model, "claude-3-5-sonnet");
        let m = t.lookup("anthropic", "claude-3-5-sonnet-latest").unwrap();
        assert_eq!(m.model, "claude-3-5-sonnet");
        let m = t.lookup("anthropic", "claude-sonnet-4-5-20250929").unwrap();
        assert_eq!(m.model, "claude-sonnet-4-5");
        let m = t.lookup("openai", "gpt-3.5-turbo-0125").unwrap();
        assert_eq!(m.model, "gpt-3.5-turbo");
        let m = t.lookup("gcp.gemini", "gemini-1.5-pro-002").unwrap();
        assert_eq!(m.model, "gemini-1.5-pro");
        // Case does not matter.
        assert_eq!(t.lookup("openai", "GPT-4o").unwrap().model, "gpt-4o");
    }

    #[test]
    fn prefixes_and_aliases() {
        let t = table();
        let m = t.lookup("openrouter", "openai/gpt-4o").unwrap();
        assert_eq!((m.provider, m.model), ("openai", "gpt-4o"));
        let m = t.lookup("gcp.gemini", "models/gemini-2.0-flash").unwrap();
        assert_eq!(m.model, "gemini-2.0-flash");
        let m = t.lookup("gcp.vertex_ai", "gemini-2.5-pro").unwrap();
        assert_eq!(m.provider, "gcp.gemini");
        let m = t
            .lookup("aws.bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0")
            .unwrap();
        assert_eq!((m.provider, m.model), ("anthropic", "claude-3-5-sonnet"));
        let m = t
            .lookup(
                "aws.bedrock",
                "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            )
            .unwrap();
        assert_eq!(m.model, "claude-3-7-sonnet");
        let m = t.lookup("azure.ai.openai", "gpt-4o-2024-11-20").unwrap();
        assert_eq!(m.provider, "openai");
        // Vertex serves Anthropic models under its own provider name: the family decides.
        let m = t
            .lookup("gcp.vertex_ai", "claude-3-5-haiku@20241022")
            .unwrap();
        assert_eq!((m.provider, m.model), ("anthropic", "claude-3-5-haiku"));
        // A gateway speaking OpenAI's API with an OpenAI model name.
        let m = t.lookup("openai_compatible", "gpt-4o-mini").unwrap();
        assert_eq!((m.provider, m.model), ("openai", "gpt-4o-mini"));
        assert!(t.lookup("openai_compatible", "llama-3.1-8b").is_none());
        // Self-hosted servers are not resellers: an open model there has no list price.
        assert!(t.lookup("vllm", "mistral-small").is_none());
        assert!(t.lookup("ollama", "deepseek-chat").is_none());
    }

    #[test]
    fn unknown_models_have_no_price() {
        let t = table();
        assert!(t.lookup("openai", "gpt-9-ultra").is_none());
        assert!(t.lookup("openai", "").is_none());
        assert!(t.lookup("nobody", "gpt-4o").is_none());
        // A longer name is not priced by a shorter entry's price.
        assert!(t.lookup("openai", "gpt-4o-audio-preview").is_none());
        // Odd input never panics.
        for odd in [
            "-",
            "@",
            ":",
            "/",
            "a-",
            "-2024-08-06",
            "////",
            "us.",
            "x@",
            "é-2024",
        ] {
            let _ = t.lookup("openai", odd);
        }
    }

    #[test]
    fn user_file_overrides_and_extends() {
        let mut t = table();
        let user = PriceTable::from_json(
            r#"{"as_of":"2026-11-01","aliases":{"groq":"meta"},
                "providers":{"openai":{"gpt-4o":{"input":1.0,"output":2.0}},
                             "meta":{"llama-3.1-8b-instant":{"input":0.05,"output":0.08}}}}"#,
        )
        .unwrap();
        t.merge(user);
        assert_eq!(t.as_of(), Some("2026-11-01"));
        assert_eq!(t.lookup("openai", "gpt-4o").unwrap().price.input, 1.0);
        // Untouched entries remain.
        assert_eq!(t.lookup("openai", "gpt-4o-mini").unwrap().price.input, 0.15);
        let m = t.lookup("groq", "llama-3.1-8b-instant").unwrap();
        assert_eq!(m.price.output, Some(0.08));
    }

    #[test]
    fn bad_files_are_errors_not_panics() {
        assert!(PriceTable::from_json("").is_err());
        assert!(PriceTable::from_json("{\"providers\":{\"x\":{\"m\":{\"input\":-1}}}}").is_err());
        assert!(PriceTable::from_json("{\"providers\":{\"x\":{\"m\":{\"inptu\":1}}}}").is_err());
        assert!(PriceTable::from_json("3").is_err());
        assert!(
            PriceTable::from_json("{\"providers\":{\"x\":{\"m\":{\"input\":\"1\"}}}}").is_err()
        );
    }
}
