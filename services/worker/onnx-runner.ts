import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import ort from 'onnxruntime-node';
import { decodeModel } from '../ml/onnx/onnx-proto.js';
import { ConfigError, ModelError } from '../shared/errors.js';
import type { ModelAnswer, ModelRunner } from './model-runner.js';
import { type OnnxPlan, type OnnxPlanOptions, planOnnxModel, withoutZipMap } from './onnx-graph.js';

export interface OnnxRunnerOptions extends Omit<OnnxPlanOptions, 'source'> {
  modelId?: string;
  /** Threads one inference may use (onnxruntime's intra-op pool). @defaultValue 1: a worker is one of many processes */
  threads?: number;
}

/** A float32 sum of probabilities is off by rounding; further off means the output is not a distribution. */
const SUM_TOLERANCE = 1e-3;

/**
 * Runs an ONNX model in process with onnxruntime, one inference per batch of feature vectors. The
 * graph is checked at load (onnx-graph.ts); a ZipMap at its end is cut off first, because the
 * runtime cannot return one. Probabilities are published in double, renormalised from float32.
 */
export class OnnxRunner implements ModelRunner {
  private constructor(
    readonly modelId: string,
    readonly modelVersion: string,
    readonly plan: OnnxPlan,
    private readonly session: ort.InferenceSession,
  ) {}

  get featureCount(): number | undefined {
    return this.plan.input.featureCount;
  }

  /** The published class labels (classification), in order. */
  get classes(): readonly string[] | undefined {
    return this.plan.output.kind === 'probabilities' ? this.plan.output.classes : undefined;
  }

  static async load(path: string, options: OnnxRunnerOptions = {}): Promise<OnnxRunner> {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch (error) {
      throw new ConfigError(`cannot read ONNX model ${path}`, error);
    }
    return OnnxRunner.fromBytes(bytes, { ...options, source: path });
  }

  static async fromBytes(bytes: Uint8Array, options: OnnxRunnerOptions & { source?: string } = {}): Promise<OnnxRunner> {
    const source = options.source ?? 'ONNX model';
    let model: ReturnType<typeof decodeModel>;
    try {
      model = decodeModel(bytes);
    } catch (error) {
      throw new ConfigError(`${source} is not an ONNX model: ${(error as Error).message}`, error);
    }
    const plan = planOnnxModel(model, { ...options, source });
    const version = plan.metadata['es.modelVersion'] ?? createHash('sha256').update(bytes).digest('hex').slice(0, 12);
    const modelId = options.modelId ?? plan.metadata['es.modelId'] ?? basename(source, extname(source));
    const output = plan.output;
    const loadable =
      output.kind === 'probabilities' && output.zipMap !== undefined
        ? withoutZipMap(bytes, output.zipMap.output, output.name, output.modelClasses.length)
        : bytes;
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(loadable, {
        intraOpNumThreads: options.threads ?? 1,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      });
    } catch (error) {
      throw new ConfigError(`${source}: onnxruntime cannot load it: ${(error as Error).message}`, error);
    }
    return new OnnxRunner(modelId, version, plan, session);
  }

  async predict(features: readonly number[]): Promise<ModelAnswer> {
    const [answer] = await this.predictBatch([features]);
    return answer!;
  }

  async predictBatch(rows: readonly ArrayLike<number>[]): Promise<ModelAnswer[]> {
    if (rows.length === 0) return [];
    const width = rows[0]!.length;
    const { input, output } = this.plan;
    const data = input.type === 'float32' ? new Float32Array(rows.length * width) : new Float64Array(rows.length * width);
    rows.forEach((row, i) => {
      if (row.length !== width) throw new ModelError(`rows of one batch differ in length (${row.length} vs ${width})`, { retriable: false });
      data.set(row, i * width);
    });
    let result: ort.InferenceSession.OnnxValueMapType;
    try {
      result = await this.session.run({ [input.name]: new ort.Tensor(input.type, data, [rows.length, width]) }, [output.name]);
    } catch (error) {
      throw new ModelError(`onnxruntime: ${(error as Error).message}`, { cause: error });
    }
    const tensor = result[output.name] as ort.Tensor;
    const values = tensor.data as Float32Array | Float64Array;
    if (output.kind === 'value') {
      if (values.length !== rows.length)
        throw new ModelError(`output "${output.name}" has ${values.length} values for ${rows.length} rows`, { retriable: false });
      return Array.from(values, (value) => ({ value }));
    }
    const classes = output.modelClasses.length;
    if (values.length !== rows.length * classes) {
      throw new ModelError(`output "${output.name}" has ${values.length} values for ${rows.length} rows of ${classes} classes`, { retriable: false });
    }
    const answers: ModelAnswer[] = [];
    for (let r = 0; r < rows.length; r++) {
      const offset = r * classes;
      let sum = 0;
      let valid = true;
      for (let c = 0; c < classes; c++) {
        const p = values[offset + c]!;
        if (!(p >= 0) || !Number.isFinite(p)) valid = false;
        sum += p;
      }
      if (!valid || Math.abs(sum - 1) > SUM_TOLERANCE) {
        throw new ModelError(`output "${output.name}" is not a probability distribution (row sums to ${sum}); export it with a softmax or normalisation`, {
          retriable: false,
        });
      }
      answers.push({ probabilities: output.order.map((i) => values[offset + i]! / sum) });
    }
    return answers;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
