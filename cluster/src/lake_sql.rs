//! The lake's own SQL statements, which DataFusion does not plan: `UPDATE`, `DELETE`, `MERGE INTO`,
//! `OPTIMIZE`, `VACUUM`, `DESCRIBE HISTORY` and `RESTORE TABLE`, in Databricks' syntax, each run
//! by its verb in [`crate::delta`] and answered with a one-row (or per-commit) result.
//!
//! `UPDATE`, `DELETE` and `MERGE` are parsed with DataFusion's SQL parser; their expressions are
//! kept as SQL text and planned by DataFusion inside the verbs' queries, so they mean what they
//! mean in any other query. The others are simple enough for patterns.

use std::sync::LazyLock;

use anyhow::{Context, Result, bail};
use datafusion::dataframe::DataFrame;
use datafusion::sql::sqlparser::ast::{
    self, AssignmentTarget, FromTable, MergeInsertKind, ObjectName, ObjectNamePart, TableFactor,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use regex::Regex;

use crate::delta::merge::{MergeAction, MergeClause, MergeSpec, MergeWhen};
use crate::delta::sql_text::{string, values_table};
use crate::delta::{DeltaTableProvider, history, merge, optimize, update, vacuum};
use crate::lake_catalog::TableFormat;
use crate::session::BackbeatSession;

/// A lake statement, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeStatement {
    /// `UPDATE t [AS a] SET c = e, ... [WHERE p]`
    Update {
        /// Lake table name.
        table: String,
        /// The name expressions use for it.
        alias: String,
        /// `(column, expression)` pairs.
        assignments: Vec<(String, String)>,
        /// The `WHERE` predicate.
        predicate: Option<String>,
    },
    /// `DELETE FROM t [AS a] [WHERE p]`
    Delete {
        /// Lake table name.
        table: String,
        /// The name expressions use for it.
        alias: String,
        /// The `WHERE` predicate.
        predicate: Option<String>,
    },
    /// `MERGE INTO t USING s ON c WHEN ...`
    Merge {
        /// Lake table name of the target.
        table: String,
        /// The rest of the statement.
        spec: MergeSpec,
    },
    /// `OPTIMIZE t [WHERE p]`
    Optimize {
        /// Lake table name.
        table: String,
        /// Predicate over partition columns.
        predicate: Option<String>,
    },
    /// `VACUUM t [RETAIN n HOURS] [DRY RUN]`
    Vacuum {
        /// Lake table name.
        table: String,
        /// Retention in hours.
        retain_hours: Option<u64>,
        /// List, do not delete.
        dry_run: bool,
    },
    /// `DESCRIBE HISTORY t [LIMIT n]`
    History {
        /// Lake table name.
        table: String,
        /// Newest commits to show.
        limit: Option<usize>,
    },
    /// `SET backbeat.vacuum.retention_check = false`: lets this session's VACUUM keep less than
    /// the table's retention (Databricks' `retentionDurationCheck.enabled`).
    RetentionCheck(bool),
    /// `RESTORE [TABLE] t TO VERSION AS OF n`
    Restore {
        /// Lake table name.
        table: String,
        /// The version whose data to restore.
        version: u64,
    },
}

const NAME: &str = r#"("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_.]*)"#;

static OPTIMIZE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"(?is)^\s*OPTIMIZE\s+{NAME}(?:\s+WHERE\s+(.+?))?\s*$")).expect("static regex"));
static VACUUM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?is)^\s*VACUUM\s+{NAME}(?:\s+RETAIN\s+(\d+)\s+HOURS?)?(\s+DRY\s+RUN)?\s*$")).expect("static regex")
});
static HISTORY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"(?is)^\s*DESCRIBE\s+HISTORY\s+{NAME}(?:\s+LIMIT\s+(\d+))?\s*$")).expect("static regex"));
static RESTORE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?is)^\s*RESTORE\s+(?:TABLE\s+)?{NAME}\s+TO\s+VERSION\s+AS\s+OF\s+(\d+)\s*$")).expect("static regex")
});
static RETENTION_CHECK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*SET\s+backbeat\.vacuum\.retention_check\s*=\s*'?(true|false)'?\s*$").expect("static regex")
});
static DML: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?is)^\s*(UPDATE|DELETE|MERGE)\s").expect("static regex"));

/// The placeholder `UPDATE SET *` is parsed as (the generic dialect has no `SET *`).
const ALL_COLUMNS: &str = "__bb_all_columns";

/// Recognises a lake statement; `None` for anything DataFusion plans itself.
pub fn parse(sql: &str) -> Result<Option<LakeStatement>> {
    if let Some(c) = OPTIMIZE.captures(sql) {
        return Ok(Some(LakeStatement::Optimize { table: unquote(&c[1])?, predicate: c.get(2).map(|m| m.as_str().to_string()) }));
    }
    if let Some(c) = VACUUM.captures(sql) {
        let retain_hours = c.get(2).map(|m| m.as_str().parse()).transpose().context("VACUUM RETAIN hours")?;
        return Ok(Some(LakeStatement::Vacuum { table: unquote(&c[1])?, retain_hours, dry_run: c.get(3).is_some() }));
    }
    if let Some(c) = HISTORY.captures(sql) {
        let limit = c.get(2).map(|m| m.as_str().parse()).transpose().context("DESCRIBE HISTORY LIMIT")?;
        return Ok(Some(LakeStatement::History { table: unquote(&c[1])?, limit }));
    }
    if let Some(c) = RESTORE.captures(sql) {
        return Ok(Some(LakeStatement::Restore { table: unquote(&c[1])?, version: c[2].parse().context("RESTORE version")? }));
    }
    if let Some(c) = RETENTION_CHECK.captures(sql) {
        return Ok(Some(LakeStatement::RetentionCheck(c[1].eq_ignore_ascii_case("true"))));
    }
    if !DML.is_match(sql) {
        return Ok(None);
    }
    let text = expand_star_clauses(sql)?;
    let mut statements = Parser::parse_sql(&GenericDialect {}, &text).with_context(|| format!("cannot parse: {sql}"))?;
    let [statement] = statements.as_mut_slice() else { bail!("expected one statement, got {}", statements.len()) };
    Ok(Some(match statement {
        ast::Statement::Update(u) => {
            if u.from.is_some() || !u.table.joins.is_empty() {
                bail!("UPDATE ... FROM is not supported; write it as MERGE INTO ... USING ... WHEN MATCHED THEN UPDATE");
            }
            if u.returning.is_some() || u.output.is_some() || u.or.is_some() || !u.order_by.is_empty() || u.limit.is_some() {
                bail!("UPDATE with RETURNING, OUTPUT, OR, ORDER BY or LIMIT is not supported (a Delta UPDATE changes every matching row)");
            }
            let (table, alias) = target(&u.table.relation)?;
            let assignments = u.assignments.iter().map(assignment).collect::<Result<_>>()?;
            LakeStatement::Update { table, alias, assignments, predicate: u.selection.as_ref().map(|e| e.to_string()) }
        }
        ast::Statement::Delete(d) => {
            let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
            let [only] = from.as_slice() else { bail!("DELETE takes one table") };
            if d.using.is_some() || !only.joins.is_empty() {
                bail!("DELETE ... USING is not supported; write it as MERGE INTO ... WHEN MATCHED THEN DELETE");
            }
            if d.returning.is_some() || d.output.is_some() || !d.order_by.is_empty() || d.limit.is_some() || !d.tables.is_empty() {
                bail!("DELETE with RETURNING, OUTPUT, ORDER BY, LIMIT or several tables is not supported (a Delta DELETE removes every matching row)");
            }
            let (table, alias) = target(&only.relation)?;
            LakeStatement::Delete { table, alias, predicate: d.selection.as_ref().map(|e| e.to_string()) }
        }
        ast::Statement::Merge(m) => {
            if m.output.is_some() {
                bail!("MERGE ... OUTPUT is not supported");
            }
            let (table, target_alias) = target(&m.table)?;
            let (source, alias) = match &m.source {
                TableFactor::Table { name, alias, .. } => (name.to_string(), alias.clone().ok_or_else(|| name.clone())),
                TableFactor::Derived { subquery, alias: Some(alias), .. } => (format!("({subquery})"), Ok(alias.clone())),
                other => bail!("MERGE ... USING {other}: the source must be a table or an aliased (subquery)"),
            };
            // The alias as written (quotes kept); its column list renames the source's columns.
            let (source_alias, source_columns) = match alias {
                Ok(a) if !a.columns.is_empty() => {
                    let columns: Vec<String> = a.columns.iter().map(|c| c.name.to_string()).collect();
                    (a.name.to_string(), format!("({})", columns.join(", ")))
                }
                Ok(a) => (a.name.to_string(), String::new()),
                Err(name) => (name.0.last().map(|p| p.to_string()).unwrap_or_default(), String::new()),
            };
            let clauses = m.clauses.iter().map(merge_clause).collect::<Result<_>>()?;
            LakeStatement::Merge {
                table,
                spec: MergeSpec {
                    keys: key_pairs(&m.on, &target_alias, &source_alias),
                    target_alias,
                    source,
                    source_columns,
                    source_alias,
                    on: m.on.to_string(),
                    clauses,
                },
            }
        }
        other => bail!("not a lake statement: {other}"),
    }))
}

/// The `target.column = source.column` conjuncts of a MERGE's `ON`, as (target column, source
/// expression): what lets the first pass skip target files outside the source's key range.
fn key_pairs(on: &ast::Expr, target: &str, source: &str) -> Vec<(String, String)> {
    use ast::{BinaryOperator, Expr};
    let column_of = |e: &Expr, alias: &str| match e {
        Expr::CompoundIdentifier(parts) if parts.len() == 2 && parts[0].to_string() == alias => Some(parts[1].clone()),
        _ => None,
    };
    match on {
        Expr::Nested(inner) => key_pairs(inner, target, source),
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            let mut pairs = key_pairs(left, target, source);
            pairs.extend(key_pairs(right, target, source));
            pairs
        }
        Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => {
            let name = |i: &ast::Ident| if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() };
            match (column_of(left, target), column_of(right, source), column_of(right, target), column_of(left, source)) {
                (Some(t), Some(_), _, _) => vec![(name(&t), right.to_string())],
                (_, _, Some(t), Some(_)) => vec![(name(&t), left.to_string())],
                _ => vec![],
            }
        }
        _ => vec![],
    }
}

/// Rewrites Databricks' `UPDATE SET *` and `INSERT *`, which the generic dialect lacks, into forms
/// it parses (`UPDATE SET <placeholder> = 1`, `INSERT ROW`). Works on tokens, so a `*` inside a
/// string literal or comment is left alone, and edits the original text at the tokens' positions.
fn expand_star_clauses(sql: &str) -> Result<String> {
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location().context("cannot tokenize the statement")?;
    let words: Vec<_> = tokens.iter().filter(|t| !matches!(t.token, Token::Whitespace(_))).collect();
    let mut edits: Vec<(u64, u64, &str)> = Vec::new();
    for (i, t) in words.iter().enumerate() {
        if t.token != Token::Mul {
            continue;
        }
        let keyword = |back: usize| match words.get(i.wrapping_sub(back)).map(|t| &t.token) {
            Some(Token::Word(w)) => Some(w.keyword),
            _ => None,
        };
        let replacement = match (keyword(2), keyword(1)) {
            (Some(Keyword::UPDATE), Some(Keyword::SET)) => "__bb_all_columns = 1",
            (_, Some(Keyword::INSERT)) => "ROW",
            _ => continue,
        };
        edits.push((t.span.start.line, t.span.start.column, replacement));
    }
    if edits.is_empty() {
        return Ok(sql.to_string());
    }
    let mut out = String::with_capacity(sql.len() + 32);
    let (mut line, mut column) = (1u64, 1u64);
    for c in sql.chars() {
        match edits.iter().find(|(l, col, _)| *l == line && *col == column) {
            Some((_, _, replacement)) => out.push_str(replacement),
            None => out.push(c),
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    Ok(out)
}

fn merge_clause(c: &ast::MergeClause) -> Result<MergeClause> {
    let when = match c.clause_kind {
        ast::MergeClauseKind::Matched => MergeWhen::Matched,
        ast::MergeClauseKind::NotMatched | ast::MergeClauseKind::NotMatchedByTarget => MergeWhen::NotMatched,
        ast::MergeClauseKind::NotMatchedBySource => MergeWhen::NotMatchedBySource,
    };
    let action = match &c.action {
        ast::MergeAction::Update(u) => {
            if u.update_predicate.is_some() || u.delete_predicate.is_some() {
                bail!("UPDATE SET ... WHERE / DELETE WHERE inside MERGE is not supported; put the condition in WHEN MATCHED AND ...");
            }
            let assignments: Vec<(String, String)> = u.assignments.iter().map(assignment).collect::<Result<_>>()?;
            if assignments.iter().any(|(c, _)| c == ALL_COLUMNS) {
                MergeAction::UpdateAll
            } else {
                MergeAction::Update(assignments)
            }
        }
        ast::MergeAction::Delete { .. } => MergeAction::Delete,
        ast::MergeAction::Insert(i) if i.insert_predicate.is_some() => {
            bail!("INSERT ... WHERE inside MERGE is not supported; put the condition in WHEN NOT MATCHED AND ...")
        }
        ast::MergeAction::Insert(i) => match &i.kind {
            MergeInsertKind::Row => MergeAction::InsertAll,
            MergeInsertKind::Values(values) => {
                let [row] = values.rows.as_slice() else { bail!("MERGE INSERT VALUES takes one row") };
                MergeAction::Insert {
                    columns: i.columns.iter().map(last_part).collect(),
                    values: row.content.iter().map(|e| e.to_string()).collect(),
                }
            }
        },
    };
    if when == MergeWhen::NotMatched && !matches!(action, MergeAction::Insert { .. } | MergeAction::InsertAll) {
        bail!("WHEN NOT MATCHED can only INSERT");
    }
    if when != MergeWhen::NotMatched && matches!(action, MergeAction::Insert { .. } | MergeAction::InsertAll) {
        bail!("only WHEN NOT MATCHED can INSERT");
    }
    Ok(MergeClause { when, condition: c.predicate.as_ref().map(|e| e.to_string()), action })
}

fn assignment(a: &ast::Assignment) -> Result<(String, String)> {
    match &a.target {
        AssignmentTarget::ColumnName(name) => Ok((last_part(name), a.value.to_string())),
        AssignmentTarget::Tuple(_) => bail!("SET (a, b) = ... is not supported; assign columns one by one"),
    }
}

/// The lake table a statement writes, and the name its expressions use for it.
fn target(factor: &TableFactor) -> Result<(String, String)> {
    let TableFactor::Table { name, alias, .. } = factor else { bail!("the target must be a lake table, not {factor}") };
    let parts: Vec<String> = name.0.iter().map(part).collect();
    if parts.len() > 1 && parts[..parts.len() - 1] != ["public"] && parts[..parts.len() - 1] != ["datafusion", "public"] {
        bail!("'{name}' is not a lake table (lake tables are in the default schema, 'public')");
    }
    let alias = alias.as_ref().map(|a| a.name.to_string()).unwrap_or_else(|| name.0.last().map(|p| p.to_string()).unwrap_or_default());
    Ok((last_part(name), alias))
}

/// An identifier as DataFusion resolves it: unquoted ones fold to lower case.
fn part(p: &ObjectNamePart) -> String {
    match p {
        ObjectNamePart::Identifier(i) if i.quote_style.is_some() => i.value.clone(),
        ObjectNamePart::Identifier(i) => i.value.to_lowercase(),
        other => other.to_string(),
    }
}

fn last_part(name: &ObjectName) -> String {
    name.0.last().map(part).unwrap_or_default()
}

/// A lake table name as the patterns capture it: `t`, `"T"`, `public.t` or `datafusion.public.t`.
fn unquote(raw: &str) -> Result<String> {
    if let Some(quoted) = raw.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        return Ok(quoted.replace("\"\"", "\""));
    }
    let lower = raw.to_lowercase();
    let (prefix, name) = lower.rsplit_once('.').unwrap_or(("public", &lower));
    if prefix != "public" && prefix != "datafusion.public" {
        bail!("'{raw}' is not a lake table (lake tables are in the default schema, 'public')");
    }
    Ok(name.to_string())
}

/// Runs a lake statement; the result is a DataFrame of its report.
pub async fn execute(session: &BackbeatSession, statement: LakeStatement) -> Result<DataFrame> {
    let ctx = session.context();
    let open = |table: &str| {
        let table = table.to_string();
        async move {
            match session.lake().table_format(&table).await? {
                Some(TableFormat::Delta) => {}
                Some(TableFormat::Parquet) => bail!("'{table}' is a Parquet directory; only Delta tables can be changed"),
                None => bail!("no lake table '{table}' (see SHOW TABLES)"),
            }
            let url = session.lake().table_url(&table)?;
            anyhow::Ok((DeltaTableProvider::open(&url, None).await?, url))
        }
    };
    Ok(match statement {
        LakeStatement::Update { table, alias, assignments, predicate } => {
            let (provider, _) = open(&table).await?;
            let outcome = update::update(ctx, &provider, &alias, &assignments, predicate.as_deref())
                .await
                .with_context(|| format!("UPDATE {table}"))?;
            outcome.to_dataframe(ctx).await?
        }
        LakeStatement::Delete { table, alias, predicate } => {
            let (provider, _) = open(&table).await?;
            let outcome = update::delete(ctx, &provider, &alias, predicate.as_deref()).await.with_context(|| format!("DELETE FROM {table}"))?;
            outcome.to_dataframe(ctx).await?
        }
        LakeStatement::Merge { table, spec } => {
            let (provider, _) = open(&table).await?;
            let outcome = merge::merge(ctx, &provider, &spec).await.with_context(|| format!("MERGE INTO {table}"))?;
            outcome.to_dataframe(ctx).await?
        }
        LakeStatement::Optimize { table, predicate } => {
            let (provider, _) = open(&table).await?;
            let o = optimize::optimize(ctx, &provider, predicate.as_deref()).await.with_context(|| format!("OPTIMIZE {table}"))?;
            ctx.sql(&format!(
                "SELECT arrow_cast({}, 'Int64') AS num_files_removed, arrow_cast({}, 'Int64') AS num_partitions_optimized, \
                 arrow_cast({}, 'Int64') AS version",
                o.files_removed,
                o.partitions,
                o.version.map_or("NULL".to_string(), |v| v.to_string())
            ))
            .await?
        }
        LakeStatement::Vacuum { table, retain_hours, dry_run } => {
            let (_, url) = open(&table).await?;
            let force = !session.retention_check();
            let outcome = vacuum::vacuum(url.as_str(), retain_hours, dry_run, force).await.with_context(|| format!("VACUUM {table}"))?;
            let rows: Vec<Vec<String>> = outcome.files.iter().map(|f| vec![string(f)]).collect();
            ctx.sql(&values_table(&["path"], &rows)).await?
        }
        LakeStatement::History { table, limit } => {
            let (_, url) = open(&table).await?;
            let entries = history::history(url.as_str(), limit).await.with_context(|| format!("DESCRIBE HISTORY {table}"))?;
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        format!("arrow_cast({}, 'Int64')", e.version),
                        e.timestamp.map_or("NULL".into(), |t| format!("to_timestamp_millis({t})")),
                        string(&e.operation),
                        string(&e.parameters),
                        string(&e.metrics),
                        e.read_version.map_or("arrow_cast(NULL, 'Int64')".into(), |v| format!("arrow_cast({v}, 'Int64')")),
                    ]
                })
                .collect();
            ctx.sql(&values_table(
                &["version", "timestamp", "operation", "operation_parameters", "operation_metrics", "read_version"],
                &rows,
            ))
            .await?
        }
        LakeStatement::RetentionCheck(on) => {
            session.set_retention_check(on);
            ctx.sql(&format!("SELECT {on} AS retention_check")).await?
        }
        LakeStatement::Restore { table, version } => {
            let (_, url) = open(&table).await?;
            let o = history::restore(url.as_str(), version).await.with_context(|| format!("RESTORE TABLE {table}"))?;
            ctx.sql(&format!(
                "SELECT arrow_cast({}, 'Int64') AS version, arrow_cast({}, 'Int64') AS num_removed_files, \
                 arrow_cast({}, 'Int64') AS num_restored_files",
                o.version, o.files_removed, o.files_restored
            ))
            .await?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_with_star_clauses_and_a_subquery_source_parses() {
        let sql = "MERGE INTO Orders AS t USING (SELECT * FROM changes WHERE day = 3) AS s ON t.id = s.id \
                   WHEN MATCHED AND s.op = 'd' THEN DELETE WHEN MATCHED THEN UPDATE SET * \
                   WHEN NOT MATCHED THEN INSERT * WHEN NOT MATCHED BY SOURCE THEN UPDATE SET flag = true";
        let Some(LakeStatement::Merge { table, spec }) = parse(sql).unwrap() else { panic!("not a merge") };
        assert_eq!(table, "orders");
        assert_eq!((spec.target_alias.as_str(), spec.source_alias.as_str()), ("t", "s"));
        assert!(spec.source.starts_with("(SELECT"));
        let actions: Vec<_> = spec.clauses.iter().map(|c| (c.when, c.action.clone())).collect();
        assert_eq!(
            actions,
            vec![
                (MergeWhen::Matched, MergeAction::Delete),
                (MergeWhen::Matched, MergeAction::UpdateAll),
                (MergeWhen::NotMatched, MergeAction::InsertAll),
                (MergeWhen::NotMatchedBySource, MergeAction::Update(vec![("flag".into(), "true".into())])),
            ]
        );
        assert_eq!(spec.clauses[0].condition.as_deref(), Some("s.op = 'd'"));
    }

    #[test]
    fn maintenance_statements_parse_and_other_sql_passes_through() {
        assert_eq!(
            parse("VACUUM \"Mixed Case\" RETAIN 24 HOURS DRY RUN").unwrap(),
            Some(LakeStatement::Vacuum { table: "Mixed Case".into(), retain_hours: Some(24), dry_run: true })
        );
        assert_eq!(
            parse("optimize public.events where day >= '2024-01-01'").unwrap(),
            Some(LakeStatement::Optimize { table: "events".into(), predicate: Some("day >= '2024-01-01'".into()) })
        );
        assert_eq!(parse("DESCRIBE HISTORY t LIMIT 5").unwrap(), Some(LakeStatement::History { table: "t".into(), limit: Some(5) }));
        assert_eq!(parse("RESTORE TABLE t TO VERSION AS OF 3").unwrap(), Some(LakeStatement::Restore { table: "t".into(), version: 3 }));
        assert_eq!(parse("SELECT * FROM updates").unwrap(), None);
        assert_eq!(parse("DESCRIBE t").unwrap(), None);
        assert!(parse("UPDATE t SET a = 1 FROM s WHERE t.id = s.id").unwrap_err().to_string().contains("MERGE"));
        assert!(parse("MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN DELETE").is_err());
    }
}
