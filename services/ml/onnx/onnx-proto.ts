import protobuf from 'protobufjs';

/**
 * The part of ONNX's public `onnx-ml.proto` (IR version 8) this project reads and writes, with the
 * spec's field numbers. Decoding with it reads any ONNX file (fields it does not list are skipped);
 * a user's file is never re-encoded from it (see onnx-graph.ts, which edits the wire bytes).
 */
const SCHEMA = `
syntax = "proto2";
package onnx;
message AttributeProto {
  optional string name = 1; optional string ref_attr_name = 21; optional string doc_string = 13;
  optional int32 type = 20;
  optional float f = 2; optional int64 i = 3; optional bytes s = 4; optional TensorProto t = 5; optional GraphProto g = 6;
  repeated float floats = 7; repeated int64 ints = 8; repeated bytes strings = 9; repeated TensorProto tensors = 10;
  repeated GraphProto graphs = 11;
}
message ValueInfoProto { optional string name = 1; optional TypeProto type = 2; optional string doc_string = 3; }
message NodeProto {
  repeated string input = 1; repeated string output = 2; optional string name = 3; optional string op_type = 4;
  optional string domain = 7; repeated AttributeProto attribute = 5; optional string doc_string = 6;
}
message ModelProto {
  optional int64 ir_version = 1; repeated OperatorSetIdProto opset_import = 8; optional string producer_name = 2;
  optional string producer_version = 3; optional string domain = 4; optional int64 model_version = 5;
  optional string doc_string = 6; optional GraphProto graph = 7; repeated StringStringEntryProto metadata_props = 14;
}
message StringStringEntryProto { optional string key = 1; optional string value = 2; }
message GraphProto {
  repeated NodeProto node = 1; optional string name = 2; repeated TensorProto initializer = 5; optional string doc_string = 10;
  repeated ValueInfoProto input = 11; repeated ValueInfoProto output = 12; repeated ValueInfoProto value_info = 13;
}
message TensorProto {
  repeated int64 dims = 1; optional int32 data_type = 2;
  repeated float float_data = 4 [packed = true]; repeated int32 int32_data = 5 [packed = true];
  repeated bytes string_data = 6; repeated int64 int64_data = 7 [packed = true]; optional string name = 8;
  optional string doc_string = 12; optional bytes raw_data = 9; repeated double double_data = 10 [packed = true];
}
message TensorShapeProto {
  message Dimension { oneof value { int64 dim_value = 1; string dim_param = 2; } optional string denotation = 3; }
  repeated Dimension dim = 1;
}
message TypeProto {
  message Tensor { optional int32 elem_type = 1; optional TensorShapeProto shape = 2; }
  message Sequence { optional TypeProto elem_type = 1; }
  message Map { optional int32 key_type = 1; optional TypeProto value_type = 2; }
  oneof value { Tensor tensor_type = 1; Sequence sequence_type = 4; Map map_type = 5; }
  optional string denotation = 6;
}
message OperatorSetIdProto { optional string domain = 1; optional int64 version = 2; }
`;

const root = protobuf.parse(SCHEMA, { keepCase: true }).root;

export const ModelProtoType = root.lookupType('onnx.ModelProto');
export const NodeProtoType = root.lookupType('onnx.NodeProto');
export const ValueInfoProtoType = root.lookupType('onnx.ValueInfoProto');

/** TensorProto.DataType values used here. */
export const ELEM = { FLOAT: 1, INT64: 7, STRING: 8, DOUBLE: 11 } as const;

/** AttributeProto.AttributeType values used here. */
export const ATTR = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

/** Field numbers for the wire-level edit of a graph. */
export const FIELD = { modelGraph: 7, graphNode: 1, graphOutput: 12 } as const;

/** Plain-object views of the messages (as decoded with `longs: Number`, `bytes: String` not used). */
export interface Attribute {
  name: string;
  type?: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: Tensor;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
}
export interface Node {
  input?: string[];
  output?: string[];
  name?: string;
  op_type?: string;
  domain?: string;
  attribute?: Attribute[];
}
export interface Dimension {
  dim_value?: number;
  dim_param?: string;
}
export interface TypeInfo {
  tensor_type?: { elem_type?: number; shape?: { dim?: Dimension[] } };
  sequence_type?: { elem_type?: TypeInfo };
  map_type?: { key_type?: number; value_type?: TypeInfo };
}
export interface ValueInfo {
  name: string;
  type?: TypeInfo;
}
export interface Tensor {
  name?: string;
  dims?: number[];
  data_type?: number;
  float_data?: number[];
  double_data?: number[];
}
export interface Graph {
  node?: Node[];
  name?: string;
  initializer?: Tensor[];
  input?: ValueInfo[];
  output?: ValueInfo[];
}
export interface Model {
  ir_version?: number;
  opset_import?: { domain?: string; version?: number }[];
  producer_name?: string;
  producer_version?: string;
  model_version?: number;
  doc_string?: string;
  graph?: Graph;
  metadata_props?: { key?: string; value?: string }[];
}

export function decodeModel(bytes: Uint8Array): Model {
  const message = ModelProtoType.decode(bytes);
  return ModelProtoType.toObject(message, { longs: Number, defaults: false, arrays: true }) as Model;
}

export function encodeModel(model: Model): Uint8Array {
  const error = ModelProtoType.verify(model);
  if (error !== null) throw new Error(`invalid ONNX model: ${error}`);
  return ModelProtoType.encode(ModelProtoType.fromObject(model)).finish();
}

export function attributeText(value: Uint8Array): string {
  return Buffer.from(value).toString('utf8');
}
