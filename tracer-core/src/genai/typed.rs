//! Small typed readers of stream messages, shared by the providers' fast paths: a borrowed
//! string and a token count read exactly as the `Value` getters of [`super::common`] read them.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Number;

pub type Str<'a> = Option<BStr<'a>>;

/// A JSON string borrowed from the input when it has no escapes. (`#[serde(borrow)]` does
/// not reach a `Cow` inside an `Option`: serde's own `Cow` impl always copies.)
pub struct BStr<'a>(Cow<'a, str>);

impl std::ops::Deref for BStr<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for BStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = BStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BStr(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(BStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Whether a field is there at all (even `null`): `#[serde(default, deserialize_with = "present")]`.
pub fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

/// A token count as [`super::common::u64_at`] reads it.
pub fn count(n: &Option<Number>) -> Option<u64> {
    let n = n.as_ref()?;
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0)
            .map(|f| f as u64)
    })
}

/// A non-empty string, as [`super::common::nonempty_str_at`] reads it.
pub fn nonempty<'s>(s: &'s Str<'_>) -> Option<&'s str> {
    s.as_deref().filter(|s| !s.is_empty())
}
