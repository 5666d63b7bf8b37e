//! Connection URLs with their passwords hidden: what logs, progress bars and errors may show.

/// `scheme://user:secret@host/db` → `scheme://user:***@host/db`; text that is not a URL with a
/// password comes back unchanged.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Replaces the password of `url`, wherever it appears in `message`, by `***` (driver errors
/// sometimes echo their connection string).
pub fn scrub(message: &str, url: &str) -> String {
    match url::Url::parse(url).ok().and_then(|u| u.password().map(str::to_string)) {
        Some(p) if !p.is_empty() => {
            let decoded = url::form_urlencoded::parse(format!("p={p}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let mut out = message.replace(&p, "***");
            if !decoded.is_empty() {
                out = out.replace(&decoded, "***");
            }
            out
        }
        _ => message.to_string(),
    }
}

/// An error whose text has `url`'s password scrubbed (the whole chain is flattened into one message).
pub fn scrub_error(error: anyhow::Error, url: &str) -> anyhow::Error {
    anyhow::anyhow!(scrub(&format!("{error:#}"), url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_survive() {
        assert_eq!(redact("postgres://bob:s3cr%40t@db:5432/x"), "postgres://bob:***@db:5432/x");
        assert_eq!(redact("redis://127.0.0.1/"), "redis://127.0.0.1/");
        let url = "mysql://bob:s3cr%40t@db/x";
        assert_eq!(scrub("auth failed for bob:s3cr@t and s3cr%40t", url), "auth failed for bob:*** and ***");
    }
}
