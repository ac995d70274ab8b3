//! The name rules upstream validates object names, namespaces and labels against.
//!
//! Each check returns the upstream error message (so `kubectl` users see familiar text), or
//! `None` when the value is valid.

/// Longest DNS-1123 subdomain (most object names).
pub const SUBDOMAIN_MAX: usize = 253;
/// Longest DNS-1123 label (namespaces, service names, label names and values).
pub const LABEL_MAX: usize = 63;

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn dns1123_label(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= LABEL_MAX
        && bytes.iter().all(|&b| is_lower_alnum(b) || b == b'-')
        && bytes.first().is_some_and(|&b| is_lower_alnum(b))
        && bytes.last().is_some_and(|&b| is_lower_alnum(b));
    (!ok).then(|| {
        if bytes.len() > LABEL_MAX {
            format!("must be no more than {LABEL_MAX} characters")
        } else {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc')"
                .to_owned()
        }
    })
}

/// A DNS-1035 label (service names): like a DNS-1123 label but starting with a letter.
pub fn dns1035_label(value: &str) -> Option<String> {
    let starts_with_letter = value.as_bytes().first().is_some_and(u8::is_ascii_lowercase);
    if dns1123_label(value).is_none() && starts_with_letter {
        return None;
    }
    Some(
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with \
         an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or \
         'abc-123')"
            .to_owned(),
    )
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters (most object names).
pub fn dns1123_subdomain(value: &str) -> Option<String> {
    if value.len() > SUBDOMAIN_MAX {
        return Some(format!("must be no more than {SUBDOMAIN_MAX} characters"));
    }
    let ok = !value.is_empty()
        && value.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
                && b.first().is_some_and(|&c| is_lower_alnum(c))
                && b.last().is_some_and(|&c| is_lower_alnum(c))
        });
    (!ok).then(|| {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' \
         or '.', and must start and end with an alphanumeric character (e.g. 'example.com')"
            .to_owned()
    })
}

/// A name that must only be safe as a single path segment (upstream's rule for kinds without
/// DNS validation): not `.` or `..`, and no `/` or `%`.
pub fn path_segment(value: &str) -> Option<String> {
    if value.is_empty() {
        return Some("name or generateName is required".to_owned());
    }
    if value == "." || value == ".." {
        return Some(format!("may not be '{value}'"));
    }
    if value.contains('/') || value.contains('%') {
        return Some("may not contain '/' or '%'".to_owned());
    }
    None
}

fn is_label_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}

/// The name part of a qualified name: `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, ≤ 63.
fn qualified_name_part(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= LABEL_MAX
        && b.iter().all(|&c| is_label_char(c))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A label or annotation key: an optional DNS subdomain prefix and `/`, then a name part.
pub fn qualified_name(value: &str) -> Option<String> {
    let (prefix, name) = match value.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    if let Some(prefix) = prefix
        && (prefix.is_empty() || dns1123_subdomain(prefix).is_some())
    {
        return Some("prefix part must be a lowercase RFC 1123 subdomain".to_owned());
    }
    (!qualified_name_part(name)).then(|| {
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and \
         end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc'), \
         with at most 63 characters"
            .to_owned()
    })
}

/// A label value: empty, or a qualified name part.
pub fn label_value(value: &str) -> Option<String> {
    (!value.is_empty() && !qualified_name_part(value)).then(|| {
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' \
         or '.', and must start and end with an alphanumeric character, with at most 63 \
         characters"
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains() {
        assert!(dns1123_subdomain("web-1.example").is_none());
        assert!(dns1123_subdomain("a").is_none());
        for bad in ["", "Web", "-a", "a-", "a..b", "a_b", &"a".repeat(254)] {
            assert!(dns1123_subdomain(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn labels_and_keys() {
        assert!(dns1123_label("kube-system").is_none());
        assert!(dns1123_label("a.b").is_some());
        assert!(dns1035_label("1abc").is_some());
        assert!(dns1035_label("abc-1").is_none());
        assert!(qualified_name("app.kubernetes.io/name").is_none());
        assert!(qualified_name("Tier").is_none());
        assert!(qualified_name("/x").is_some());
        assert!(qualified_name("a/b/c").is_some());
        assert!(label_value("").is_none());
        assert!(label_value("v1.2_3").is_none());
        assert!(label_value("-x").is_some());
        assert!(path_segment("..").is_some());
        assert!(path_segment("a/b").is_some());
    }
}
