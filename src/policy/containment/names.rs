//! The Kubernetes and HTTP names `containment.yaml` holds, each a type checked when the file is
//! read: DNS-1123 labels (targets, namespaces), DNS-1123 subdomains (Secrets, Deployments), Secret
//! data keys, and the HTTP header the admin token is sent in. A name that reaches the planner has
//! already been proven to be one the API server would accept, so no plan is built around a name
//! that cannot exist.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Whether `s` is an RFC 1123 label as Kubernetes checks it: 1 to 63 lowercase letters, digits
/// and `-`, starting and ending with a letter or digit.
pub(super) fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `s` is an RFC 1123 subdomain as Kubernetes checks it: at most 253 characters, labels
/// separated by `.`.
pub(super) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $check:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Checks `value`; the error says what the name must look like.
            pub fn new(value: &str) -> Result<Self, String> {
                let check: fn(&str) -> bool = $check;
                if check(value) {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(format!("{value:?} is not {}", $what))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::new(&text).map_err(serde::de::Error::custom)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A DNS-1123 label: a target's name, a namespace.
    DnsLabel,
    is_dns_label,
    "a DNS-1123 label (1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit)"
);

name_type!(
    /// A DNS-1123 subdomain: a Deployment's or a Secret's name.
    DnsSubdomain,
    is_dns_subdomain,
    "a DNS-1123 subdomain (at most 253 characters: lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit)"
);

name_type!(
    /// A Secret's data key, as Kubernetes checks it: `[-._a-zA-Z0-9]+`, at most 253
    /// characters, not `.` or `..` and not starting with `..`.
    SecretKey,
    is_secret_key,
    "a Secret data key (1 to 253 letters, digits, '-', '_' and '.', not starting with '..')"
);

fn is_secret_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && s != "."
        && !s.starts_with("..")
}

/// An HTTP header name the admin token may be sent in: an RFC 9110 token, and none that the
/// API server or an HTTP hop consumes before the request reaches the pod.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeaderName(String);

/// Headers the API server reads itself on `pods/proxy`: it authenticates the request with
/// `Authorization` and does not pass it on, so a token sent there would never reach the pod
/// (and the API server would try it as a credential); `Impersonate-*` and the request-header
/// authentication headers (`X-Remote-*`) would be taken as an identity.
const CONSUMED_BY_API_SERVER: [&str; 2] = ["authorization", "proxy-authorization"];
const API_SERVER_PREFIXES: [&str; 2] = ["impersonate-", "x-remote-"];
/// Headers that name the request rather than carry a credential, or that each HTTP hop
/// consumes (RFC 9110 section 7.6.1).
const NOT_A_TOKEN_HEADER: [&str; 10] = [
    "cookie",
    "host",
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl HeaderName {
    pub fn new(value: &str) -> Result<Self, String> {
        let is_token = !value.is_empty()
            && value.len() <= 128
            && value
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c));
        if !is_token {
            return Err(format!(
                "{value:?} is not an HTTP header name (1 to 128 letters, digits and !#$%&'*+-.^_`|~)"
            ));
        }
        let lower = value.to_ascii_lowercase();
        if CONSUMED_BY_API_SERVER.contains(&lower.as_str()) {
            return Err(format!(
                "{value:?} cannot carry the token: the API server consumes it on pods/proxy \
                 (it authenticates the proxy request with Authorization and does not pass it on), \
                 so the gateway would never see it; name a header of the gateway's own, such as \
                 X-Admin-Token"
            ));
        }
        if API_SERVER_PREFIXES.iter().any(|p| lower.starts_with(p)) {
            return Err(format!(
                "{value:?} cannot carry the token: the API server consumes it on pods/proxy \
                 (it reads Impersonate-* and X-Remote-* as the identity of the request); name a \
                 header of the gateway's own, such as X-Admin-Token"
            ));
        }
        if NOT_A_TOKEN_HEADER.contains(&lower.as_str()) {
            return Err(format!(
                "{value:?} cannot carry the token: it is set or consumed by the HTTP hops on the \
                 way to the pod; name a header of the gateway's own, such as X-Admin-Token"
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::new(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for HeaderName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        for good in ["a", "api-gateway", "x1", &"a".repeat(63)] {
            assert!(DnsLabel::new(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64), "é"] {
            assert!(DnsLabel::new(bad).is_err(), "{bad}");
        }
        for good in [
            "gateway-api-keys",
            "a.b.c",
            &format!("{}.b", "a".repeat(63)),
        ] {
            assert!(DnsSubdomain::new(good).is_ok(), "{good}");
        }
        let long = vec!["a".repeat(63); 4].join(".");
        for bad in ["", "a..b", ".a", "a.", "A.b", "a_b", long.as_str()] {
            assert!(DnsSubdomain::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_keys() {
        for good in ["API_KEY", "tls.crt", "a-b", ".hidden", "a..b"] {
            assert!(SecretKey::new(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "..a", "a/b", "a b", "ключ", &"a".repeat(254)] {
            assert!(SecretKey::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_names() {
        assert_eq!(
            HeaderName::new("X-Custody-Admin-Token").unwrap().as_str(),
            "X-Custody-Admin-Token"
        );
        for consumed in [
            "Authorization",
            "proxy-authorization",
            "Impersonate-User",
            "X-Remote-User",
        ] {
            let e = HeaderName::new(consumed).unwrap_err();
            assert!(
                e.contains("the API server consumes it on pods/proxy"),
                "{e}"
            );
        }
        for hop in ["Cookie", "HOST", "Connection", "Transfer-Encoding"] {
            assert!(
                HeaderName::new(hop).unwrap_err().contains("cannot carry"),
                "{hop}"
            );
        }
        for bad in ["", "X Token", "X:Token", "X-Tökén", "a\n"] {
            assert!(HeaderName::new(bad)
                .unwrap_err()
                .contains("not an HTTP header name"));
        }
    }
}
