//! A member's tags: a small map of `KEY=VALUE` labels gossiped inside its identity.
//!
//! They travel in the header of every datagram the member sends (twice, beside the
//! receiver's identity), so their encoded size is capped at [`MAX_TAGS_BYTES`]: two of them
//! take 512 bytes of foca's 1 400-byte datagram, and a broadcast item beside them still has
//! about 680 bytes.

use std::collections::BTreeMap;

use crate::error::TagError;

/// Tags by key, sorted (the wire order).
pub type Tags = BTreeMap<String, String>;

/// At most this many tags.
pub const MAX_TAGS: usize = 32;
/// Keys are 1 to this many characters of `A-Z a-z 0-9 _ . -`.
pub const MAX_KEY_LEN: usize = 64;
/// Values are at most this many bytes.
pub const MAX_VALUE_LEN: usize = 256;
/// The tags' encoded size (postcard: a length and each key and value with its length).
pub const MAX_TAGS_BYTES: usize = 256;

/// Reads one `KEY=VALUE` (the value may be empty and may contain `=`) and checks it.
pub fn parse_tag(text: &str) -> Result<(String, String), TagError> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| TagError::NoEquals(text.to_owned()))?;
    check_key(key)?;
    check_value(key, value)?;
    Ok((key.to_owned(), value.to_owned()))
}

/// Checks a whole map: every key and value, the count and the encoded size.
pub fn validate_tags(tags: &Tags) -> Result<(), TagError> {
    for (key, value) in tags {
        check_key(key)?;
        check_value(key, value)?;
    }
    if tags.len() > MAX_TAGS {
        return Err(TagError::TooMany(tags.len()));
    }
    let size = encoded_len(tags);
    if size > MAX_TAGS_BYTES {
        return Err(TagError::TooBig(size));
    }
    Ok(())
}

/// Whether a member's `tags` hold every `(key, value)` of `wanted`.
pub fn matches(tags: &Tags, wanted: &[(String, String)]) -> bool {
    wanted.iter().all(|(k, v)| tags.get(k) == Some(v))
}

/// The tags' size on the wire.
pub fn encoded_len(tags: &Tags) -> usize {
    postcard::experimental::serialized_size(tags).unwrap_or(usize::MAX)
}

fn check_key(key: &str) -> Result<(), TagError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.chars().all(ok_char) {
        return Err(TagError::BadKey(key.to_owned()));
    }
    Ok(())
}

fn check_value(key: &str, value: &str) -> Result<(), TagError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(TagError::LongValue(key.to_owned(), value.len()));
    }
    if value.chars().any(is_control) {
        return Err(TagError::ControlInValue(key.to_owned()));
    }
    Ok(())
}

/// C0, DEL, C1, bidirectional marks and overrides, line separators, the byte order mark
/// (the agent's clean-text rules use this same set).
pub fn is_control(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{2028}'
        | '\u{2029}'
        | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_key_equals_value_and_the_value_may_hold_equals() {
        assert_eq!(parse_tag("rack=r1").unwrap(), ("rack".into(), "r1".into()));
        assert_eq!(parse_tag("q=a=b").unwrap(), ("q".into(), "a=b".into()));
        assert_eq!(
            parse_tag("empty=").unwrap(),
            ("empty".into(), String::new())
        );
    }

    #[test]
    fn bad_keys_and_values_are_refused_naming_the_key() {
        assert!(matches!(parse_tag("norack"), Err(TagError::NoEquals(_))));
        assert_eq!(parse_tag("=x"), Err(TagError::BadKey(String::new())));
        assert_eq!(parse_tag("ra ck=x"), Err(TagError::BadKey("ra ck".into())));
        let long_key = format!("{}=x", "k".repeat(65));
        assert!(matches!(parse_tag(&long_key), Err(TagError::BadKey(_))));
        let err = parse_tag("role=a\nb").unwrap_err();
        assert_eq!(err, TagError::ControlInValue("role".into()));
        assert!(err.to_string().contains("role"));
        let long = format!("role={}", "v".repeat(257));
        assert_eq!(
            parse_tag(&long),
            Err(TagError::LongValue("role".into(), 257))
        );
    }

    #[test]
    fn a_map_is_refused_when_too_many_or_too_big_for_a_datagram() {
        let many: Tags = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(validate_tags(&many), Err(TagError::TooMany(33)));
        let big: Tags = (0..3).map(|i| (format!("k{i}"), "v".repeat(100))).collect();
        assert!(matches!(validate_tags(&big), Err(TagError::TooBig(_))));
        let fine: Tags = [("rack".to_owned(), "r1".to_owned())].into();
        assert_eq!(validate_tags(&fine), Ok(()));
    }

    #[test]
    fn a_filter_matches_when_every_wanted_tag_is_there() {
        let tags: Tags = [("rack", "r1"), ("role", "db")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        assert!(matches(&tags, &[]));
        assert!(matches(&tags, &[("rack".into(), "r1".into())]));
        assert!(!matches(
            &tags,
            &[("rack".into(), "r1".into()), ("role".into(), "web".into())]
        ));
    }
}
