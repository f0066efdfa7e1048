//! Big-endian time keys, so that a range scan over a tree returns records in time order.
//!
//! A time key is the Unix time in milliseconds as 8 big-endian bytes, followed by a
//! caller-chosen suffix that makes keys unique within one millisecond (a member name, a
//! counter). Byte order of keys then equals time order, and all records of one millisecond
//! sort by suffix. Composite keys join text parts with [`KEY_SEPARATOR`].

/// The byte that separates the text parts of a composite key (team, host, alert name). Text
/// parts must not contain it; then the byte order of keys equals the order of their parts,
/// and `part 0x00` is a prefix that selects exactly the keys of that part.
pub const KEY_SEPARATOR: u8 = 0;

/// Length of the time prefix of a time key.
pub const TIME_PREFIX_LEN: usize = 8;

/// The key of a record at `unix_ms`: 8 big-endian bytes of time, then `suffix`.
pub fn time_key(unix_ms: u64, suffix: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(TIME_PREFIX_LEN + suffix.len());
    key.extend_from_slice(&time_prefix(unix_ms));
    key.extend_from_slice(suffix);
    key
}

/// The time prefix alone: a bound for range scans (`tree.range(time_prefix(from)..time_prefix(to))`
/// yields the records with `from <= time < to`).
pub fn time_prefix(unix_ms: u64) -> [u8; TIME_PREFIX_LEN] {
    unix_ms.to_be_bytes()
}

/// Splits a time key into its time and suffix; `None` when the key is shorter than the time
/// prefix, which means it is not a time key.
pub fn parse_time_key(key: &[u8]) -> Option<(u64, &[u8])> {
    let (prefix, suffix) = key.split_first_chunk::<TIME_PREFIX_LEN>()?;
    Some((u64::from_be_bytes(*prefix), suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_by_time_then_suffix() {
        let mut keys = [
            time_key(1_000, b"b"),
            time_key(256, b"z"),
            time_key(u64::MAX, b""),
            time_key(1_000, b"a"),
            time_key(0, b"x"),
            time_key(255, b"z"),
        ];
        keys.sort();
        let parsed: Vec<(u64, Vec<u8>)> = keys
            .iter()
            .map(|key| {
                let (time, suffix) = parse_time_key(key).unwrap();
                (time, suffix.to_vec())
            })
            .collect();
        assert_eq!(
            parsed,
            vec![
                (0, b"x".to_vec()),
                (255, b"z".to_vec()),
                (256, b"z".to_vec()),
                (1_000, b"a".to_vec()),
                (1_000, b"b".to_vec()),
                (u64::MAX, Vec::new()),
            ]
        );
    }

    #[test]
    fn a_time_key_parses_back_to_its_time_and_suffix() {
        let key = time_key(1_700_000_000_123, b"node-a");
        assert_eq!(
            parse_time_key(&key),
            Some((1_700_000_000_123, &b"node-a"[..]))
        );
    }

    #[test]
    fn a_key_shorter_than_the_time_prefix_is_not_a_time_key() {
        assert_eq!(parse_time_key(&[1, 2, 3]), None);
        assert_eq!(parse_time_key(&[]), None);
    }

    #[test]
    fn a_prefix_range_selects_the_records_of_a_time_window() {
        let keys = [time_key(5, b"a"), time_key(10, b"a"), time_key(15, b"a")];
        let from = time_prefix(10);
        let to = time_prefix(15);
        let inside: Vec<_> = keys
            .iter()
            .filter(|key| key.as_slice() >= &from[..] && key.as_slice() < &to[..])
            .collect();
        assert_eq!(inside, vec![&keys[1]]);
    }
}
