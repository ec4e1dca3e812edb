//! Arbitrary bytes as xCAT `tabdump` CSV (split into litefile, litetree,
//! statelite, nodelist, noderes, nodetype and nodepos tables at form feeds)
//! → `import_xcat` → the TOML it
//! writes, which must parse back as a configuration. `statelite import-xcat`
//! reads admin files, but a truncated or mangled dump must still only error.
#![no_main]

use init_agent::{config, modes::statelite::import};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(7, '\u{c}');
    let litefile = parts.next().unwrap_or_default();
    let litetree = parts.next();
    let statelite = parts.next();
    let nodes = import::NodeTables {
        nodelist: parts.next(),
        noderes: parts.next(),
        nodetype: parts.next(),
        nodepos: parts.next(),
    };
    if let Ok(toml) = import::import_xcat(litefile, litetree, statelite, &nodes) {
        // What the importer writes, the config parser accepts (the importer
        // already checks this; here it must also hold for hostile tables).
        assert!(config::parse(&toml).is_ok(), "import wrote TOML the parser refuses:\n{toml}");
    }
});
