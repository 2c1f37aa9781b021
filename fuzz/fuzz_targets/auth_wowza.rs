//! `wowza`: parse and verify of hostile requests, and the promises of the
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

const fn promises(binds_ip: bool) -> Promises {
    Promises {
        binds_ip,
        expires: true,
        carries_user: false,
    }
}

/// `[auth.wowza]` sections: every algorithm, with and without the client
/// address, both content-path forms, another prefix.
const VARIANTS: &[(&str, Promises)] = &[
    ("[auth.wowza]\nsecret = \"afakesecret\"\n", promises(false)),
    (
        "[auth.wowza]\nsecret = \"afakesecret\"\ninclude_client_ip = true\nalgorithm = \"sha384\"\n",
        promises(true),
    ),
    (
        "[auth.wowza]\nsecret = \"s\"\nprefix = \"tok\"\nalgorithm = \"sha512\"\n\
         content_path = \"full\"\ntolerance = \"30s\"\n",
        promises(false),
    ),
];

fuzz_target!(|data: &[u8]| {
    let req = request(data);
    let all = variants();
    let Some((config, promises)) = all.get(usize::from(req.variant) % all.len()) else {
        return;
    };
    let Some(scheme) = config.auth.wowza.as_deref() else {
        panic!("variant without [auth.wowza]");
    };
    check_scheme(scheme, &req, *promises);
});
