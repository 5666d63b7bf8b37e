//! SQL scripts: splitting a file into statements, and recognising the statements backbeat plans
//! itself rather than handing to DataFusion (`CREATE [OR REPLACE] TABLE ... AS`).

use std::sync::LazyLock;

use anyhow::{Result, bail};
use regex::Regex;

/// One statement, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `CREATE [OR REPLACE] TABLE [IF NOT EXISTS] name [USING DELTA] [PARTITIONED BY (a, b)] AS query`
    CreateTableAs {
        /// Lake table name (unquoted).
        name: String,
        /// `OR REPLACE` was given.
        replace: bool,
        /// `IF NOT EXISTS` was given.
        if_not_exists: bool,
        /// Partition columns.
        partition_by: Vec<String>,
        /// The query whose result fills the table.
        query: String,
    },
    /// Anything else: planned by DataFusion as it is.
    Other(String),
}

static CTAS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?is)^\s*CREATE\s+(OR\s+REPLACE\s+)?TABLE\s+(IF\s+NOT\s+EXISTS\s+)?("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_]*)\s*(?:USING\s+DELTA\s+)?(?:PARTITIONED\s+BY\s*\(([^)]*)\)\s*)?AS\s+(.+)$"#,
    )
    .expect("static regex")
});

/// Classifies one statement (without its trailing `;`).
pub fn parse_statement(sql: &str) -> Result<Statement> {
    let Some(caps) = CTAS.captures(sql) else {
        return Ok(Statement::Other(sql.to_string()));
    };
    let raw_name = &caps[3];
    let name = match raw_name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        // Unquoted identifiers fold to lower case, as everywhere else in DataFusion SQL.
        None => raw_name.to_lowercase(),
    };
    let partition_by = match caps.get(4) {
        Some(cols) => cols
            .as_str()
            .split(',')
            .map(|c| c.trim().trim_matches('"').to_string())
            .filter(|c| !c.is_empty())
            .collect(),
        None => vec![],
    };
    if caps.get(4).is_some() && partition_by.is_empty() {
        bail!("PARTITIONED BY () names no columns");
    }
    Ok(Statement::CreateTableAs {
        name,
        replace: caps.get(1).is_some(),
        if_not_exists: caps.get(2).is_some(),
        partition_by,
        query: caps[5].trim().to_string(),
    })
}

/// Splits a script on `;`, ignoring semicolons inside quotes and comments; drops empty statements.
pub fn split_statements(script: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                current.push(c);
                for d in chars.by_ref() {
                    current.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                // Line comment: drop it, keep the newline.
                for d in chars.by_ref() {
                    if d == '\n' {
                        current.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
                current.push(' ');
            }
            ';' => {
                push_statement(&mut statements, &mut current);
            }
            _ => current.push(c),
        }
    }
    push_statement(&mut statements, &mut current);
    statements
}

fn push_statement(statements: &mut Vec<String>, current: &mut String) {
    let trimmed = current.trim();
    if !trimmed.is_empty() {
        statements.push(trimmed.to_string());
    }
    current.clear();
}

/// Whether a statement returns rows to show (a query) rather than a count of rows written.
pub fn returns_rows(sql: &str) -> bool {
    let first = sql
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "SELECT" | "WITH" | "VALUES" | "SHOW" | "DESCRIBE" | "DESC" | "EXPLAIN" | "FROM" | "TABLE"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctas_forms() {
        let s = parse_statement("create or replace table Sales PARTITIONED BY (year, \"month\") as select 1").unwrap();
        assert_eq!(
            s,
            Statement::CreateTableAs {
                name: "sales".into(),
                replace: true,
                if_not_exists: false,
                partition_by: vec!["year".into(), "month".into()],
                query: "select 1".into()
            }
        );
        let s = parse_statement("CREATE TABLE IF NOT EXISTS \"My Table\" USING DELTA AS\nWITH x AS (SELECT 1) SELECT * FROM x").unwrap();
        assert!(matches!(s, Statement::CreateTableAs { ref name, if_not_exists: true, .. } if name == "My Table"));
        assert!(matches!(parse_statement("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION 'x'").unwrap(), Statement::Other(_)));
        assert!(matches!(parse_statement("SELECT 'create table x as select 1'").unwrap(), Statement::Other(_)));
    }

    #[test]
    fn splitting_respects_quotes_and_comments() {
        let script = "SELECT ';' AS a; -- a comment; with a semicolon\nSELECT 2 /* ; */;;\n";
        assert_eq!(split_statements(script), vec!["SELECT ';' AS a", "SELECT 2"]);
    }

    #[test]
    fn classifies_queries() {
        assert!(returns_rows("  (SELECT 1)"));
        assert!(returns_rows("with x as (select 1) select * from x"));
        assert!(!returns_rows("INSERT INTO t SELECT 1"));
    }
}
