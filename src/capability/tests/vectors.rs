//! Known answers computed independently with Python's `hmac` and
//! `hashlib`, never with this crate: each vector quotes its Python, which
//! runs after the preamble below.
//!
//! Python preamble shared by the vectors:
//!
//! ```python
//! import hmac, hashlib, base64, struct, ipaddress
//! H = lambda k, m: hmac.new(k, m, hashlib.sha256).digest()
//! master = bytes(range(32))
//! K = {n: H(master, b"tollgate/v1/" + n.encode())
//!      for n in ["capability", "segment-tag", "session-id", "content-key"]}
//! def ipenc(ip):
//!     ip = ipaddress.ip_address(ip)
//!     return (b"\x04" if ip.version == 4 else b"\x06") + ip.packed
//! ```

use super::*;

#[test]
fn kat_sub_keys() {
    // for n in K: print(n, K[n].hex())
    let cases: [(&[u8], &str); 4] = [
        (
            LABEL_CAP,
            "4e28e1f0403261108a834abb754cce281beda58bfb98576e523093fe471fc855",
        ),
        (
            LABEL_TAG,
            "cebc6a2d91e55461c06ae9a228dfb82b32f9aaf320faa3390e6352b6fdd7d8f9",
        ),
        (
            LABEL_SID,
            "bb5077df6702c52e6f7daaf8ca83eefe11a48bcacfe02534cff2d53cfa33f4c1",
        ),
        (
            LABEL_CONT,
            "7798e41ff8ca8d658337640823c3718af42a773714eebb2f9d62130ee6684fa4",
        ),
    ];
    for (label, want) in cases {
        assert_eq!(hex::encode(derive_for_test(&master(), label)), want);
    }
}

#[test]
fn kat_k_cap_of_long_masters() {
    // Masters at and past the SHA-256 block size (64 bytes), where HMAC
    // hashes the key first:
    // python3 -c 'import hmac,hashlib; [print(n, hmac.new(b"m"*n,
    //   b"tollgate/v1/capability", hashlib.sha256).hexdigest()) for n in (64,65,100)]'
    let cases = [
        (
            64,
            "fff75a2af9f93f5955c5ccd806d15d0ae9cdbbeb5a74155b515d1a472c3e4879",
        ),
        (
            65,
            "2e1cd262857ee756a7f62fe314d360be581aa4f84a03abca1bcc9d4f67cf80f5",
        ),
        (
            100,
            "9262fe7cc8b49029409726e5b2ee3de8e0038508372f212b599c9343bf09934f",
        ),
    ];
    for (n, want) in cases {
        assert_eq!(
            hex::encode(derive_for_test(&vec![b'm'; n], LABEL_CAP)),
            want
        );
    }
}

#[test]
fn kat_content_key() {
    // H(K["content-key"], b"live\0ch1\0" + struct.pack(">QQ", 0x123456789abc, 42))[:16].hex()
    let key = keys().content_key("live", "ch1", 0x1234_5678_9abc, 42);
    assert_eq!(hex::encode(key), "0e3d7f7582ee5aa69aad99e3e772711a");
}

#[test]
fn kat_session_id() {
    // def sid(user, route, ch, ip):
    //     u = b"\x00" if user is None else b"\x01" + struct.pack(">Q", len(user.encode())) + user.encode()
    //     return struct.unpack(">Q", H(K["session-id"], u + b"\0" + route.encode() + b"\0"
    //                                  + ch.encode() + b"\0" + ipenc(ip))[:8])[0]
    // hex(sid("alice", "live", "ch1", "192.0.2.7")); hex(sid(None, "live", "ch1", "2001:db8::1"))
    let k = keys();
    assert_eq!(
        k.session_id(Some("alice"), "live", "ch1", V4),
        0x7a1b_9918_3bda_7331
    );
    assert_eq!(k.session_id(None, "live", "ch1", V6), 0x67d0_da4e_fe98_3346);
}

#[test]
fn kat_capability() {
    // def tok(sid_, exp, user, bind, route, ch, ip):
    //     flags = (1 if user is not None else 0) | (2 if bind else 0)
    //     ub = b"" if user is None else user.encode()
    //     raw = bytes([1, flags]) + struct.pack(">QIB", sid_, exp, len(ub)) + ub
    //     m = raw + b"\0" + route.encode() + b"\0" + ch.encode() + ((b"\0" + ipenc(ip)) if bind else b"")
    //     return base64.urlsafe_b64encode(raw + H(K["capability"], m)[:16]).rstrip(b"=").decode()
    // tok(0x0123456789abcdef, 1700000000, "alice", True, "live", "ch1", "192.0.2.7")
    // tok(7, 1700000000, None, False, "live", "ch1", "192.0.2.7")
    let k = keys();
    let alice = "AQMBI0VniavN72VT8QAFYWxpY2VGOcF_ot5NHBGAIVcaXm2Y";
    assert_eq!(k.mint(&claims(Some("alice"), true), &scope(V4)), alice);
    assert_eq!(
        k.verify(alice, &scope(V4), NOW),
        Ok(claims(Some("alice"), true))
    );
    let anon = "AQAAAAAAAAAAB2VT8QAACfdM4nCb3rWoWEltJTL5DQ";
    let anon_claims = Claims {
        sid: 7,
        ..claims(None, false)
    };
    assert_eq!(k.mint(&anon_claims, &scope(V4)), anon);
    assert_eq!(k.verify(anon, &scope(V6), NOW), Ok(anon_claims));
}

#[test]
fn kat_segment_tag() {
    // def tag(route, ch, path, body):
    //     return body + "." + base64.urlsafe_b64encode(H(K["segment-tag"],
    //         b"\0".join(x.encode() for x in [route, ch, path, body]))[:12]).rstrip(b"=").decode()
    // tag("live", "ch1", "/live/ch1/seg42.ts", "e.5.3.42.0.-"); tag("live", "ch1", "/live/ch1/init.mp4", "c")
    let k = keys();
    let enc = Serve::Encrypt {
        inc: 5,
        period: 3,
        msn: 42,
        range: Some(ByteRange {
            offset: 0,
            length: None,
        }),
    };
    let want = "e.5.3.42.0.-.EzRRHFrmSh8A4ih0";
    assert_eq!(k.sign_tag("live", "ch1", "/live/ch1/seg42.ts", &enc), want);
    assert_eq!(
        k.verify_tag(want, "live", "ch1", "/live/ch1/seg42.ts"),
        Ok(enc)
    );
    let clear = Serve::Clear { range: None };
    let want = "c.BtypORXDmBOW38c5";
    assert_eq!(
        k.sign_tag("live", "ch1", "/live/ch1/init.mp4", &clear),
        want
    );
    assert_eq!(
        k.verify_tag(want, "live", "ch1", "/live/ch1/init.mp4"),
        Ok(clear)
    );
}

#[test]
fn kat_wire_user_of_long_id() {
    // "sha256:" + hashlib.sha256(b"x"*256).digest()[:16].hex()
    assert_eq!(
        wire_user(&"x".repeat(256)),
        "sha256:85e62acd750c4eb56b7b6a1d66dca5bf"
    );
}
