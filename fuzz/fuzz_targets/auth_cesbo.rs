//! `cesbo`: parse and verify of hostile requests, and the promises of the
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

/// `[auth.cesbo]` sections: path and channel subjects. A securetoken
/// always binds the client address.
const VARIANTS: &[(&str, Promises)] = &[
    ("[auth.cesbo]\nsecret = \"secret\"\n", ALL),
    (
        "[auth.cesbo]\nsecret = \"secret\"\nsubject = \"channel\"\nparam = \"t\"\ntolerance = \"5s\"\n",
        ALL,
    ),
];

const ALL: Promises = Promises {
    binds_ip: true,
    expires: true,
    carries_user: false,
};

fuzz_target!(|data: &[u8]| {
    let req = request(data);
    let all = variants();
    let Some((config, promises)) = all.get(usize::from(req.variant) % all.len()) else {
        return;
    };
    let Some(scheme) = config.auth.cesbo.as_deref() else {
        panic!("variant without [auth.cesbo]");
    };
    check_scheme(scheme, &req, *promises);
});
