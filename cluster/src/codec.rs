//! Logical and physical extension codecs: how backbeat's own plan pieces cross process boundaries.
//!
//! The client sends the scheduler a logical plan that may name a [`DeltaTableProvider`] or hold a
//! [`MapPartitionsNode`]; the scheduler sends executors physical plans that may hold
//! [`DeltaWriteExec`], [`DeltaCommitExec`] and [`MapPartitionsExec`].
//! Each is encoded as a tag plus JSON (they are a few hundred bytes, once per query, so JSON's
//! readability in logs beats protobuf's compactness). Everything else is delegated to Ballista's
//! codecs, which know its shuffle nodes and the file formats.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result, TableReference, internal_err};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};

use crate::delta::commit::{DeltaCommitExec, DeltaCommitSpec};
use crate::delta::writer::{DeltaWriteExec, DeltaWriteSpec};
use crate::delta::{DeltaTableProvider, DeltaTableSpec};
use crate::map_partitions::{MapPartitionsExec, MapPartitionsNode, MapPartitionsSpec};

/// Prefix of every payload we encode; anything else belongs to Ballista's codecs.
const TAG: &[u8] = b"backbeat1:";
/// Prefix of a series table (`generate_series`, `range`); see [`crate::table_functions`].
const SERIES_TAG: &[u8] = b"backbeat-series1:";

#[derive(Serialize, Deserialize)]
enum PhysicalNode {
    DeltaWrite(DeltaWriteSpec),
    DeltaCommit(DeltaCommitSpec),
    MapPartitions(MapPartitionsSpec),
}

fn encode_json(value: &impl Serialize, buf: &mut Vec<u8>) -> Result<()> {
    buf.extend_from_slice(TAG);
    serde_json::to_writer(buf, value).map_err(|e| DataFusionError::Internal(format!("encode: {e}")))
}

fn decode_json<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<T> {
    serde_json::from_slice(payload).map_err(|e| DataFusionError::Internal(format!("decode: {e}")))
}

/// Logical codec: Delta table providers and map-partitions nodes, then Ballista's.
#[derive(Debug, Default)]
pub struct BackbeatLogicalCodec {
    ballista: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for BackbeatLogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> Result<Extension> {
        let Some(payload) = buf.strip_prefix(TAG) else {
            return self.ballista.try_decode(buf, inputs, ctx);
        };
        let [input] = inputs else {
            return internal_err!("MapPartitions takes exactly one input, got {}", inputs.len());
        };
        let node = MapPartitionsNode::try_new(input.clone(), decode_json(payload)?)?;
        Ok(Extension { node: Arc::new(node) })
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        match node.node.as_any().downcast_ref::<MapPartitionsNode>() {
            Some(map) => encode_json(map.spec(), buf),
            None => self.ballista.try_encode(node, buf),
        }
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        if let Some(payload) = buf.strip_prefix(SERIES_TAG) {
            return crate::table_functions::decode(decode_json(payload)?, schema);
        }
        match buf.strip_prefix(TAG) {
            Some(payload) => {
                let spec: DeltaTableSpec = decode_json(payload)?;
                Ok(Arc::new(DeltaTableProvider::from_spec(spec, schema)))
            }
            None => self.ballista.try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if let Some(delta) = node.downcast_ref::<DeltaTableProvider>() {
            return encode_json(delta.spec(), buf);
        }
        if let Some(series) = crate::table_functions::encode(node.as_ref())? {
            buf.extend_from_slice(SERIES_TAG);
            return serde_json::to_writer(buf, &series).map_err(|e| DataFusionError::Internal(format!("encode: {e}")));
        }
        self.ballista.try_encode_table_provider(table_ref, node, buf).map_err(|e| {
            DataFusionError::NotImplemented(format!(
                "table '{table_ref}' cannot be sent to the cluster: its provider has no wire form ({e}). \
                 The cluster runs queries over lake tables (Delta, Parquet), registered Parquet/CSV/JSON \
                 files and generate_series/range; write other data to the lake first"
            ))
        })
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> Result<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn FileFormatFactory>) -> Result<()> {
        self.ballista.try_encode_file_format(buf, node)
    }
}

/// Physical codec: the Delta write and commit nodes and map-partitions, then Ballista's.
#[derive(Debug, Default)]
pub struct BackbeatPhysicalCodec {
    ballista: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for BackbeatPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(payload) = buf.strip_prefix(TAG) else {
            return self.ballista.try_decode(buf, inputs, ctx, proto_converter);
        };
        let [input] = inputs else {
            return internal_err!("backbeat plan nodes take exactly one input, got {}", inputs.len());
        };
        Ok(match decode_json::<PhysicalNode>(payload)? {
            PhysicalNode::DeltaWrite(spec) => Arc::new(DeltaWriteExec::from_spec(input.clone(), spec)),
            PhysicalNode::DeltaCommit(spec) => Arc::new(DeltaCommitExec::new(input.clone(), spec)),
            PhysicalNode::MapPartitions(spec) => Arc::new(MapPartitionsExec::try_new(input.clone(), spec)?),
        })
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if let Some(write) = node.downcast_ref::<DeltaWriteExec>() {
            return encode_json(&PhysicalNode::DeltaWrite(write.spec().clone()), buf);
        }
        if let Some(commit) = node.downcast_ref::<DeltaCommitExec>() {
            return encode_json(&PhysicalNode::DeltaCommit(commit.spec().clone()), buf);
        }
        if let Some(map) = node.downcast_ref::<MapPartitionsExec>() {
            return encode_json(&PhysicalNode::MapPartitions(map.spec().clone()), buf);
        }
        self.ballista.try_encode(node, buf, proto_converter)
    }
}
