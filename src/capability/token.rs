//! The capability (`tg`, docs/hls.md §4): who may watch which channel of
//! which route until when.
//!
//! ```text
//! tg  = base64url_nopad( 0x01 ‖ flags ‖ be64(sid) ‖ be32(expires) ‖ u8(len) ‖ user [‖ u8(prefix)] [‖ u8(dlen) ‖ hwid] ‖ mac[0..16] )
//! mac = HMAC-SHA256(K_cap, <every byte before mac> ‖ 0 ‖ route ‖ 0 ‖ channel [‖ 0 ‖ ip_enc])
//! ```
//!
//! `flags` bit 0: a user is present (`len = 0` with bit 0 set is the empty
//! user `""`); bit 1: bound to the client IP, whose `ip_enc` (see
//! [`MasterKeys::session_id`]) is then part of the MAC; bit 2 (only with
//! bit 1): bound to the client's network of `prefix` bits instead (the
//! `prefix` byte, 1–127, is then present, and `ip_enc` is of the address
//! with every later bit cleared); bit 3: the session plays on a device
//! (SPEC §7.3) whose hardware id, 1 to [`MAX_HWID_LEN`] bytes, follows.
//! Other bits are refused.
//!
//! Verification allocates nothing but the returned user and device `String`s: the token
//! is decoded into a stack buffer and the MAC is computed from a cloned,
//! pre-keyed HMAC state.

use std::borrow::Cow;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::CapError;
use super::keys::{MasterKeys, finish, update_ip};

/// Longest user id a capability carries as is; longer ids are replaced (see
/// [`wire_user`]).
pub const MAX_USER_LEN: usize = 255;

const VERSION: u8 = 1;
const FLAG_USER: u8 = 0b01;
const FLAG_BIND_IP: u8 = 0b10;
const FLAG_PREFIX: u8 = 0b100;
const FLAG_DEVICE: u8 = 0b1000;
/// Longest hardware id a capability carries (the hardware-id rule's).
pub const MAX_HWID_LEN: usize = crate::entitlements::rules::MAX_HWID_BYTES;
/// ver ‖ flags ‖ sid ‖ expires ‖ len.
const HEADER_LEN: usize = 1 + 1 + 8 + 4 + 1;
const MAC_LEN: usize = 16;
const MIN_RAW: usize = HEADER_LEN + MAC_LEN;
const MAX_RAW: usize = HEADER_LEN + MAX_USER_LEN + 1 + 1 + MAX_HWID_LEN + MAC_LEN;
/// Unpadded base64 length of `n` bytes.
const fn b64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}
const MIN_TEXT: usize = b64_len(MIN_RAW);
const MAX_TEXT: usize = b64_len(MAX_RAW);

/// What a capability asserts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Claims {
    /// The session id ([`MasterKeys::session_id`]).
    pub sid: u64,
    /// Unix seconds after which the capability is refused. The wire holds
    /// 32 bits: [`MasterKeys::mint`] clamps larger values down to
    /// `u32::MAX` (2106-02-07), so a capability never lives longer than
    /// asked.
    pub expires: u64,
    /// The viewer's user id, `None` for anonymous. `Some("")` is a distinct,
    /// empty user id. Ids longer than [`MAX_USER_LEN`] bytes travel as
    /// [`wire_user`] of them, and come back from
    /// [`MasterKeys::verify`] in that form.
    pub user: Option<String>,
    /// From which client addresses the capability is valid (`[sessions]
    /// bind_ip`, and always the address for an entry the `ip` method
    /// allowed).
    pub bind_ip: Binding,
    /// The device's hardware id, when the `device` method admitted the
    /// session. [`MasterKeys::mint`] leaves out an id that is empty or
    /// longer than [`MAX_HWID_LEN`] (the hardware-id rule never admits one).
    pub device: Option<String>,
}

/// To what a capability is bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Binding {
    /// Valid from any address.
    #[default]
    Unbound,
    /// Valid only from the client address it was minted for.
    Address,
    /// Valid from any address sharing the first `n` bits with the one it
    /// was minted for. [`MasterKeys::mint`] writes `n` at least the
    /// address's width as [`Binding::Address`] and `n = 0` as
    /// [`Binding::Unbound`]; see [`Binding::for_ip`].
    Prefix(u8),
}

impl Binding {
    /// This binding as a capability minted for `ip` carries it (and as
    /// [`MasterKeys::verify`] returns it): a prefix as wide as the address
    /// is [`Binding::Address`], an empty one [`Binding::Unbound`].
    pub fn for_ip(self, ip: IpAddr) -> Binding {
        match self {
            Binding::Prefix(0) => Binding::Unbound,
            Binding::Prefix(n) if n >= width(ip) => Binding::Address,
            other => other,
        }
    }
}

/// Bits in the canonical form of `ip`: 32 or 128.
fn width(ip: IpAddr) -> u8 {
    match ip.to_canonical() {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The canonical `ip` with every bit after the first `bits` cleared.
pub(super) fn network(ip: IpAddr, bits: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(bits.min(32)))
                .unwrap_or(0);
            IpAddr::from((u32::from(a) & mask).to_be_bytes())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(bits.min(128)))
                .unwrap_or(0);
            IpAddr::from((u128::from(a) & mask).to_be_bytes())
        }
    }
}

/// What a capability is checked against: taken from the request, never from
/// the token, so a capability for one channel does not open another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scope<'a> {
    /// The route's name.
    pub route: &'a str,
    /// The channel, as the router names it.
    pub channel: &'a str,
    /// The viewer's address; part of the MAC only for a bound capability.
    pub client_ip: IpAddr,
}

/// The user id as a capability carries it: `user` itself when it is at most
/// [`MAX_USER_LEN`] bytes, otherwise `sha256:` followed by the 32 lower-case
/// hex digits of the first 16 bytes of SHA-256(`user`).
///
/// Never a truncation: two long ids that share a 255-byte prefix stay
/// distinct, and the replacement cannot be mistaken for a prefix of the id.
pub fn wire_user(user: &str) -> Cow<'_, str> {
    if user.len() <= MAX_USER_LEN {
        return Cow::Borrowed(user);
    }
    let digest = Sha256::digest(user.as_bytes());
    let head = digest.get(..16).unwrap_or_default();
    Cow::Owned(format!("sha256:{}", hex::encode(head)))
}

impl MasterKeys {
    /// Mint the capability text (unpadded base64url, 42–383 characters) for
    /// `claims` in `scope`. `scope.client_ip` is used only for a bound
    /// capability. See [`Claims`] for how `expires` and long user ids are
    /// brought onto the wire, [`Binding::for_ip`] for the binding.
    pub fn mint(&self, claims: &Claims, scope: &Scope<'_>) -> String {
        let user = claims.user.as_deref().map(wire_user);
        let user_bytes = user.as_deref().map(str::as_bytes).unwrap_or_default();
        // wire_user keeps it within MAX_USER_LEN; the bound keeps that local.
        let user_bytes = user_bytes.get(..MAX_USER_LEN).unwrap_or(user_bytes);
        let len = u8::try_from(user_bytes.len()).unwrap_or(u8::MAX);
        let mut flags = 0;
        if user.is_some() {
            flags |= FLAG_USER;
        }
        let binding = claims.bind_ip.for_ip(scope.client_ip);
        match binding {
            Binding::Unbound => {}
            Binding::Address => flags |= FLAG_BIND_IP,
            Binding::Prefix(_) => flags |= FLAG_BIND_IP | FLAG_PREFIX,
        }
        let device = claims
            .device
            .as_deref()
            .filter(|d| (1..=MAX_HWID_LEN).contains(&d.len()));
        if device.is_some() {
            flags |= FLAG_DEVICE;
        }
        let expires = u32::try_from(claims.expires).unwrap_or(u32::MAX);

        let device_len = device.map_or(0, |d| 1 + d.len());
        let mut raw = Vec::with_capacity(HEADER_LEN + user_bytes.len() + 1 + device_len + MAC_LEN);
        raw.extend_from_slice(&[VERSION, flags]);
        raw.extend_from_slice(&claims.sid.to_be_bytes());
        raw.extend_from_slice(&expires.to_be_bytes());
        raw.push(len);
        raw.extend_from_slice(user_bytes);
        if let Binding::Prefix(n) = binding {
            raw.push(n);
        }
        if let Some(d) = device {
            raw.push(u8::try_from(d.len()).unwrap_or(u8::MAX));
            raw.extend_from_slice(d.as_bytes());
        }
        let mac = self.cap_mac(&raw, scope, binding);
        raw.extend_from_slice(mac.get(..MAC_LEN).unwrap_or_default());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Check a capability for `scope` at unix time `now` and return its
    /// claims.
    ///
    /// [`CapError::Malformed`] for anything [`MasterKeys::mint`] cannot have
    /// produced (checked first, it is public information);
    /// [`CapError::BadSignature`] when the MAC (compared in constant time)
    /// does not match this master, route, channel and, for a bound
    /// capability, client IP (or network); [`CapError::Expired`] when
    /// authentic but `now > expires`.
    pub fn verify(&self, token: &str, scope: &Scope<'_>, now: u64) -> Result<Claims, CapError> {
        if !(MIN_TEXT..=MAX_TEXT).contains(&token.len()) {
            return Err(CapError::Malformed);
        }
        // Slack over MAX_RAW: the decoder wants room for its own estimate.
        let mut buf = [0u8; MAX_RAW + 3];
        let n = URL_SAFE_NO_PAD
            .decode_slice(token, &mut buf)
            .map_err(|_| CapError::Malformed)?;
        let raw = buf.get(..n).ok_or(CapError::Malformed)?;
        let (header, rest) = raw
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(CapError::Malformed)?;
        let [
            ver,
            flags,
            s0,
            s1,
            s2,
            s3,
            s4,
            s5,
            s6,
            s7,
            e0,
            e1,
            e2,
            e3,
            len,
        ] = *header;
        let len = usize::from(len);
        if ver != VERSION
            || flags & !(FLAG_USER | FLAG_BIND_IP | FLAG_PREFIX | FLAG_DEVICE) != 0
            || (flags & FLAG_USER == 0 && len != 0)
            || (flags & FLAG_PREFIX != 0 && flags & FLAG_BIND_IP == 0)
        {
            return Err(CapError::Malformed);
        }
        let (user, after) = rest.split_at_checked(len).ok_or(CapError::Malformed)?;
        let (bind_ip, after) = match (flags & FLAG_BIND_IP != 0, flags & FLAG_PREFIX != 0) {
            (false, _) => (Binding::Unbound, after),
            (true, false) => (Binding::Address, after),
            (true, true) => match after.split_first() {
                Some((&n, rest)) if (1..128).contains(&n) => (Binding::Prefix(n), rest),
                _ => return Err(CapError::Malformed),
            },
        };
        let (device, mac) = if flags & FLAG_DEVICE != 0 {
            let (&dlen, rest) = after.split_first().ok_or(CapError::Malformed)?;
            let dlen = usize::from(dlen);
            if !(1..=MAX_HWID_LEN).contains(&dlen) {
                return Err(CapError::Malformed);
            }
            let (hwid, mac) = rest.split_at_checked(dlen).ok_or(CapError::Malformed)?;
            (Some(hwid), mac)
        } else {
            (None, after)
        };
        if mac.len() != MAC_LEN {
            return Err(CapError::Malformed);
        }
        // A prefix as wide as this client's address is not minted for it.
        if bind_ip.for_ip(scope.client_ip) != bind_ip {
            return Err(CapError::BadSignature);
        }
        let signed = raw
            .get(..raw.len().saturating_sub(MAC_LEN))
            .ok_or(CapError::Malformed)?;
        let want = self.cap_mac(signed, scope, bind_ip);
        let want = want.get(..MAC_LEN).unwrap_or_default();
        if !bool::from(want.ct_eq(mac)) {
            return Err(CapError::BadSignature);
        }
        let expires = u64::from(u32::from_be_bytes([e0, e1, e2, e3]));
        if now > expires {
            return Err(CapError::Expired);
        }
        let user = if flags & FLAG_USER != 0 {
            // Authentic, so minted from a &str; a failure means a foreign
            // minter with our key, refused all the same.
            let text = std::str::from_utf8(user).map_err(|_| CapError::Malformed)?;
            Some(text.to_owned())
        } else {
            None
        };
        let device = match device {
            Some(d) => Some(
                std::str::from_utf8(d)
                    .map_err(|_| CapError::Malformed)?
                    .to_owned(),
            ),
            None => None,
        };
        Ok(Claims {
            sid: u64::from_be_bytes([s0, s1, s2, s3, s4, s5, s6, s7]),
            expires,
            user,
            bind_ip,
            device,
        })
    }

    /// `HMAC(K_cap, signed ‖ 0 ‖ route ‖ 0 ‖ channel [‖ 0 ‖ ip_enc])`, the
    /// address cut to its network for [`Binding::Prefix`].
    fn cap_mac(&self, signed: &[u8], scope: &Scope<'_>, binding: Binding) -> [u8; 32] {
        let mut m = self.cap.clone();
        m.update(signed);
        m.update(&[0]);
        m.update(scope.route.as_bytes());
        m.update(&[0]);
        m.update(scope.channel.as_bytes());
        match binding {
            Binding::Unbound => {}
            Binding::Address => {
                m.update(&[0]);
                update_ip(&mut m, scope.client_ip);
            }
            Binding::Prefix(n) => {
                m.update(&[0]);
                update_ip(&mut m, network(scope.client_ip, n));
            }
        }
        finish(m)
    }
}
