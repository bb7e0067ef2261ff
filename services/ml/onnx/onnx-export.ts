import { randomUUID } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ModelArtifact } from '../artifact.js';
import { ArtifactError } from '../errors.js';
import type { TreeParams } from '../models/cart.js';
import type { DecisionTreeParams } from '../models/decision-tree.js';
import type { LogisticRegressionParams } from '../models/logistic-regression.js';
import type { ModelFamily } from '../models/index.js';
import type { RandomForestParams } from '../models/random-forest.js';
import { ATTR, type Attribute, ELEM, type Model, type Node, type Tensor, type ValueInfo, encodeModel } from './onnx-proto.js';

/**
 * Writes the project's own models as ONNX graphs of the classic ML operators (domain `ai.onnx.ml`):
 * logistic regression as Scaler + LinearClassifier (softmax), decision trees and random forests as
 * one TreeEnsembleClassifier. Inputs are `features` (float [N, F]); outputs are `label` (string [N])
 * and `probabilities` (float [N, C], classes in the artifact's order). Metadata carries the classes,
 * feature names, model id and version (keys in ONNX_METADATA), so a worker needs no other file.
 */
export const ONNX_EXPORTABLE: readonly ModelFamily[] = ['logistic-regression', 'decision-tree', 'random-forest'];

export const ONNX_METADATA = {
  classes: 'es.classes',
  featureNames: 'es.featureNames',
  modelId: 'es.modelId',
  modelVersion: 'es.modelVersion',
} as const;

export const ONNX_NAMES = { input: 'features', label: 'label', probabilities: 'probabilities' } as const;

const ML = 'ai.onnx.ml';
const OPSETS = [
  { domain: '', version: 17 },
  { domain: ML, version: 3 },
];

export interface OnnxExportOptions {
  /** End the graph like skl2onnx does: a ZipMap turning the probabilities into a list of maps. */
  zipMap?: boolean;
  /** Write the es.* metadata (default true). */
  metadata?: boolean;
}

export function isOnnxExportable(family: ModelFamily): boolean {
  return ONNX_EXPORTABLE.includes(family);
}

/** The ONNX bytes of an artifact; throws ArtifactError for a family with no ONNX form here. */
export function artifactToOnnx(artifact: ModelArtifact, options: OnnxExportOptions = {}): Uint8Array {
  const nFeatures = artifact.featureNames.length;
  const classes = artifact.classes;
  const probabilities = options.zipMap === true ? 'probability_tensor' : ONNX_NAMES.probabilities;
  const label = options.zipMap === true ? 'output_label' : ONNX_NAMES.label;
  const params = artifact.params;
  const nodes = modelNodes(artifact, label, probabilities);
  const outputs: ValueInfo[] = [tensorInfo(label, ELEM.STRING, ['N'])];
  if (options.zipMap === true) {
    nodes.push(node('ZipMap', [probabilities], ['output_probability'], [strings('classlabels_strings', classes)]));
    outputs.push({
      name: 'output_probability',
      type: { sequence_type: { elem_type: { map_type: { key_type: ELEM.STRING, value_type: { tensor_type: { elem_type: ELEM.FLOAT } } } } } },
    });
  } else {
    outputs.push(tensorInfo(probabilities, ELEM.FLOAT, ['N', classes.length]));
  }
  const metadata =
    options.metadata === false
      ? []
      : [
          { key: ONNX_METADATA.classes, value: JSON.stringify(classes) },
          { key: ONNX_METADATA.featureNames, value: JSON.stringify(artifact.featureNames) },
          { key: ONNX_METADATA.modelId, value: artifact.modelId },
          { key: ONNX_METADATA.modelVersion, value: artifact.version },
        ];
  // Trees take double features and double thresholds (float32 would move rows across a threshold).
  const inputType = params.family === 'logistic-regression' ? ELEM.FLOAT : ELEM.DOUBLE;
  return buildOnnxModel({
    nodes,
    inputs: [tensorInfo(ONNX_NAMES.input, inputType, ['N', nFeatures])],
    outputs,
    initializers: nodes.some((n) => n.input?.includes('one')) ? [{ name: 'one', data_type: ELEM.FLOAT, dims: [1], float_data: [1] }] : [],
    metadata,
    docString: `${artifact.modelId} ${artifact.version} (${artifact.family}, trained on ${artifact.dataset})`,
  });
}

/** The nodes computing the label and the probabilities from the input. */
function modelNodes(artifact: ModelArtifact, label: string, probabilities: string): Node[] {
  const { params, classes } = artifact;
  switch (params.family) {
    case 'logistic-regression':
      return linearNodes(params, classes, label, probabilities);
    case 'decision-tree':
      return treeEnsembleNodes([params.tree], params, classes, label, probabilities);
    case 'random-forest':
      return treeEnsembleNodes(params.trees, params, classes, label, probabilities);
    default:
      throw new ArtifactError(`no ONNX export for the ${artifact.family} family (exportable: ${ONNX_EXPORTABLE.join(', ')})`);
  }
}

/** Writes the artifact's ONNX form to `path` (through a temporary file and a rename). */
export async function saveOnnx(path: string, artifact: ModelArtifact): Promise<string> {
  const bytes = artifactToOnnx(artifact);
  const temporary = `${path}.${process.pid}.${randomUUID()}.tmp`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(temporary, bytes);
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw new ArtifactError(`cannot write ONNX model ${path}`, error);
  }
  return path;
}

export interface OnnxGraphSpec {
  nodes: Node[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  metadata?: { key: string; value: string }[];
  docString?: string;
  initializers?: Tensor[];
}

/** A whole ModelProto (IR 8, opsets 17 and ai.onnx.ml 3) around the given graph. */
export function buildOnnxModel(spec: OnnxGraphSpec): Uint8Array {
  const model: Model = {
    ir_version: 8,
    opset_import: OPSETS,
    producer_name: 'ensemble-stream',
    producer_version: '1',
    doc_string: spec.docString ?? '',
    graph: { name: 'model', node: spec.nodes, input: spec.inputs, output: spec.outputs, initializer: spec.initializers ?? [] },
    metadata_props: spec.metadata ?? [],
  };
  return encodeModel(model);
}

export function tensorInfo(name: string, elemType: number, dims: (string | number)[]): ValueInfo {
  return {
    name,
    type: { tensor_type: { elem_type: elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } },
  };
}

export function node(opType: string, input: string[], output: string[], attribute: Attribute[], domain = ML): Node {
  return { op_type: opType, domain, input, output, name: `${opType}_${output[0] ?? ''}`, attribute };
}

export const floats = (name: string, values: ArrayLike<number>): Attribute => ({ name, type: ATTR.FLOATS, floats: Array.from(values) });
/** A double tensor attribute (the `*_as_tensor` forms): thresholds compare exactly as in the built-in trees. */
export const doubles = (name: string, values: ArrayLike<number>): Attribute => ({
  name,
  type: ATTR.TENSOR,
  t: { dims: [values.length], data_type: ELEM.DOUBLE, double_data: Array.from(values) },
});
export const ints = (name: string, values: ArrayLike<number>): Attribute => ({ name, type: ATTR.INTS, ints: Array.from(values) });
export const text = (name: string, value: string): Attribute => ({ name, type: ATTR.STRING, s: Buffer.from(value) });
export const strings = (name: string, values: readonly string[]): Attribute => ({ name, type: ATTR.STRINGS, strings: values.map((v) => Buffer.from(v)) });

/** Standardise in a Scaler (keeps the values small in float32), then a softmax LinearClassifier. */
function linearNodes(params: LogisticRegressionParams, classes: readonly string[], label: string, probabilities: string): Node[] {
  const nodes: Node[] = [];
  let input: string = ONNX_NAMES.input;
  if (params.standardiser !== null) {
    nodes.push(
      node(
        'Scaler',
        [input],
        ['standardised'],
        [
          floats('offset', params.standardiser.mean),
          floats(
            'scale',
            params.standardiser.scale.map((s) => 1 / s),
          ),
        ],
      ),
    );
    input = 'standardised';
  }
  nodes.push(
    node(
      'LinearClassifier',
      [input],
      [label, probabilities],
      [
        floats('coefficients', params.weights),
        floats('intercepts', params.intercepts),
        strings('classlabels_strings', classes),
        text('post_transform', 'SOFTMAX'),
      ],
    ),
  );
  return nodes;
}

/**
 * Every tree as BRANCH_LEQ nodes (our trees send `x <= threshold` left, like scikit-learn) with the
 * leaves' class shares as weights, divided by the number of trees: the ensemble sums them, so the
 * output is the forest's average.
 */
function treeEnsembleNodes(
  trees: readonly TreeParams[],
  params: DecisionTreeParams | RandomForestParams,
  classes: readonly string[],
  label: string,
  probabilities: string,
): Node[] {
  const binary = classes.length === 2;
  const a = flattenTrees(trees, binary);
  if (classes.length !== params.nClasses) throw new ArtifactError(`${classes.length} class labels for a model of ${params.nClasses} classes`);
  const nodeAttributes = [
    ints('nodes_treeids', a.treeIds),
    ints('nodes_nodeids', a.nodeIds),
    ints('nodes_featureids', a.featureIds),
    doubles('nodes_values_as_tensor', a.values),
    strings('nodes_modes', a.modes),
    ints('nodes_truenodeids', a.trueIds),
    ints('nodes_falsenodeids', a.falseIds),
  ];
  if (binary) return twoClassTreeNodes(nodeAttributes, a, classes, label, probabilities);
  return [
    node(
      'TreeEnsembleClassifier',
      [ONNX_NAMES.input],
      [label, probabilities],
      [
        ...nodeAttributes,
        ints('class_treeids', a.classTree),
        ints('class_nodeids', a.classNode),
        ints('class_ids', a.classIds),
        doubles('class_weights_as_tensor', a.classWeights),
        strings('classlabels_strings', classes),
        text('post_transform', 'NONE'),
      ],
    ),
  ];
}

/**
 * onnxruntime's TreeEnsembleClassifier rewrites two-class scores in ways that depend on which
 * classes carry weights and on base values; a regressor summing the second class's share is
 * exact, and [1 - s, s] follows in plain operators.
 */
function twoClassTreeNodes(nodeAttributes: Attribute[], a: FlatTrees, classes: readonly string[], label: string, probabilities: string): Node[] {
  return [
    node(
      'TreeEnsembleRegressor',
      [ONNX_NAMES.input],
      ['positive'],
      [
        ...nodeAttributes,
        ints('target_treeids', a.classTree),
        ints('target_nodeids', a.classNode),
        ints('target_ids', a.classIds),
        doubles('target_weights_as_tensor', a.classWeights),
        { name: 'n_targets', type: ATTR.INT, i: 1 },
        text('aggregate_function', 'SUM'),
        text('post_transform', 'NONE'),
      ],
    ),
    node('Sub', ['one', 'positive'], ['negative'], [], ''),
    node('Concat', ['negative', 'positive'], [probabilities], [{ name: 'axis', type: ATTR.INT, i: 1 }], ''),
    ...labelNodes(probabilities, classes, label),
  ];
}

/** The tree-ensemble operators' attribute arrays: one entry per node, and one per leaf class weight. */
interface FlatTrees {
  treeIds: number[];
  nodeIds: number[];
  featureIds: number[];
  values: number[];
  modes: string[];
  trueIds: number[];
  falseIds: number[];
  classTree: number[];
  classNode: number[];
  classIds: number[];
  classWeights: number[];
}

/** With `binary`, only the second class's weights are kept, as target 0 of a regressor. */
function flattenTrees(trees: readonly TreeParams[], binary: boolean): FlatTrees {
  const a: FlatTrees = {
    treeIds: [],
    nodeIds: [],
    featureIds: [],
    values: [],
    modes: [],
    trueIds: [],
    falseIds: [],
    classTree: [],
    classNode: [],
    classIds: [],
    classWeights: [],
  };
  trees.forEach((tree, t) => {
    for (let n = 0; n < tree.feature.length; n++) {
      const leaf = tree.feature[n]! < 0;
      a.treeIds.push(t);
      a.nodeIds.push(n);
      a.featureIds.push(leaf ? 0 : tree.feature[n]!);
      a.values.push(leaf ? 0 : tree.threshold[n]!);
      a.modes.push(leaf ? 'LEAF' : 'BRANCH_LEQ');
      a.trueIds.push(leaf ? 0 : tree.left[n]!);
      a.falseIds.push(leaf ? 0 : tree.right[n]!);
      if (!leaf) continue;
      const from = tree.valueStart[n]!;
      const to = tree.valueStart[n + 1]!;
      let total = 0;
      for (let e = from; e < to; e++) total += tree.valueWeight[e]!;
      for (let e = from; e < to; e++) {
        if (binary && tree.valueClass[e] !== 1) continue;
        a.classTree.push(t);
        a.classNode.push(n);
        a.classIds.push(binary ? 0 : tree.valueClass[e]!);
        a.classWeights.push(tree.valueWeight[e]! / total / trees.length);
      }
    }
  });
  return a;
}

/** The label of the most probable class (the first on ties), as a string. */
function labelNodes(probabilities: string, classes: readonly string[], label: string): Node[] {
  return [
    node(
      'ArgMax',
      [probabilities],
      ['class_index'],
      [
        { name: 'axis', type: ATTR.INT, i: 1 },
        { name: 'keepdims', type: ATTR.INT, i: 0 },
      ],
      '',
    ),
    node(
      'LabelEncoder',
      ['class_index'],
      [label],
      [
        ints(
          'keys_int64s',
          classes.map((_, i) => i),
        ),
        strings('values_strings', classes),
        text('default_string', ''),
      ],
    ),
  ];
}
