//! `secure_link`: parse and verify of hostile requests, and the promises of the
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

const fn promises(binds_ip: bool, expires: bool) -> Promises {
    Promises {
        binds_ip,
        expires,
        carries_user: false,
    }
}

/// `[auth.secure_link]` sections: nginx's documented md5 form, the
/// `secure_link_secret` path form (with and without a fixed prefix),
/// Ministra's argument names, and a template without address or expiry.
const VARIANTS: &[(&str, Promises)] = &[
    (
        "[auth.secure_link]\nsecret = \"secret\"\n",
        promises(true, true),
    ),
    (
        "[auth.secure_link]\nmode = \"secret\"\nsecret = \"secret\"\n",
        promises(false, false),
    ),
    (
        "[auth.secure_link]\nmode = \"secret\"\nsecret = \"secret\"\npath_prefix = \"/live/\"\n",
        promises(false, false),
    ),
    (
        "[auth.secure_link]\nhash_arg = \"st\"\nexpires_arg = \"e\"\n\
         template = \"mysecret$uri$remote_addr$arg_e\"\ntolerance = \"30s\"\n",
        promises(true, true),
    ),
    (
        "[auth.secure_link]\nsecret = \"s\"\nexpires_arg = \"\"\n\
         template = \"$uri $edge $secret\"\nvariables = { edge = \"eu-1\" }\n",
        promises(false, false),
    ),
];

fuzz_target!(|data: &[u8]| {
    let req = request(data);
    let all = variants();
    let Some((config, promises)) = all.get(usize::from(req.variant) % all.len()) else {
        return;
    };
    let Some(scheme) = config.auth.secure_link.as_deref() else {
        panic!("variant without [auth.secure_link]");
    };
    check_scheme(scheme, &req, *promises);
});
