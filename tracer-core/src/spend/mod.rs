//! Spend: what each call cost, from a dated price table (built in, overridable by a user file),
//! and a ledger that sums calls, tokens and cost by process, model or provider.
//!
//! Pure: the caller reads files and the clock; this module only parses, computes and formats.

pub mod cost;
pub mod ledger;
pub mod prices;

pub use cost::{billed_model, call_cost, cost_usd};
pub use ledger::{format_usd, GroupBy, Ledger, Row, SpendRecord};
pub use prices::{ModelPrice, PriceError, PriceMatch, PriceTable, BUILTIN_PRICES_JSON};
