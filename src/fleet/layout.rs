//! The fleet store's key names and the scripts' replies: pure, no I/O.
//!
//! Owns the key layout documented in [`crate::fleet`] and the decoding of the
//! admission and heartbeat scripts' replies into [`Admission`] and [`Beat`].
//! Must not talk to Redis.

use super::{Admission, Beat, FleetError};

/// Key names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct KeyLayout {
    prefix: Box<str>,
}

impl KeyLayout {
    /// A layout under `prefix`, which must not contain `{` or `}` (they would
    /// move the Redis Cluster hash tag).
    pub(crate) fn new(prefix: &str) -> Result<Self, FleetError> {
        if prefix.contains(['{', '}']) {
            return Err(FleetError::Config(
                "key_prefix must not contain '{' or '}'".into(),
            ));
        }
        Ok(Self {
            prefix: prefix.into(),
        })
    }

    /// `{prefix}user:{<user>}`: the user's ZSET of live sessions.
    pub(crate) fn user(&self, user: &str) -> String {
        format!("{}user:{{{user}}}", self.prefix)
    }

    /// `{prefix}ended:{<sid>}`: the marker of an evicted or kicked session.
    pub(crate) fn ended(&self, sid: u64) -> String {
        format!("{}ended:{{{sid}}}", self.prefix)
    }

    /// What the script puts before a session id to name its ended marker
    /// (the script appends `sid .. '}'`).
    pub(crate) fn ended_prefix(&self) -> String {
        format!("{}ended:{{", self.prefix)
    }

    /// `{prefix}ended`: the pub/sub channel every ended session id is
    /// published on (decimal text).
    pub(crate) fn ended_channel(&self) -> String {
        format!("{}ended", self.prefix)
    }
}

/// Decode the admission script's reply (see `admit.lua`).
pub(crate) fn parse_admission(reply: &[String]) -> Result<Admission, FleetError> {
    let bad = || FleetError::Reply(format!("unexpected admission reply {reply:?}"));
    let (code, rest) = reply.split_first().ok_or_else(bad)?;
    match (code.as_str(), rest.is_empty()) {
        ("A", true) => Ok(Admission::Admitted),
        ("R", true) => Ok(Admission::Refreshed),
        ("J", true) => Ok(Admission::Rejected),
        ("K", true) => Ok(Admission::Ended),
        ("E", false) => rest
            .iter()
            .map(|s| s.parse::<u64>().map_err(|_| bad()))
            .collect::<Result<Vec<_>, _>>()
            .map(Admission::Evicted),
        _ => Err(bad()),
    }
}

/// Decode the heartbeat script's reply (see `beat.lua`): the re-added
/// count, then the ended session ids.
pub(crate) fn parse_beat(reply: &[String]) -> Result<Beat, FleetError> {
    let bad = || FleetError::Reply(format!("unexpected heartbeat reply {reply:?}"));
    let (added, ended) = reply.split_first().ok_or_else(bad)?;
    Ok(Beat {
        readded: added.parse().map_err(|_| bad())?,
        ended: ended
            .iter()
            .map(|s| s.parse::<u64>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn key_names() {
        let k = KeyLayout::new("tg:").unwrap();
        assert_eq!(k.user("alice"), "tg:user:{alice}");
        assert_eq!(k.ended(42), "tg:ended:{42}");
        assert_eq!(format!("{}42}}", k.ended_prefix()), k.ended(42));
        assert_eq!(k.ended_channel(), "tg:ended");
        assert!(KeyLayout::new("a{b").is_err());
        assert!(KeyLayout::new("a}b").is_err());
    }

    #[test]
    fn replies() {
        let table: &[(&[&str], Option<Admission>)] = &[
            (&["A"], Some(Admission::Admitted)),
            (&["R"], Some(Admission::Refreshed)),
            (&["J"], Some(Admission::Rejected)),
            (&["K"], Some(Admission::Ended)),
            (&["K", "1"], None),
            (
                &["E", "1", "18446744073709551615"],
                Some(Admission::Evicted(vec![1, u64::MAX])),
            ),
            (&["E"], None),
            (&["E", "x"], None),
            (&["A", "1"], None),
            (&[], None),
            (&["Z"], None),
        ];
        for (reply, want) in table {
            let got = parse_admission(&strings(reply)).ok();
            assert_eq!(&got, want, "{reply:?}");
        }
    }

    #[test]
    fn beat_replies() {
        let got = parse_beat(&strings(&["2", "7", "18446744073709551615"])).unwrap();
        assert_eq!((got.readded, got.ended), (2, vec![7, u64::MAX]));
        let got = parse_beat(&strings(&["0"])).unwrap();
        assert_eq!((got.readded, got.ended), (0, vec![]));
        for bad in [&[][..], &["x"], &["1", "y"], &["-1"]] {
            assert!(parse_beat(&strings(bad)).is_err(), "{bad:?}");
        }
    }
}
