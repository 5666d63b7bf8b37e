//! Job parameters: declared with a type, bound into SQL as a checked, quoted literal, never spliced
//! in as raw text. `${orders_csv}` with type `path` becomes `'/abs/path/orders.csv'`; a `table`
//! parameter becomes a double-quoted identifier only if it is a plain name.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use anyhow::{Result, bail};
use regex::Regex;

/// What a parameter's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A whole number.
    Int,
    /// A finite number.
    Float,
    /// A date, `YYYY-MM-DD`.
    Date,
    /// Any text (quoted as a string literal).
    Text,
    /// A file that must exist (made absolute, quoted as a string literal).
    Path,
    /// A lake table name: letters, digits and underscores.
    Table,
}

impl ParamType {
    fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "int" => Self::Int,
            "float" => Self::Float,
            "date" => Self::Date,
            "text" => Self::Text,
            "path" => Self::Path,
            "table" => Self::Table,
            other => bail!("unknown parameter type '{other}' (int, float, date, text, path, table)"),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Int => "int",
            Self::Float => "float",
            Self::Date => "date",
            Self::Text => "text",
            Self::Path => "path",
            Self::Table => "table",
        }
    }
}

/// A declared parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// Name, as in `${name}`.
    pub name: String,
    /// Type.
    pub ty: ParamType,
    /// Default value; `None` means the parameter is required.
    pub default: Option<String>,
    /// One line of help.
    pub help: String,
}

impl ParamSpec {
    /// An optional parameter with its default value.
    pub fn with_default(name: &str, ty: ParamType, default: &str, help: &str) -> Self {
        Self { name: name.into(), ty, default: Some(default.into()), help: help.into() }
    }
}

impl std::fmt::Display for ParamSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}", self.name, self.ty.name())?;
        match &self.default {
            Some(d) => write!(f, ", default {d}")?,
            None => write!(f, ", required")?,
        }
        write!(f, "): {}", self.help)
    }
}

static PARAM_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*--\s*param:\s*([A-Za-z_][A-Za-z0-9_]*)\s+([a-z]+)\s*(?:=\s*(\S+))?\s*(?:--\s*(.*))?$").expect("static regex")
});
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}").expect("static regex"));
static IDENTIFIER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$").expect("static regex"));

/// Parses a `-- param: name type [= default] [-- help]` header line, if it is one.
pub fn parse_param_line(line: &str) -> Result<Option<ParamSpec>> {
    let Some(caps) = PARAM_LINE.captures(line) else {
        return Ok(None);
    };
    Ok(Some(ParamSpec {
        name: caps[1].to_string(),
        ty: ParamType::parse(&caps[2])?,
        default: caps.get(3).map(|m| m.as_str().to_string()),
        help: caps.get(4).map(|m| m.as_str().trim().to_string()).unwrap_or_default(),
    }))
}

/// The placeholders `${name}` used in `sql`.
pub fn placeholders(sql: &str) -> Vec<String> {
    let mut names: Vec<String> = PLACEHOLDER.captures_iter(sql).map(|c| c[1].to_string()).collect();
    names.sort();
    names.dedup();
    names
}

/// Checks `value` against `spec` and renders it as a SQL literal.
pub fn literal(spec: &ParamSpec, value: &str) -> Result<String> {
    let bad = |why: &str| anyhow::anyhow!("parameter {}={value:?} is not a valid {}: {why}", spec.name, spec.ty.name());
    Ok(match spec.ty {
        ParamType::Int => value.trim().parse::<i64>().map_err(|_| bad("expected a whole number"))?.to_string(),
        ParamType::Float => {
            let v = value.trim().parse::<f64>().map_err(|_| bad("expected a number"))?;
            if !v.is_finite() {
                return Err(bad("expected a finite number"));
            }
            format!("{v:?}")
        }
        ParamType::Date => {
            let d = chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").map_err(|_| bad("expected YYYY-MM-DD"))?;
            format!("DATE '{d}'")
        }
        ParamType::Text => quote(value),
        ParamType::Path => {
            let path = std::path::absolute(value).map_err(|e| bad(&e.to_string()))?;
            if !path.exists() {
                return Err(bad(&format!("{} does not exist", path.display())));
            }
            quote(&path.to_string_lossy())
        }
        ParamType::Table => {
            if !IDENTIFIER.is_match(value) {
                return Err(bad("a table name has only letters, digits and underscores"));
            }
            format!("\"{value}\"")
        }
    })
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Binds `given` values (and defaults) into `sql`. Every given name must be declared, every
/// required parameter given, and every value valid; errors list the valid parameters.
pub fn bind(job: &str, specs: &[ParamSpec], sql: &str, given: &[(String, String)]) -> Result<(String, BTreeMap<String, String>)> {
    let valid = || specs.iter().map(|s| format!("  {s}")).collect::<Vec<_>>().join("\n");
    let mut values = BTreeMap::new();
    for (name, value) in given {
        if !specs.iter().any(|s| &s.name == name) {
            bail!("job {job} has no parameter '{name}'; its parameters are:\n{}", valid());
        }
        values.insert(name.clone(), value.clone());
    }
    let mut literals = BTreeMap::new();
    for spec in specs {
        let value = match (values.get(&spec.name), &spec.default) {
            (Some(v), _) => v.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) => bail!("job {job} needs parameter '{}'; its parameters are:\n{}", spec.name, valid()),
        };
        literals.insert(spec.name.clone(), literal(spec, &value).map_err(|e| anyhow::anyhow!("{e}; job {job}'s parameters are:\n{}", valid()))?);
        values.insert(spec.name.clone(), value);
    }
    let bound = PLACEHOLDER.replace_all(sql, |c: &regex::Captures| literals[&c[1]].clone()).into_owned();
    Ok((bound, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, ty: ParamType, default: Option<&str>) -> ParamSpec {
        ParamSpec { name: name.into(), ty, default: default.map(Into::into), help: String::new() }
    }

    #[test]
    fn values_become_checked_literals() {
        let specs = [spec("n", ParamType::Int, Some("3")), spec("who", ParamType::Text, None), spec("t", ParamType::Table, Some("tracks"))];
        let (sql, _) = bind("j", &specs, "SELECT ${n}, ${who} FROM ${t}", &[("who".into(), "O'Brien'; DROP TABLE x; --".into())]).unwrap();
        assert_eq!(sql, "SELECT 3, 'O''Brien''; DROP TABLE x; --' FROM \"tracks\"");
    }

    #[test]
    fn bad_values_are_refused_with_the_valid_parameters() {
        let specs = [spec("n", ParamType::Int, Some("3")), spec("t", ParamType::Table, Some("tracks"))];
        let err = bind("j", &specs, "SELECT ${n} FROM ${t}", &[("n".into(), "1; DROP TABLE x".into())]).unwrap_err().to_string();
        assert!(err.contains("not a valid int") && err.contains("n (int, default 3)"), "{err}");
        let err = bind("j", &specs, "SELECT ${n} FROM ${t}", &[("t".into(), "tracks; DROP TABLE x".into())]).unwrap_err().to_string();
        assert!(err.contains("not a valid table"), "{err}");
        let err = bind("j", &specs, "SELECT 1", &[("nope".into(), "1".into())]).unwrap_err().to_string();
        assert!(err.contains("no parameter 'nope'") && err.contains("t (table"), "{err}");
        let required = [spec("d", ParamType::Date, None)];
        assert!(bind("j", &required, "SELECT ${d}", &[]).unwrap_err().to_string().contains("needs parameter 'd'"));
        assert!(bind("j", &required, "SELECT ${d}", &[("d".into(), "2024-13-01".into())]).is_err());
    }

    #[test]
    fn header_lines_parse() {
        let p = parse_param_line("-- param: orders_csv path = lake/orders.csv -- the orders file").unwrap().unwrap();
        assert_eq!(p, ParamSpec { name: "orders_csv".into(), ty: ParamType::Path, default: Some("lake/orders.csv".into()), help: "the orders file".into() });
        assert!(parse_param_line("-- just a comment").unwrap().is_none());
    }
}
