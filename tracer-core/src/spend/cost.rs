//! Cost of one call from its token usage and a model price.

use crate::call::{LlmCall, Usage};

use super::prices::{ModelPrice, PriceTable};

const PER_TOKEN: f64 = 1.0 / 1_000_000.0;

/// Cost in USD of a call with `usage` at `price`, or `None` when the usage needed is unknown.
///
/// `usage.input_tokens` includes cached and cache-creation input (the OTel rule, see
/// [`Usage`]). Cache reads are charged at the cached price (input price when the table has none);
/// cache creation at the cache-write price when the table has one, else as plain input; the rest
/// of the input at the input price; output at the output price. Reasoning tokens are part of
/// the output tokens and are not charged twice.
///
/// Input tokens must be known. Output tokens must be known unless the operation produces none
/// (`embeddings`); an unknown count is never taken as 0.
pub fn cost_usd(price: &ModelPrice, usage: &Usage, operation: &str) -> Option<f64> {
    let input = usage.input_tokens?;
    let output = match usage.output_tokens {
        Some(n) => n,
        None if operation == "embeddings" => 0,
        None => return None,
    };
    let cache_read = usage.cache_read_input_tokens.unwrap_or(0).min(input);
    let cache_write = match price.cache_write {
        Some(_) => usage
            .cache_creation_input_tokens
            .unwrap_or(0)
            .min(input - cache_read),
        None => 0,
    };
    let plain = input - cache_read - cache_write;
    let output_price = match price.output {
        Some(p) => p,
        // An input-only entry (embeddings) cannot price output tokens.
        None if output == 0 => 0.0,
        None => return None,
    };
    let cost = plain as f64 * price.input
        + cache_read as f64 * price.cached_input.unwrap_or(price.input)
        + cache_write as f64 * price.cache_write.unwrap_or(price.input)
        + output as f64 * output_price;
    Some(cost * PER_TOKEN)
}

/// The model name a call is priced by: the response's (what was served and billed), else the
/// request's.
pub fn billed_model(call: &LlmCall) -> Option<&str> {
    call.response
        .model
        .as_deref()
        .or(call.request.model.as_deref())
        .filter(|m| !m.is_empty())
}

/// Cost of `call` with `table`; `None` when the model has no price or the usage is unknown.
pub fn call_cost(table: &PriceTable, call: &LlmCall) -> Option<f64> {
    let model = billed_model(call)?;
    let price = table.lookup(&call.provider, model)?;
    cost_usd(price.price, &call.usage, &call.operation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(input: f64, cached: Option<f64>, write: Option<f64>, out: Option<f64>) -> ModelPrice {
        ModelPrice {
            input,
            cached_input: cached,
            cache_write: write,
            output: out,
            as_of: None,
        }
    }

    fn usage(i: Option<u64>, o: Option<u64>, read: Option<u64>, write: Option<u64>) -> Usage {
        Usage {
            input_tokens: i,
            output_tokens: o,
            cache_read_input_tokens: read,
            cache_creation_input_tokens: write,
            reasoning_output_tokens: None,
        }
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn openai_with_cached_input() {
        // gpt-4o: 2.50 in, 1.25 cached, 10.00 out. 1000 in of which 400 cached, 200 out.
        let p = price(2.5, Some(1.25), None, Some(10.0));
        let c = cost_usd(&p, &usage(Some(1000), Some(200), Some(400), None), "chat");
        // 600*2.5 + 400*1.25 + 200*10 = 1500 + 500 + 2000 = 4000 per 1M
        assert!(close(c, 0.004), "{c:?}");
    }

    #[test]
    fn anthropic_with_cache_creation() {
        // 3 in, 0.3 read, 3.75 write, 15 out. input_tokens = 100 plain + 2000 read + 500 write.
        let p = price(3.0, Some(0.3), Some(3.75), Some(15.0));
        let c = cost_usd(
            &p,
            &usage(Some(2600), Some(50), Some(2000), Some(500)),
            "chat",
        );
        // 100*3 + 2000*0.3 + 500*3.75 + 50*15 = 300 + 600 + 1875 + 750 = 3525
        assert!(close(c, 0.003525), "{c:?}");
    }

    #[test]
    fn cache_creation_without_a_write_price_is_plain_input() {
        let p = price(2.0, None, None, Some(8.0));
        let c = cost_usd(
            &p,
            &usage(Some(1000), Some(0), Some(100), Some(300)),
            "chat",
        );
        // cached without cached price -> input price: 1000*2 = 2000
        assert!(close(c, 0.002), "{c:?}");
    }

    #[test]
    fn unknown_usage_gives_no_cost() {
        let p = price(2.5, Some(1.25), None, Some(10.0));
        assert_eq!(
            cost_usd(&p, &usage(None, Some(10), None, None), "chat"),
            None
        );
        assert_eq!(
            cost_usd(&p, &usage(Some(10), None, None, None), "chat"),
            None
        );
        assert_eq!(cost_usd(&p, &Usage::default(), "chat"), None);
    }

    #[test]
    fn embeddings_need_no_output() {
        let p = price(0.02, None, None, None);
        let c = cost_usd(&p, &usage(Some(5000), None, None, None), "embeddings");
        assert!(close(c, 0.0001), "{c:?}");
        // Output tokens with no output price: unknown, not free.
        assert_eq!(
            cost_usd(&p, &usage(Some(5000), Some(3), None, None), "chat"),
            None
        );
    }

    #[test]
    fn inconsistent_counts_never_underflow() {
        let p = price(3.0, Some(0.3), Some(3.75), Some(15.0));
        let c = cost_usd(&p, &usage(Some(10), Some(1), Some(50), Some(50)), "chat");
        // Cache read capped at input: 10*0.3 + 1*15 = 18
        assert!(close(c, 0.000018), "{c:?}");
        let c = cost_usd(
            &p,
            &usage(Some(u64::MAX), Some(u64::MAX), None, None),
            "chat",
        );
        assert!(c.is_some_and(f64::is_finite));
    }

    #[test]
    fn call_cost_prefers_response_model() {
        let table = PriceTable::builtin();
        let mut call = LlmCall {
            provider: "openai".into(),
            operation: "chat".into(),
            ..Default::default()
        };
        call.request.model = Some("gpt-4o".into());
        call.response.model = Some("gpt-4o-mini-2024-07-18".into());
        call.usage = usage(Some(1_000_000), Some(1_000_000), None, None);
        // gpt-4o-mini: 0.15 + 0.60
        assert!(close(call_cost(&table, &call), 0.75));
        call.response.model = None;
        assert!(close(call_cost(&table, &call), 12.5));
        call.request.model = Some("gpt-unknown".into());
        assert_eq!(call_cost(&table, &call), None);
    }
}
