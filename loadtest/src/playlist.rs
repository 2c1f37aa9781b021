//! What a player reads from a playlist: variants of a multivariant
//! playlist; segments, their media sequence numbers and the AES-128 key and
//! IV in effect for each, from a media playlist.
//!
//! Parses with m3u8-rs, as a third-party player would (deliberately not
//! tollgate's own rewriter), and resolves every URI against the playlist's
//! URL (RFC 3986). Pure: no I/O, no clock. Invariant: any input, however
//! malformed, gives an error value, never a panic.

use std::time::Duration;

use m3u8_rs::{KeyMethod, Playlist};
use url::Url;

/// Why a playlist could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaylistError {
    /// Not an HLS playlist m3u8-rs can parse.
    Unparsable,
    /// A multivariant playlist without a playable variant.
    NoVariant,
    /// A media playlist was expected and a multivariant one came, or the
    /// other way round.
    WrongType,
    /// A URI that does not resolve against the playlist URL.
    BadUri,
    /// An `EXT-X-KEY` the harness cannot play (SAMPLE-AES, no URI, bad IV).
    UnsupportedKey,
}

impl PlaylistError {
    /// The cause as the report shows it.
    pub fn cause(&self) -> &'static str {
        match self {
            PlaylistError::Unparsable => "playlist: unparsable",
            PlaylistError::NoVariant => "playlist: no variant",
            PlaylistError::WrongType => "playlist: wrong type",
            PlaylistError::BadUri => "playlist: bad URI",
            PlaylistError::UnsupportedKey => "playlist: unsupported EXT-X-KEY",
        }
    }
}

/// The AES-128 key a segment is encrypted with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    /// Where the 16 key bytes are (absolute).
    pub uri: Url,
    /// The `IV` attribute, or the segment's MSN as a 128-bit big-endian
    /// number (RFC 8216 §5.2).
    pub iv: [u8; 16],
}

/// One segment of a media playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Media sequence number.
    pub msn: u64,
    /// Absolute segment URL.
    pub uri: Url,
    /// `None`: served in the clear.
    pub key: Option<KeyRef>,
}

/// A parsed media playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `EXT-X-TARGETDURATION` (at least 1 s, so polling never spins).
    pub target_duration: Duration,
    /// Segments, in playlist order.
    pub entries: Vec<Entry>,
    /// `EXT-X-ENDLIST` present.
    pub ended: bool,
}

/// What the entry URL answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Variant stream URLs (I-frame streams left out), in playlist order.
    Master(Vec<Url>),
    /// A media playlist.
    Media(Media),
}

/// Parses `body`, the playlist fetched from `base`.
pub fn parse(body: &[u8], base: &Url) -> Result<Parsed, PlaylistError> {
    // m3u8-rs is a third-party parser fed with whatever the network
    // returned: a panic inside it must not take a viewer task down.
    let parsed = std::panic::catch_unwind(|| m3u8_rs::parse_playlist_res(body))
        .map_err(|_| PlaylistError::Unparsable)?
        .map_err(|_| PlaylistError::Unparsable)?;
    match parsed {
        Playlist::MasterPlaylist(master) => {
            let variants = master
                .variants
                .iter()
                .filter(|v| !v.is_i_frame)
                .map(|v| base.join(&v.uri).map_err(|_| PlaylistError::BadUri))
                .collect::<Result<Vec<_>, _>>()?;
            if variants.is_empty() {
                return Err(PlaylistError::NoVariant);
            }
            Ok(Parsed::Master(variants))
        }
        Playlist::MediaPlaylist(media) => {
            let mut entries = Vec::with_capacity(media.segments.len());
            // A key applies to every later segment until the next EXT-X-KEY.
            let mut key: Option<(Url, Option<[u8; 16]>)> = None;
            for (i, seg) in media.segments.iter().enumerate() {
                // m3u8-rs 6 refuses `METHOD=NONE` without an IV and keeps
                // the line as an unknown `X-KEY` tag: it still ends the key.
                // (Its order relative to a parsed key is lost; tollgate
                // writes NONE before an `EXT-X-MAP` and the key after.)
                for tag in seg.unknown_tags.iter().filter(|t| t.tag == "X-KEY") {
                    if tag.rest.as_deref().is_some_and(is_method_none) {
                        key = None;
                    } else {
                        return Err(PlaylistError::UnsupportedKey);
                    }
                }
                if let Some(k) = &seg.key {
                    key = match k.method {
                        KeyMethod::None => None,
                        KeyMethod::AES128 => {
                            let uri = k.uri.as_deref().ok_or(PlaylistError::UnsupportedKey)?;
                            let uri = base.join(uri).map_err(|_| PlaylistError::BadUri)?;
                            let iv = k.iv.as_deref().map(parse_iv).transpose()?;
                            Some((uri, iv))
                        }
                        _ => return Err(PlaylistError::UnsupportedKey),
                    };
                }
                let msn = media.media_sequence.saturating_add(i as u64);
                entries.push(Entry {
                    msn,
                    uri: base.join(&seg.uri).map_err(|_| PlaylistError::BadUri)?,
                    key: key.as_ref().map(|(uri, iv)| KeyRef {
                        uri: uri.clone(),
                        iv: iv.unwrap_or_else(|| tollgate::cbc::iv_for_msn(msn)),
                    }),
                });
            }
            Ok(Parsed::Media(Media {
                target_duration: Duration::from_secs(media.target_duration.max(1)),
                entries,
                ended: media.end_list,
            }))
        }
    }
}

/// Whether an `EXT-X-KEY` attribute list says `METHOD=NONE`.
fn is_method_none(attrs: &str) -> bool {
    attrs
        .split(',')
        .any(|a| a.trim().eq_ignore_ascii_case("METHOD=NONE"))
}

/// `0x` + 32 hex digits (RFC 8216 §4.3.2.4 hexadecimal-sequence).
fn parse_iv(text: &str) -> Result<[u8; 16], PlaylistError> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .ok_or(PlaylistError::UnsupportedKey)?;
    let mut iv = [0u8; 16];
    hex::decode_to_slice(digits, &mut iv).map_err(|_| PlaylistError::UnsupportedKey)?;
    Ok(iv)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("http://127.0.0.1:8080/live/ch1/media.m3u8?tg=CAP").unwrap()
    }

    #[test]
    fn master_variants_resolve_against_the_playlist_url() {
        let text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nmedia.m3u8?tg=A\n\
                    #EXT-X-STREAM-INF:BANDWIDTH=2000\n/other/hi.m3u8?tg=B\n";
        let Parsed::Master(v) = parse(text.as_bytes(), &base()).unwrap() else {
            panic!("not a master");
        };
        assert_eq!(
            v[0].as_str(),
            "http://127.0.0.1:8080/live/ch1/media.m3u8?tg=A"
        );
        assert_eq!(v[1].as_str(), "http://127.0.0.1:8080/other/hi.m3u8?tg=B");
    }

    #[test]
    fn keys_carry_forward_and_ivs_default_to_the_msn() {
        let text = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:41\n\
            #EXT-X-KEY:METHOD=AES-128,URI=\"/.tollgate/key/live/ch1/1/0.key?tg=X\"\n\
            #EXTINF:6.000,\nseg-41.ts?tg=X&tgs=a\n#EXTINF:6.000,\nseg-42.ts?tg=X&tgs=b\n\
            #EXT-X-KEY:METHOD=AES-128,URI=\"k2.key\",IV=0x000102030405060708090a0b0c0d0e0f\n\
            #EXTINF:6.000,\nseg-43.ts\n#EXT-X-KEY:METHOD=NONE\n#EXTINF:6.000,\nseg-44.ts\n";
        let Parsed::Media(m) = parse(text.as_bytes(), &base()).unwrap() else {
            panic!("not media");
        };
        assert_eq!(m.target_duration, Duration::from_secs(6));
        assert!(!m.ended);
        let msns: Vec<u64> = m.entries.iter().map(|e| e.msn).collect();
        assert_eq!(msns, [41, 42, 43, 44]);
        let k0 = m.entries[0].key.as_ref().unwrap();
        let k1 = m.entries[1].key.as_ref().unwrap();
        assert_eq!(k0.uri, k1.uri);
        assert_eq!(
            k0.uri.as_str(),
            "http://127.0.0.1:8080/.tollgate/key/live/ch1/1/0.key?tg=X"
        );
        assert_eq!(k0.iv, tollgate::cbc::iv_for_msn(41));
        assert_eq!(k1.iv, tollgate::cbc::iv_for_msn(42));
        let k2 = m.entries[2].key.as_ref().unwrap();
        assert_eq!(k2.uri.as_str(), "http://127.0.0.1:8080/live/ch1/k2.key");
        assert_eq!(k2.iv, core::array::from_fn(|i| i as u8));
        assert_eq!(m.entries[3].key, None);
        assert_eq!(
            m.entries[0].uri.as_str(),
            "http://127.0.0.1:8080/live/ch1/seg-41.ts?tg=X&tgs=a"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let cases: &[&[u8]] = &[
            b"",
            b"{\"error\":\"forbidden\"}",
            b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=x\n",
            b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"k\"\n#EXTINF:6,\ns.ts\n",
            b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\",IV=0x12\n#EXTINF:6,\ns.ts\n",
            b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-KEY:METHOD=AES-128\n#EXTINF:6,\ns.ts\n",
            b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n",
            b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n#EXTINF:6,\na.ts\n#EXTINF:6,\nb.ts\n",
            &[0xff, 0xfe, 0x00, 0x23],
        ];
        for case in cases {
            // Some are legitimately playable; none may panic.
            let _ = parse(case, &base());
        }
        assert_eq!(parse(b"", &base()), Err(PlaylistError::Unparsable));
        assert_eq!(parse(cases[3], &base()), Err(PlaylistError::UnsupportedKey));
        assert_eq!(parse(cases[4], &base()), Err(PlaylistError::UnsupportedKey));
    }
}
