//! `akamai`: parse and verify of hostile requests, and the promises of the
//! links it signs (see `tollgate_fuzz::check_scheme`), over several
//! configurations picked by the input's first byte.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_fuzz::{Promises, check_scheme, config, request};

type Variant = (tollgate::config::Config, Promises);

fn variants() -> &'static [Variant] {
    static V: OnceLock<Vec<Variant>> = OnceLock::new();
    V.get_or_init(|| {
        VARIANTS
            .iter()
            .map(|(section, p)| (config(section), *p))
            .collect()
    })
}

/// `[auth.akamai]` sections: every algorithm, token name, location and
/// sign scope, with salt and early escaping. Signed links carry `ip=`.
const VARIANTS: &[(&str, Promises)] = &[
    (
        "[auth.akamai]\nkeys = [\"52a152a152a152a152a152a152a1\"]\n",
        ALL,
    ),
    (
        "[auth.akamai]\nkeys = [\"a7f3c9e1b2d4f6a8c0e2b4d6f8a0c2e4\", \"52a152a152a152a152a152a152a1\"]\n\
         algorithm = \"sha1\"\ntoken_name = \"hdnts\"\nlocations = [\"header\", \"cookie\", \"query\"]\n\
         sign_scope = \"path\"\nsalt = \"pepper\"\n",
        ALL,
    ),
    (
        "[auth.akamai]\nkeys = [\"52a152a152a152a152a152a152a1\"]\nalgorithm = \"md5\"\n\
         token_name = \"__hdnea__\"\nsign_scope = \"url\"\nescape_early = true\ntolerance = \"10s\"\n",
        ALL,
    ),
];

const ALL: Promises = Promises {
    binds_ip: true,
    expires: true,
    carries_user: true,
};

fuzz_target!(|data: &[u8]| {
    let req = request(data);
    let all = variants();
    let Some((config, promises)) = all.get(usize::from(req.variant) % all.len()) else {
        return;
    };
    let Some(scheme) = config.auth.akamai.as_deref() else {
        panic!("variant without [auth.akamai]");
    };
    check_scheme(scheme, &req, *promises);
});
