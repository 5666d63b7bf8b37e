//! The Flight SQL verbs on a [`BackbeatSession`]: statements, prepared statements with bound
//! parameters, updates, and the metadata calls (in [`super::metadata`]).
//!
//! Queries are planned by the session, exactly as `backbeat sql` plans them, so the lake's tables,
//! time travel, Delta writes (`CREATE TABLE ... AS`, `INSERT`), the lake verbs (`MERGE`, `UPDATE`,
//! `DELETE`, `OPTIMIZE`...) and the UDFs all work. A query's rows stream from the executors to the
//! client batch by batch (`execute_stream`), so the server holds a few batches, never a result.
//! Statements that return no rows (writes, DDL, lake verbs) run at `GetFlightInfo`, so the schema
//! the client is told is the schema it gets.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::SqlInfoData;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementQuery, CommandStatementUpdate,
    DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use bytes::Bytes;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::dataframe::DataFrame;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::metadata;
use super::statements::{Pending, Statements};
use crate::session::{BackbeatSession, rows_written};
use crate::sql_script::returns_rows;

type FlightStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// backbeat's Flight SQL service.
pub struct BackbeatFlightSql {
    session: Arc<BackbeatSession>,
    statements: Statements,
    sql_info: SqlInfoData,
    written: Arc<AtomicU64>,
}

impl BackbeatFlightSql {
    /// A service planning on `session`, adding the rows its statements write to `written`.
    pub fn new(session: Arc<BackbeatSession>, written: Arc<AtomicU64>) -> anyhow::Result<Self> {
        Ok(Self { session, statements: Statements::default(), sql_info: metadata::sql_info()?, written })
    }

    /// Live handles (unfetched results, prepared statements).
    pub fn open_handles(&self) -> (usize, usize) {
        self.statements.counts()
    }

    /// Plans `sql` with `params` bound: a query to stream later, or, for a statement that returns
    /// no rows, its report (it runs now).
    async fn result(&self, sql: &str, params: Option<ParamValues>) -> Result<Pending, Status> {
        let df = self.dataframe(sql, params).await?;
        if returns_rows(sql) {
            return Ok(Pending::Query(df));
        }
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let started = std::time::Instant::now();
        let batches = df.collect().await.map_err(|e| failed(sql, &anyhow::Error::from(e)))?;
        tracing::info!(statement = %first_line(sql), elapsed = ?started.elapsed(), "Flight SQL statement ran");
        self.written.fetch_add(rows_written(&batches), Ordering::Relaxed);
        Ok(Pending::Done(batches.first().map(|b| b.schema()).unwrap_or(schema), batches))
    }

    /// [`Self::result`], kept for the `DoGet` that follows: the schema the client will get and
    /// the handle to fetch it by.
    async fn plan(&self, sql: &str, params: Option<ParamValues>) -> Result<(SchemaRef, Bytes), Status> {
        let pending = self.result(sql, params).await?;
        Ok((pending.schema(), self.statements.add_pending(pending)))
    }

    async fn dataframe(&self, sql: &str, params: Option<ParamValues>) -> Result<DataFrame, Status> {
        let df = self.session.sql(sql).await.map_err(|e| failed(sql, &e))?;
        match params {
            Some(params) => df.with_param_values(params).map_err(|e| failed(sql, &e.into())),
            None => Ok(df),
        }
    }

    /// Runs a statement to completion; the rows it wrote (or 0 for DDL).
    async fn update(&self, sql: &str, params: Option<ParamValues>) -> Result<i64, Status> {
        let df = self.dataframe(sql, params).await?;
        let batches = df.collect().await.map_err(|e| failed(sql, &e.into()))?;
        let rows = rows_written(&batches);
        self.written.fetch_add(rows, Ordering::Relaxed);
        Ok(rows as i64)
    }

    fn info(schema: &Schema, handle: Bytes, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
        let ticket = TicketStatementQuery { statement_handle: handle };
        let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        Ok(FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(format!("cannot encode the result schema: {e}")))?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor))
    }

    async fn stream(&self, pending: Pending) -> Result<FlightStream, Status> {
        let schema = pending.schema();
        let batches = match pending {
            Pending::Done(_, batches) => futures::stream::iter(batches.into_iter().map(Ok)).boxed(),
            Pending::Query(df) => {
                let stream = df
                    .execute_stream()
                    .await
                    .map_err(|e| Status::internal(format!("query failed to start: {e}")))?;
                stream.map_err(|e| FlightError::ExternalError(Box::new(e))).boxed()
            }
        };
        let encoded = FlightDataEncoderBuilder::new().with_schema(schema).build(batches).map_err(Status::from);
        Ok(Box::pin(encoded))
    }
}

/// A planning or execution error as the client sees it: the cause chain, each cause once (DataFusion
/// errors repeat their source in their own text), then the statement's first line.
fn failed(sql: &str, e: &anyhow::Error) -> Status {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || message.contains(text.trim()) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(text.trim());
    }
    tracing::info!(statement = %first_line(sql), error = %message, "Flight SQL statement failed");
    Status::invalid_argument(format!("{message}\n  in: {}", first_line(sql)))
}

fn first_line(sql: &str) -> String {
    let line = sql.trim().lines().next().unwrap_or("");
    line.chars().take(120).collect()
}

fn schema_ipc(schema: &Schema) -> Result<Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(format!("cannot encode schema: {e}")))?;
    Ok(bytes)
}

/// The parameters of a plan, `$1`, `$2`... in order, as the schema clients bind against.
fn parameter_schema(df: &DataFrame) -> Result<Schema, Status> {
    let fields = df
        .logical_plan()
        .get_parameter_fields()
        .map_err(|e| Status::invalid_argument(format!("cannot type the statement's parameters: {e}")))?;
    let mut fields: Vec<(String, Option<arrow::datatypes::FieldRef>)> = fields.into_iter().collect();
    fields.sort_by_key(|(name, _)| (name.trim_start_matches('$').parse::<u64>().unwrap_or(u64::MAX), name.clone()));
    Ok(Schema::new(
        fields
            .into_iter()
            .map(|(name, field)| Field::new(name, field.map(|f| f.data_type().clone()).unwrap_or(DataType::Null), true))
            .collect::<Vec<_>>(),
    ))
}

/// Reads the parameter batch a client bound: one row, one column per parameter in order.
async fn read_parameters(request: Request<PeekableFlightDataStream>) -> Result<ParamValues, Status> {
    let stream = request.into_inner().map_err(FlightError::from);
    let batches: Vec<_> = FlightRecordBatchStream::new_from_flight_data(stream)
        .try_collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("cannot read the bound parameters: {e}")))?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(ParamValues::List(vec![]));
    };
    if rows > 1 {
        return Err(Status::invalid_argument(format!(
            "{rows} parameter rows were bound; backbeat runs a prepared query with one row of parameters at a time"
        )));
    }
    let values = batch
        .columns()
        .iter()
        .map(|column| ScalarValue::try_from_array(column, 0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Status::invalid_argument(format!("unsupported parameter value: {e}")))?;
    Ok(values.into())
}

#[tonic::async_trait]
impl FlightSqlService for BackbeatFlightSql {
    type FlightService = BackbeatFlightSql;

    async fn do_handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        // The token was checked by the interceptor before this ran; there is no session to open.
        let response = HandshakeResponse { protocol_version: 0, payload: Bytes::new() };
        Ok(Response::new(Box::pin(futures::stream::once(async { Ok(response) }))))
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let (schema, handle) = self.plan(&query.query, None).await?;
        Ok(Response::new(Self::info(&schema, handle, request.into_inner())?))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let prepared = self.statements.prepared(&query.prepared_statement_handle)?;
        let (schema, handle) = self.plan(&prepared.sql, prepared.params).await?;
        Ok(Response::new(Self::info(&schema, handle, request.into_inner())?))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let pending = self.statements.take_pending(&ticket.statement_handle)?;
        Ok(Response::new(self.stream(pending).await?))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let prepared = self.statements.prepared(&query.prepared_statement_handle)?;
        let pending = self.result(&prepared.sql, prepared.params).await?;
        Ok(Response::new(self.stream(pending).await?))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.update(&command.query, None).await
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let params = read_parameters(request).await?;
        self.statements.bind(&query.prepared_statement_handle, params)?;
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(query.prepared_statement_handle) })
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let prepared = self.statements.prepared(&query.prepared_statement_handle)?;
        let bound = read_parameters(request).await?;
        let params = match bound {
            ParamValues::List(ref values) if values.is_empty() => prepared.params,
            bound => Some(bound),
        };
        self.update(&prepared.sql, params).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        // Only queries are planned here: planning a lake verb (MERGE...) would run it.
        let (dataset_schema, parameter_schema) = if returns_rows(&query.query) {
            let df = self.dataframe(&query.query, None).await?;
            (schema_ipc(df.schema().as_arrow())?, schema_ipc(&parameter_schema(&df)?)?)
        } else {
            (Bytes::new(), Bytes::new())
        };
        let handle = self.statements.prepare(query.query);
        Ok(ActionCreatePreparedStatementResult { prepared_statement_handle: handle, dataset_schema, parameter_schema })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        self.statements.close(&query.prepared_statement_handle);
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(metadata::command_info(&schema, query.as_any(), request.into_inner())?))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Ok(Response::new(metadata::batch_stream(metadata::catalogs(&self.session, query))))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(metadata::command_info(&schema, query.as_any(), request.into_inner())?))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Ok(Response::new(metadata::batch_stream(metadata::schemas(&self.session, query))))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(metadata::command_info(&schema, query.as_any(), request.into_inner())?))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = metadata::tables(&self.session, query).await;
        Ok(Response::new(metadata::batch_stream(batch)))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(metadata::command_info(&schema, query.as_any(), request.into_inner())?))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Ok(Response::new(metadata::batch_stream(metadata::table_types(query))))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.sql_info).schema();
        Ok(Response::new(metadata::command_info(&schema, query.as_any(), request.into_inner())?))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = query.into_builder(&self.sql_info).build().map_err(Status::from);
        Ok(Response::new(metadata::batch_stream(batch)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
