import { runUntilSignal } from '../shared/lifecycle.js';
import { createLogger } from '../shared/log.js';
import { readLogLevel, readSupervision } from '../shared/runtime-config.js';
import { ConfigError } from '../shared/errors.js';
import { type ServedModel, servedModelFromArtifact } from './served-model.js';
import { type V2Server, startV2Server } from './v2-server.js';

export interface ModelServerOptions {
  /** Artifact files to serve, each under its model id. */
  artifactPaths: readonly string[];
  /** @defaultValue 8080 */
  port?: number;
  /** @defaultValue '127.0.0.1' */
  host?: string;
}

/** Serves trained model artifacts over the V2 REST protocol until SIGINT or SIGTERM. */
export async function runModelServer(options: ModelServerOptions): Promise<void> {
  const logger = createLogger('model-server', readLogLevel());
  let server: V2Server | undefined;
  const start = async () => {
    if (options.artifactPaths.length === 0) throw new ConfigError('no model artifacts to serve');
    const models = new Map<string, ServedModel>();
    for (const path of options.artifactPaths) {
      const { name, model } = await servedModelFromArtifact(path);
      if (models.has(name)) throw new ConfigError(`two artifacts are named ${name}; serve one version per model`);
      models.set(name, model);
    }
    server = await startV2Server({ models, port: options.port ?? 8080, host: options.host ?? '127.0.0.1' });
    logger.info('model server started', { url: server.url, models: [...models.keys()] });
  };
  await runUntilSignal('model server', logger, start, async () => server?.close(), readSupervision());
}
