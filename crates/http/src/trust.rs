//! TLS trust from the environment, with one precedence for every provider: exactly one of
//! a CA file, a pinned fingerprint, or the explicit insecure switch. Setting two of them is
//! an error (which one was meant is a guess no tool should make about certificate
//! checks); setting none is an error naming all three.

use cairn_core::tls::TlsTrust;

/// The names of a provider's three trust variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustVars {
    /// A PEM file to trust (a CA or the server's own certificate).
    pub ca_file: &'static str,
    /// A pinned SHA-256 certificate fingerprint.
    pub fingerprint: &'static str,
    /// `1` turns certificate checks off (logs a warning).
    pub insecure: &'static str,
}

/// Why no trust could be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// None of the variables is set.
    #[error(
        "set {ca_file} or {fingerprint} to trust the server's certificate ({insecure}=1 turns checks off)"
    )]
    Missing {
        /// The CA file variable.
        ca_file: &'static str,
        /// The fingerprint variable.
        fingerprint: &'static str,
        /// The insecure variable.
        insecure: &'static str,
    },
    /// More than one is set.
    #[error(
        "{first} and {second} are both set: set exactly one way to trust the server's certificate"
    )]
    Conflict {
        /// One variable.
        first: &'static str,
        /// Another.
        second: &'static str,
    },
}

impl TrustVars {
    /// Reads the trust from the process environment (empty values count as unset; the
    /// insecure switch counts only as `1`).
    pub fn from_env(&self) -> Result<TlsTrust, TrustError> {
        self.read(|k| std::env::var(k).ok())
    }

    /// Reads the trust through `var` (for tests and embedders).
    pub fn read(&self, var: impl Fn(&str) -> Option<String>) -> Result<TlsTrust, TrustError> {
        let get = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let set: Vec<(&'static str, TlsTrust)> = [
            get(self.ca_file).map(|p| (self.ca_file, TlsTrust::CaFile(p.into()))),
            get(self.fingerprint).map(|f| (self.fingerprint, TlsTrust::Fingerprint(f))),
            get(self.insecure)
                .filter(|v| v.trim() == "1")
                .map(|_| (self.insecure, TlsTrust::Insecure)),
        ]
        .into_iter()
        .flatten()
        .collect();
        match set.as_slice() {
            [] => Err(TrustError::Missing {
                ca_file: self.ca_file,
                fingerprint: self.fingerprint,
                insecure: self.insecure,
            }),
            [(name, trust)] => {
                if *trust == TlsTrust::Insecure {
                    tracing::warn!("{name}=1: the server's TLS certificate will NOT be checked");
                }
                Ok(trust.clone())
            }
            [(first, _), (second, _), ..] => Err(TrustError::Conflict { first, second }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VARS: TrustVars = TrustVars {
        ca_file: "X_CA",
        fingerprint: "X_FP",
        insecure: "X_INSECURE",
    };

    fn read(pairs: &[(&str, &str)]) -> Result<TlsTrust, TrustError> {
        VARS.read(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn exactly_one_trust_variable_is_accepted() {
        assert_eq!(
            read(&[("X_CA", "/ca.pem")]),
            Ok(TlsTrust::CaFile("/ca.pem".into()))
        );
        assert_eq!(
            read(&[("X_FP", "AB")]),
            Ok(TlsTrust::Fingerprint("AB".into()))
        );
        assert_eq!(read(&[("X_INSECURE", "1")]), Ok(TlsTrust::Insecure));
        assert!(matches!(
            read(&[("X_INSECURE", "0")]),
            Err(TrustError::Missing { .. })
        ));
        assert!(matches!(
            read(&[("X_CA", "")]),
            Err(TrustError::Missing { .. })
        ));
        let both = read(&[("X_CA", "/ca.pem"), ("X_FP", "AB")]).unwrap_err();
        assert_eq!(
            both,
            TrustError::Conflict {
                first: "X_CA",
                second: "X_FP"
            }
        );
        assert!(both.to_string().contains("X_CA and X_FP"));
        assert!(matches!(
            read(&[("X_FP", "AB"), ("X_INSECURE", "1")]),
            Err(TrustError::Conflict { .. })
        ));
    }
}
