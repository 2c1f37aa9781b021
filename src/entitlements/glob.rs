//! Channel glob patterns: `*` matches any run of characters (including none
//! and including `/`), `?` exactly one character (a Unicode scalar value);
//! every other character, `[` and `\` included, matches itself. The pattern
//! covers the whole channel name.
//!
//! Matching is the classic two-pointer algorithm that backtracks only to the
//! last `*`: O(pattern × name) in the worst case, no allocation, no recursion.

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Glob(Box<str>);

/// True when `entry` is a glob (contains `*` or `?`) rather than a name.
pub(super) fn is_glob(entry: &str) -> bool {
    entry.contains(['*', '?'])
}

/// Length in bytes of the UTF-8 character starting with `lead`.
fn char_len(lead: u8) -> usize {
    match lead {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

impl Glob {
    /// Compile a pattern (every string is a valid pattern).
    pub(super) fn new(pattern: &str) -> Self {
        Self(pattern.into())
    }

    /// True when the whole of `name` matches.
    pub(super) fn matches(&self, name: &str) -> bool {
        let p = self.0.as_bytes();
        let t = name.as_bytes();
        let (mut pi, mut ti) = (0usize, 0usize);
        // Position after the last `*` seen, and the name position it resumes at.
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match (p.get(pi), t.get(ti)) {
                (Some(b'*'), _) => {
                    pi += 1;
                    star = Some((pi, ti));
                    continue;
                }
                (Some(b'?'), Some(&c)) => {
                    pi += 1;
                    ti += char_len(c);
                    continue;
                }
                (Some(&pc), Some(&c)) if pc == c => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
            // Mismatch: let the last `*` swallow one more character.
            match star {
                Some((sp, st)) => {
                    let st = st + t.get(st).map_or(1, |&c| char_len(c));
                    star = Some((sp, st));
                    pi = sp;
                    ti = st;
                }
                None => return false,
            }
        }
        // The name is used up (a `?` may have stepped past a truncated
        // character only in malformed input, which `&str` excludes).
        p.get(pi..)
            .is_some_and(|rest| rest.iter().all(|&b| b == b'*'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("news/*", "news/bbc", true),
            ("news/*", "news/", true),
            ("news/*", "news/a/b", true),
            ("news/*", "news", false),
            ("news/*", "sports/news/x", false),
            ("sports-*", "sports-1", true),
            ("sports-*", "sports", false),
            ("*", "", true),
            ("*", "anything/at/all", true),
            ("", "", true),
            ("", "a", false),
            ("ch?", "ch1", true),
            ("ch?", "ch", false),
            ("ch?", "ch12", false),
            ("ch??", "ch12", true),
            ("?", "é", true),
            ("?", "日", true),
            ("??", "日", false),
            ("ch?x", "chéx", true),
            ("*-hd", "news-hd", true),
            ("*-hd", "news-hd-backup", false),
            ("*-hd*", "news-hd-backup", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            (
                "a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
            ("[ab]", "[ab]", true),
            ("[ab]", "a", false),
            ("**", "x", true),
            ("*?", "", false),
            ("*?", "x", true),
            ("News/*", "news/x", false),
        ];
        assert!(!cases.is_empty());
        for &(pat, name, want) in cases {
            assert_eq!(Glob::new(pat).matches(name), want, "{pat:?} vs {name:?}");
        }
    }

    #[test]
    fn is_glob_detects_wildcards() {
        assert!(is_glob("news/*"));
        assert!(is_glob("ch?"));
        assert!(!is_glob("ch1"));
        assert!(!is_glob("[x]"));
    }

    /// Reference matcher over chars, recursive, for the property test.
    fn reference(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && reference(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
        }
    }

    proptest::proptest! {
        #[test]
        fn matches_reference(p in "[ab*?é/]{0,8}", t in "[abé/]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            proptest::prop_assert_eq!(Glob::new(&p).matches(&t), reference(&pc, &tc));
        }
    }
}
