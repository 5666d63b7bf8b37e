//! The Flight SQL metadata calls (GetSqlInfo, catalogs, schemas, tables, table types), answered
//! from the session's catalog: the lake's tables are `datafusion.public.<name>`, as in `backbeat sql`.

use std::pin::Pin;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{
    Any, CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables, SqlInfo,
    SqlNullOrdering, SqlSupportedTransaction,
};
use arrow_flight::{FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::datasource::TableType;
use futures::{Stream, StreamExt};
use prost::Message;
use tonic::Status;

use crate::session::BackbeatSession;

/// What the server says about itself (GetSqlInfo). ADBC asks for some of these on connect.
pub(super) fn sql_info() -> anyhow::Result<SqlInfoData> {
    let mut info = SqlInfoDataBuilder::new();
    info.append(SqlInfo::FlightSqlServerName, "backbeat");
    info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    info.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    info.append(SqlInfo::FlightSqlServerReadOnly, false);
    info.append(SqlInfo::FlightSqlServerSql, true);
    info.append(SqlInfo::FlightSqlServerSubstrait, false);
    info.append(SqlInfo::FlightSqlServerTransaction, SqlSupportedTransaction::None as i32);
    info.append(SqlInfo::FlightSqlServerCancel, false);
    info.append(SqlInfo::SqlDdlCatalog, false);
    info.append(SqlInfo::SqlDdlSchema, false);
    info.append(SqlInfo::SqlDdlTable, true);
    info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    info.append(SqlInfo::SqlNullOrdering, SqlNullOrdering::SqlNullsSortedHigh as i32);
    info.append(SqlInfo::SqlTransactionsSupported, false);
    Ok(info.build()?)
}

/// The FlightInfo of a metadata command: its schema, and the command itself as the ticket.
pub(super) fn command_info(schema: &Schema, command: Any, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(command.encode_to_vec()));
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("cannot encode schema: {e}")))?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor))
}

/// One batch as a DoGet stream.
pub(super) fn batch_stream(
    batch: Result<RecordBatch, Status>,
) -> Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>> {
    match batch {
        Ok(batch) => {
            let schema = batch.schema();
            let stream = FlightDataEncoderBuilder::new()
                .with_schema(schema)
                .build(futures::stream::once(async { Ok(batch) }))
                .map(|r| r.map_err(Status::from));
            Box::pin(stream)
        }
        Err(status) => Box::pin(futures::stream::once(async { Err(status) })),
    }
}

pub(super) fn catalogs(session: &BackbeatSession, query: CommandGetCatalogs) -> Result<RecordBatch, Status> {
    let mut builder = query.into_builder();
    for catalog in session.context().catalog_names() {
        builder.append(catalog);
    }
    builder.build().map_err(Status::from)
}

pub(super) fn schemas(session: &BackbeatSession, query: CommandGetDbSchemas) -> Result<RecordBatch, Status> {
    let wanted = query.catalog.clone();
    let mut builder = query.into_builder();
    let ctx = session.context();
    for catalog_name in ctx.catalog_names() {
        if wanted.as_deref().is_some_and(|w| w != catalog_name) {
            continue;
        }
        let Some(catalog) = ctx.catalog(&catalog_name) else { continue };
        for schema in catalog.schema_names() {
            builder.append(&catalog_name, schema);
        }
    }
    builder.build().map_err(Status::from)
}

pub(super) async fn tables(session: &BackbeatSession, query: CommandGetTables) -> Result<RecordBatch, Status> {
    let wanted = query.catalog.clone();
    let include_schema = query.include_schema;
    let mut builder = query.into_builder();
    let ctx = session.context();
    let empty = Schema::empty();
    for catalog_name in ctx.catalog_names() {
        if wanted.as_deref().is_some_and(|w| w != catalog_name) {
            continue;
        }
        let Some(catalog) = ctx.catalog(&catalog_name) else { continue };
        for schema_name in catalog.schema_names() {
            let Some(schema) = catalog.schema(&schema_name) else { continue };
            let mut names = schema.table_names();
            names.sort();
            for name in names {
                // Opening every table costs a Delta log read each: only when the client asked.
                let (kind, table_schema) = if include_schema {
                    match schema.table(&name).await {
                        Ok(Some(table)) => (table_type(table.table_type()), table.schema()),
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!(table = %name, error = %e, "GetTables: cannot open table");
                            continue;
                        }
                    }
                } else {
                    ("TABLE", std::sync::Arc::new(empty.clone()))
                };
                builder
                    .append(&catalog_name, &schema_name, &name, kind, &table_schema)
                    .map_err(Status::from)?;
            }
        }
    }
    builder.build().map_err(Status::from)
}

fn table_type(kind: TableType) -> &'static str {
    match kind {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

pub(super) fn table_types(query: CommandGetTableTypes) -> Result<RecordBatch, Status> {
    let mut builder = query.into_builder();
    for kind in ["LOCAL TEMPORARY", "TABLE", "VIEW"] {
        builder.append(kind);
    }
    builder.build().map_err(Status::from)
}
