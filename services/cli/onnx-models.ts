import { existsSync } from 'node:fs';
import { loadArtifact } from '../ml/artifact.js';
import { isOnnxExportable, saveOnnx } from '../ml/onnx/onnx-export.js';
import { isModelFamily } from '../ml/models/index.js';

/** Where a model's ONNX form lives: next to its artifact, same name, `.onnx`. */
export function onnxPathFor(artifactPath: string): string {
  return `${artifactPath.replace(/\.json$/, '')}.onnx`;
}

/** Models of a manifest whose family has an ONNX form here. */
export function onnxCandidates<M extends { family: string; artifactPath: string }>(models: readonly M[]): M[] {
  return models.filter((m) => isModelFamily(m.family) && isOnnxExportable(m.family));
}

/**
 * Writes the ONNX form of every exportable model next to its artifact (skipped when already there:
 * the artifact's version is the hash of its params, so the file name pins the content). Returns
 * model id -> ONNX path.
 */
export async function exportOnnxModels(
  models: readonly { modelId: string; family: string; artifactPath: string }[],
  log: (line: string) => void = () => undefined,
): Promise<Map<string, string>> {
  const written = new Map<string, string>();
  for (const m of onnxCandidates(models)) {
    const path = onnxPathFor(m.artifactPath);
    if (!existsSync(path)) {
      const { artifact } = await loadArtifact(m.artifactPath);
      if (artifact.preprocessing !== undefined) {
        // The exported graph would expect inputs already imputed and one-hot encoded, not the raw
        // features a request carries: no export rather than a model that answers the wrong question.
        log(`  ${m.modelId.padEnd(28)} no ONNX: its data set needs imputation or one-hot encoding, which the export does not carry`);
        continue;
      }
      await saveOnnx(path, artifact);
      log(`  ${m.modelId.padEnd(28)} ONNX ${path}`);
    }
    written.set(m.modelId, path);
  }
  return written;
}
