//! Proxmox and pfSense read TLS trust from the environment by one rule (the client kit's):
//! exactly one of CA file, pinned fingerprint or the insecure switch; two set is an error
//! naming both, none set is an error naming all three.

use std::collections::HashMap;

use cairn::core::tls::{SelfSigned, TlsTrust};
use cairn::pfsense::PfSenseClient;
use cairn::pfsense::client as pf;
use cairn::proxmox::ClientConfig;
use cairn::proxmox::client as pve;

/// What each provider made of the same trust settings: `Ok(trust)` or the error text.
fn both(
    ca: Option<&str>,
    fingerprint: Option<&str>,
    insecure: bool,
) -> [Result<TlsTrust, String>; 2] {
    let mut pve_env: HashMap<&str, String> = HashMap::from([
        (pve::ENDPOINT_ENV, "https://127.0.0.1:8006".to_string()),
        (pve::TOKEN_ENV, "root@pam!cairn=secret".to_string()),
    ]);
    let mut pf_env: HashMap<&str, String> = HashMap::from([
        (pf::URL_ENV, "https://127.0.0.1:8443".to_string()),
        (pf::API_KEY_ENV, "key".to_string()),
    ]);
    for (value, pve_name, pf_name) in [
        (ca.map(str::to_string), pve::CA_FILE_ENV, pf::CA_FILE_ENV),
        (
            fingerprint.map(str::to_string),
            pve::FINGERPRINT_ENV,
            pf::FINGERPRINT_ENV,
        ),
        (
            insecure.then(|| "1".to_string()),
            pve::INSECURE_ENV,
            pf::INSECURE_ENV,
        ),
    ] {
        if let Some(v) = value {
            pve_env.insert(pve_name, v.clone());
            pf_env.insert(pf_name, v);
        }
    }
    let proxmox = ClientConfig::from_vars(|k| pve_env.get(k).cloned())
        .map(|c| c.trust)
        .map_err(|e| e.to_string());
    // pfSense builds its client right away; the trust it chose is what the kit reads.
    let pfsense = PfSenseClient::from_vars(|k| pf_env.get(k).cloned())
        .map_err(|e| e.to_string())
        .and_then(|_| {
            pf::TRUST_VARS
                .read(|k| pf_env.get(k).cloned())
                .map_err(|e| e.to_string())
        });
    [proxmox, pfsense]
}

#[test]
fn proxmox_and_pfsense_apply_the_same_tls_trust_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, SelfSigned::generate(&[]).cert_pem).unwrap();
    let ca = ca.to_str().unwrap();
    let fp = ["AB"; 32].join(":");

    for r in both(Some(ca), None, false) {
        assert_eq!(r, Ok(TlsTrust::CaFile(ca.into())));
    }
    for r in both(None, Some(&fp), false) {
        assert_eq!(r, Ok(TlsTrust::Fingerprint(fp.clone())));
    }
    for r in both(None, None, true) {
        assert_eq!(r, Ok(TlsTrust::Insecure));
    }
    let [p, f] = both(Some(ca), Some(&fp), false);
    for (r, ca_var, fp_var) in [
        (p, pve::CA_FILE_ENV, pve::FINGERPRINT_ENV),
        (f, pf::CA_FILE_ENV, pf::FINGERPRINT_ENV),
    ] {
        let e = r.expect_err("a CA file and a fingerprint together are refused");
        assert!(e.contains(ca_var) && e.contains(fp_var), "{e}");
    }
    for r in both(None, Some(&fp), true) {
        assert!(
            r.is_err(),
            "a pin plus the insecure switch is refused: {r:?}"
        );
    }
    let [p, f] = both(None, None, false);
    for (r, vars) in [
        (
            p,
            [pve::CA_FILE_ENV, pve::FINGERPRINT_ENV, pve::INSECURE_ENV],
        ),
        (f, [pf::CA_FILE_ENV, pf::FINGERPRINT_ENV, pf::INSECURE_ENV]),
    ] {
        let e = r.expect_err("no trust at all is refused");
        assert!(vars.iter().all(|v| e.contains(v)), "{e}");
    }
}
