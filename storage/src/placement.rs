//! Which hosts keep a host's full history (the agent's `history.replicas`): rendezvous
//! (highest-random-weight) hashing over the cluster's members.
//!
//! Every member scores `weight(host, member)` and the `count` highest keep `host`'s history.
//! All members compute the same set from the same member list, with nothing to agree on;
//! when a member joins or leaves, only the hosts for which it enters or leaves the top
//! `count` change one replica (about `count/N` of them). By default ([`replica_count`] with 0)
//! every member keeps everything while the cluster has at most [`EVERYONE_UP_TO`] members,
//! else [`DEFAULT_REPLICAS`] do.
//!
//! The weight is FNV-1a over `host 0x00 member`, finished by splitmix64's mixer: specified
//! here, so agents of different builds agree (std's hasher is not guaranteed stable).

/// With at most this many members every member keeps every host's history (as before).
pub const EVERYONE_UP_TO: usize = 20;
/// Replicas per host in larger clusters, by default.
pub const DEFAULT_REPLICAS: usize = 5;

/// How many members keep each host's history in a cluster of `members` (us included);
/// `configured` is `history.replicas` (0: the default).
pub fn replica_count(configured: usize, members: usize) -> usize {
    let wanted = match configured {
        0 if members <= EVERYONE_UP_TO => members,
        0 => DEFAULT_REPLICAS,
        n => n,
    };
    wanted.clamp(1, members.max(1))
}

/// The rendezvous weight of `member` for `host`.
pub fn weight(host: &str, member: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in host
        .as_bytes()
        .iter()
        .chain(std::iter::once(&0u8))
        .chain(member.as_bytes())
    {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    // splitmix64's finaliser: FNV's low bits alone spread poorly over similar names.
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// The `count` members of `members` that keep `host`'s history, best first (ties, which need
/// a 64-bit collision, go to the smaller name).
pub fn replicas<'a>(
    host: &str,
    members: impl IntoIterator<Item = &'a str>,
    count: usize,
) -> Vec<String> {
    let mut scored: Vec<(u64, &str)> = members
        .into_iter()
        .map(|member| (weight(host, member), member))
        .collect();
    scored.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(count)
        .map(|(_, member)| member.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn every_member_keeps_everything_up_to_twenty_then_five_do() {
        assert_eq!(replica_count(0, 3), 3);
        assert_eq!(replica_count(0, 20), 20);
        assert_eq!(replica_count(0, 21), 5);
        assert_eq!(replica_count(0, 300), 5);
        assert_eq!(replica_count(3, 300), 3);
        assert_eq!(replica_count(9, 4), 4, "never more than the members");
        assert_eq!(replica_count(0, 0), 1);
    }

    #[test]
    fn every_member_computes_the_same_replicas_whatever_the_order_it_lists_them_in() {
        let members = names(50);
        let mut reversed = members.clone();
        reversed.reverse();
        for host in &members {
            let a = replicas(host, members.iter().map(String::as_str), 5);
            let b = replicas(host, reversed.iter().map(String::as_str), 5);
            assert_eq!(a, b);
            assert_eq!(a.len(), 5);
        }
    }

    #[test]
    fn a_new_member_moves_about_r_over_n_replica_slots_and_nothing_else() {
        let before = names(100);
        let mut after = before.clone();
        after.push("n100".into());
        let mut moved = 0;
        for host in &before {
            let old = replicas(host, before.iter().map(String::as_str), 5);
            let new = replicas(host, after.iter().map(String::as_str), 5);
            let changed = old.iter().filter(|r| !new.contains(r)).count();
            assert!(changed <= 1, "{host}: {old:?} -> {new:?}");
            if changed == 1 {
                assert!(new.contains(&"n100".to_owned()));
            }
            moved += changed;
        }
        // Expected 100 * 5 / 101, about 5.
        assert!((1..=15).contains(&moved), "{moved} slots moved");
    }

    #[test]
    fn the_load_is_spread_over_the_members() {
        let members = names(300);
        let mut load = std::collections::HashMap::new();
        for host in &members {
            for r in replicas(host, members.iter().map(String::as_str), 5) {
                *load.entry(r).or_insert(0) += 1;
            }
        }
        let most = load.values().max().copied().unwrap_or(0);
        // 5 on average; a binomial tail, well under 20.
        assert!(most <= 20, "one member keeps {most} hosts");
        assert_eq!(load.values().sum::<usize>(), 1500);
    }

    #[test]
    fn the_weights_are_fixed_by_this_code_not_by_the_compiler() {
        assert_eq!(weight("n1", "n2"), weight("n1", "n2"));
        assert_ne!(weight("n1", "n2"), weight("n2", "n1"));
        // Pinned: a change here would make old and new agents disagree on the replicas.
        assert_eq!(weight("", ""), 0x25fc_6dd3_6ce0_4b20);
    }
}
