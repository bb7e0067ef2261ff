import protobuf from 'protobufjs';
import { ConfigError } from '../shared/errors.js';
import {
  type Attribute,
  ELEM,
  FIELD,
  type Graph,
  type Model,
  type Node,
  NodeProtoType,
  type TypeInfo,
  type ValueInfo,
  ValueInfoProtoType,
  attributeText,
} from '../ml/onnx/onnx-proto.js';

/**
 * What a worker can use of an ONNX graph, decided once at start from the file's own protobuf (the
 * runtime exposes neither metadata nor the types of non-tensor outputs): one float or double input
 * [batch, features], and either class probabilities or one regression value per row. Anything else
 * is refused here with the reason, before the worker joins its group.
 */
export interface OnnxPlan {
  input: { name: string; type: 'float32' | 'float64'; featureCount: number | undefined };
  output: ProbabilityOutput | ValueOutput;
  /** metadata_props of the model. */
  metadata: Record<string, string>;
}

export interface ProbabilityOutput {
  kind: 'probabilities';
  /** The tensor to fetch: a float [batch, classes] output, or the tensor a ZipMap turns into maps. */
  name: string;
  /** The model's class labels in its output order. */
  modelClasses: string[];
  /** Labels in the order the worker publishes them (configured, or the model's). */
  classes: string[];
  /** For each published class, its index in the model's output. */
  order: number[];
  /** Set when the graph ends in a ZipMap, which must be cut off before the runtime loads it. */
  zipMap?: { output: string };
}

export interface ValueOutput {
  kind: 'value';
  name: string;
}

export interface OnnxPlanOptions {
  /** The class labels (in the order the aggregator expects); checked against the model's. */
  classes?: readonly string[];
  task?: 'classification' | 'regression';
  /** The output to use, when the graph has several candidates. */
  output?: string;
  /** Names the file in messages. */
  source?: string;
}

/** Metadata key holding the class labels as a JSON array (written by our exporter). */
export const CLASSES_METADATA = 'es.classes';

type Refuse = (why: string) => never;

interface Candidate {
  info: ValueInfo;
  output: ProbabilityOutput | ValueOutput;
}

export function planOnnxModel(model: Model, options: OnnxPlanOptions = {}): OnnxPlan {
  const where = options.source ?? 'ONNX model';
  const refuse = (why: string): never => {
    throw new ConfigError(`${where}: ${why}`);
  };
  const graph = model.graph ?? refuse('has no graph');
  const metadata: Record<string, string> = {};
  for (const entry of model.metadata_props ?? []) if (entry.key !== undefined) metadata[entry.key] = entry.value ?? '';
  const input = planInput(graph, refuse);
  const { candidates, unusable } = outputCandidates(graph, metadata, refuse);
  const output = chooseOutput(candidates, unusable, options, refuse);
  if (output.kind === 'value') {
    if (options.classes !== undefined) refuse(`output "${output.name}" is a regression value, but class labels were configured`);
    return { input, output, metadata };
  }
  return { input, output: withClasses(output, options.classes, refuse), metadata };
}

/** The one graph input that is not an initialiser: a float or double [batch, features] tensor. */
function planInput(graph: Graph, refuse: Refuse): OnnxPlan['input'] {
  const initialisers = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? []).filter((i) => !initialisers.has(i.name));
  if (inputs.length !== 1)
    refuse(`has ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}); the worker feeds exactly one [batch, features] tensor`);
  const input = inputs[0]!;
  const inputTensor = input.type?.tensor_type ?? refuse(`input "${input.name}" is not a tensor`);
  const inputType = inputTensor.elem_type === ELEM.FLOAT ? 'float32' : inputTensor.elem_type === ELEM.DOUBLE ? 'float64' : undefined;
  if (inputType === undefined) refuse(`input "${input.name}" has element type ${elemName(inputTensor.elem_type)}; the worker feeds float or double features`);
  const inputDims = inputTensor.shape?.dim ?? refuse(`input "${input.name}" has no shape; it must be [batch, features]`);
  if (inputDims.length !== 2) refuse(`input "${input.name}" has rank ${inputDims.length}; it must be [batch, features]`);
  const batchDim = inputDims[0]!;
  if (batchDim.dim_value !== undefined && batchDim.dim_value !== 0) {
    refuse(`input "${input.name}" has a fixed batch size of ${batchDim.dim_value}; export it with a dynamic batch dimension`);
  }
  const featureDim = inputDims[1]!.dim_value;
  const featureCount = featureDim !== undefined && featureDim > 0 ? featureDim : undefined;
  return { name: input.name, type: inputType!, featureCount };
}

/** The graph outputs a worker could publish, and a description of those it could not. */
function outputCandidates(graph: Graph, metadata: Record<string, string>, refuse: Refuse): { candidates: Candidate[]; unusable: string[] } {
  const nodes = graph.node ?? [];
  const producer = (name: string): Node | undefined => nodes.find((n) => (n.output ?? []).includes(name));
  const candidates: Candidate[] = [];
  const unusable: string[] = [];
  for (const info of graph.output ?? []) {
    const type = info.type;
    const tensor = type?.tensor_type;
    if (tensor === undefined) {
      const zipMap = producer(info.name);
      if (zipMap?.op_type === 'ZipMap' && isSequenceOfMaps(type)) {
        const source = zipMap.input?.[0] ?? refuse(`ZipMap "${zipMap.name ?? ''}" has no input`);
        const labels = labelsOf(zipMap) ?? refuse(`ZipMap "${zipMap.name ?? ''}" names no class labels`);
        candidates.push({ info, output: probabilities(refuse, source, labels, { output: info.name }) });
      } else {
        unusable.push(`"${info.name}" (${describeType(type)})`);
      }
      continue;
    }
    if (tensor.elem_type !== ELEM.FLOAT && tensor.elem_type !== ELEM.DOUBLE) continue; // labels (int64 / string)
    const dims = tensor.shape?.dim ?? [];
    const last = dims.length === 2 ? dims[1]!.dim_value : undefined;
    if (dims.length === 1 || (dims.length === 2 && last === 1)) {
      candidates.push({ info, output: { kind: 'value', name: info.name } });
    } else if (dims.length === 2) {
      const labels = modelLabels(refuse, metadata, producer(info.name));
      candidates.push({ info, output: probabilities(refuse, info.name, labels, undefined, last) });
    } else {
      unusable.push(`"${info.name}" (rank ${dims.length})`);
    }
  }
  return { candidates, unusable };
}

/** The output named by `--output`, else of the task, else the one probability output there is. */
function chooseOutput(
  candidates: readonly Candidate[],
  unusable: readonly string[],
  options: OnnxPlanOptions,
  refuse: Refuse,
): ProbabilityOutput | ValueOutput {
  let chosen = candidates;
  if (options.output !== undefined) {
    chosen = candidates.filter((c) => c.info.name === options.output);
    if (chosen.length === 0) refuse(`has no usable output "${options.output}" (usable: ${names(candidates)})`);
  } else if (options.task !== undefined) {
    const kind = options.task === 'regression' ? 'value' : 'probabilities';
    chosen = candidates.filter((c) => c.output.kind === kind);
  } else {
    const classifiers = candidates.filter((c) => c.output.kind === 'probabilities');
    if (classifiers.length > 0) chosen = classifiers;
  }
  if (chosen.length > 1) {
    const preferred = chosen.filter((c) => ['probabilities', 'output_probability', 'probability'].includes(c.info.name));
    if (preferred.length === 1) chosen = preferred;
  }
  if (chosen.length === 0) {
    const extra = unusable.length > 0 ? `; unusable outputs: ${unusable.join(', ')}` : '';
    refuse(
      `has no output the worker can publish (a float [batch, classes] probability tensor, a ZipMap of probabilities, or a float [batch] / [batch, 1] value)${extra}`,
    );
  }
  if (chosen.length > 1) refuse(`has several usable outputs (${names(chosen)}); choose one with --output`);
  return chosen[0]!.output;
}

function probabilities(refuse: Refuse, name: string, labels: string[] | undefined, zipMap?: { output: string }, width?: number): ProbabilityOutput {
  const modelClasses = labels ?? [];
  if (width !== undefined && width > 0 && labels !== undefined && labels.length !== width) {
    refuse(`output "${name}" has ${width} classes but the model names ${labels.length} labels`);
  }
  return {
    kind: 'probabilities',
    name,
    modelClasses,
    classes: modelClasses,
    order: modelClasses.map((_, i) => i),
    ...(zipMap === undefined ? {} : { zipMap }),
  };
}

function modelLabels(refuse: Refuse, meta: Record<string, string>, node: Node | undefined): string[] | undefined {
  const fromMeta = meta[CLASSES_METADATA];
  if (fromMeta !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(fromMeta);
    } catch {
      return refuse(`metadata ${CLASSES_METADATA} is not JSON`);
    }
    if (!Array.isArray(parsed) || !parsed.every((c) => typeof c === 'string')) refuse(`metadata ${CLASSES_METADATA} must be a JSON array of strings`);
    return parsed as string[];
  }
  return node === undefined ? undefined : labelsOf(node);
}

/** The published class order: the configured labels, as a permutation of the model's. */
function withClasses(output: ProbabilityOutput, configured: readonly string[] | undefined, refuse: Refuse): ProbabilityOutput {
  const model = output.modelClasses;
  if (configured === undefined) {
    if (model.length === 0)
      refuse(`output "${output.name}" comes with no class labels (no ${CLASSES_METADATA} metadata, no classlabels attribute); pass --classes`);
    return output;
  }
  if (new Set(configured).size !== configured.length) refuse(`--classes repeats a label`);
  if (model.length === 0) return { ...output, modelClasses: [...configured], classes: [...configured], order: configured.map((_, i) => i) };
  const order = configured.map((c) => model.indexOf(c));
  if (configured.length !== model.length || order.some((i) => i < 0)) {
    refuse(`configured classes [${configured.join(', ')}] are not the model's classes [${model.join(', ')}]`);
  }
  return { ...output, classes: [...configured], order };
}

function labelsOf(node: Node): string[] | undefined {
  const attribute = (name: string): Attribute | undefined => node.attribute?.find((a) => a.name === name);
  const strings = attribute('classlabels_strings')?.strings;
  if (strings !== undefined && strings.length > 0) return strings.map(attributeText);
  const ints = attribute('classlabels_int64s')?.ints ?? attribute('classlabels_ints')?.ints;
  if (ints !== undefined && ints.length > 0) return ints.map(String);
  return undefined;
}

function isSequenceOfMaps(type: TypeInfo | undefined): boolean {
  return type?.sequence_type?.elem_type?.map_type !== undefined;
}

function describeType(type: TypeInfo | undefined): string {
  if (type?.sequence_type !== undefined) return 'a sequence';
  if (type?.map_type !== undefined) return 'a map';
  return 'not a tensor';
}

function elemName(elem: number | undefined): string {
  const known: Record<number, string> = { 1: 'float', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64', 8: 'string', 9: 'bool', 10: 'float16', 11: 'double' };
  return elem === undefined ? 'unknown' : (known[elem] ?? `#${elem}`);
}

function names(candidates: readonly { info: ValueInfo }[]): string {
  return candidates.map((c) => `"${c.info.name}"`).join(', ') || 'none';
}

/**
 * The model without its ZipMap: the node producing `zipMapOutput` is dropped and that graph output
 * becomes the ZipMap's input tensor (float [batch, classes]). Edited on the wire: every other byte of
 * the file is copied as it is, so fields this project's schema does not know survive.
 */
export function withoutZipMap(bytes: Uint8Array, zipMapOutput: string, tensorName: string, classCount: number): Uint8Array {
  const out = protobuf.Writer.create();
  let edited = false;
  forEachField(bytes, (field, raw, payload) => {
    if (field !== FIELD.modelGraph || payload === undefined) {
      out.raw(raw);
      return;
    }
    const graph = protobuf.Writer.create();
    forEachField(payload, (graphField, graphRaw, graphPayload) => {
      if (graphField === FIELD.graphNode && graphPayload !== undefined) {
        const node = NodeProtoType.decode(graphPayload) as unknown as Node;
        if (node.op_type === 'ZipMap' && (node.output ?? []).includes(zipMapOutput)) {
          edited = true;
          return;
        }
      }
      if (graphField === FIELD.graphOutput && graphPayload !== undefined) {
        const info = ValueInfoProtoType.decode(graphPayload) as unknown as ValueInfo;
        if (info.name === zipMapOutput) {
          const replacement: ValueInfo = {
            name: tensorName,
            type: { tensor_type: { elem_type: ELEM.FLOAT, shape: { dim: [{ dim_param: 'N' }, { dim_value: classCount }] } } },
          };
          const encoded = ValueInfoProtoType.encode(ValueInfoProtoType.fromObject(replacement)).finish();
          graph.uint32((FIELD.graphOutput << 3) | 2).bytes(encoded);
          return;
        }
      }
      graph.raw(graphRaw);
    });
    out.uint32((FIELD.modelGraph << 3) | 2).bytes(graph.finish());
  });
  if (!edited) throw new ConfigError(`no ZipMap produces "${zipMapOutput}"`);
  return out.finish();
}

/** Calls `visit` with each top-level field's number, its raw bytes, and a length-delimited field's payload. */
function forEachField(bytes: Uint8Array, visit: (field: number, raw: Uint8Array, payload: Uint8Array | undefined) => void): void {
  const reader = protobuf.Reader.create(bytes);
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const tag = reader.uint32();
    const field = tag >>> 3;
    const wireType = tag & 7;
    let payload: Uint8Array | undefined;
    if (wireType === 2) {
      const length = reader.uint32();
      payload = bytes.subarray(reader.pos, reader.pos + length);
      reader.skip(length);
    } else {
      reader.skipType(wireType);
    }
    visit(field, bytes.subarray(start, reader.pos), payload);
  }
}
