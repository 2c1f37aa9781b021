//! `wmsauth`: parse and verify of hostile requests, and the promises of the
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

/// `[auth.wmsauth]` sections: default, strict clock with `require_ip`.
/// Signed links always carry the client address here, so they bind it.
const VARIANTS: &[(&str, Promises)] = &[
    ("[auth.wmsauth]\nkey = \"defaultpassword\"\n", ALL),
    (
        "[auth.wmsauth]\nkey = \"defaultpassword\"\ntolerance = \"0s\"\nrequire_ip = true\n",
        ALL,
    ),
    (
        "[auth.wmsauth]\nkey = \"k\"\nparam = \"sig\"\ntolerance = \"1h\"\n",
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
    let Some(scheme) = config.auth.wmsauth.as_deref() else {
        panic!("variant without [auth.wmsauth]");
    };
    check_scheme(scheme, &req, *promises);
});
