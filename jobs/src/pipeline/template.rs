//! `{{ name }}` variables in pipeline values. A variable is replaced by its text, and the text then
//! goes through the step's own checks (a job's typed parameters, a path that must exist): nothing
//! is ever spliced into SQL. Unknown names are errors, never empty strings.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use anyhow::{Result, bail};
use regex::Regex;

static VARIABLE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}").expect("static regex"));

/// The values a template may use: `ds`, `ds_nodash`, `lake`, `run_key`, the pipeline's `vars`,
/// and `env.NAME` (read when rendered).
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Name to value.
    pub values: BTreeMap<String, String>,
}

impl Context {
    /// The value of `name`, or why there is none.
    fn get(&self, name: &str) -> Result<String> {
        if let Some(var) = name.strip_prefix("env.") {
            return match std::env::var(var) {
                Ok(v) => Ok(v),
                Err(_) => bail!("environment variable {var} is not set (guard the step with `when: {{env: [{var}]}}`)"),
            };
        }
        match self.values.get(name) {
            Some(v) => Ok(v.clone()),
            None => {
                let known: Vec<&str> = self.values.keys().map(String::as_str).collect();
                bail!("unknown variable {{{{ {name} }}}} (known: {}, env.NAME)", known.join(", "))
            }
        }
    }

    /// `text` with every `{{ name }}` replaced.
    pub fn render(&self, text: &str) -> Result<String> {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for caps in VARIABLE.captures_iter(text) {
            let whole = caps.get(0).expect("group 0");
            out.push_str(&text[last..whole.start()]);
            out.push_str(&self.get(&caps[1])?);
            last = whole.end();
        }
        out.push_str(&text[last..]);
        let residue = VARIABLE.replace_all(text, "");
        if residue.contains("{{") || residue.contains("}}") {
            bail!("malformed {{{{ ... }}}} in '{text}' (a variable is {{{{ name }}}}, letters, digits, _ and .)");
        }
        Ok(out)
    }
}

/// The variable names `text` uses (`env.` ones included).
pub fn variables(text: &str) -> Vec<String> {
    VARIABLE.captures_iter(text).map(|c| c[1].to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_known_names_and_refuses_unknown_ones() {
        let ctx = Context { values: BTreeMap::from([("ds".to_string(), "2026-12-03".to_string())]) };
        assert_eq!(ctx.render("day={{ds}} / {{ ds }}").unwrap(), "day=2026-12-03 / 2026-12-03");
        assert!(ctx.render("{{ nope }}").unwrap_err().to_string().contains("unknown variable {{ nope }}"));
        assert!(ctx.render("{{ env.BACKBEAT_SURELY_NOT_SET_42 }}").unwrap_err().to_string().contains("is not set"));
        assert!(ctx.render("{{ ds").is_err());
        assert_eq!(ctx.render("recs:{user_id}").unwrap(), "recs:{user_id}");
    }
}
