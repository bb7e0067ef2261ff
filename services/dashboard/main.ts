import { ConfigError } from '../shared/errors.js';
import { createKafka } from '../shared/kafka.js';
import { runUntilSignal } from '../shared/lifecycle.js';
import { createLogger } from '../shared/log.js';
import { METRICS_PORTS } from '../shared/metrics-server.js';
import { positiveInt, readRuntimeConfig } from '../shared/runtime-config.js';
import { Dashboard, type ScrapeTarget } from './dashboard.js';

export interface DashboardSettings {
  port: number;
  host: string;
  targets: ScrapeTarget[];
  intervalMs: number;
}

/**
 * ES_DASHBOARD_PORT (9460), ES_DASHBOARD_HOST (0.0.0.0), ES_DASHBOARD_INTERVAL_MS (1000) and
 * ES_DASHBOARD_TARGETS: `name=url,...` of the /metrics to scrape (default: the evaluator, the
 * aggregator and one worker on this host's default ports). `--scrape name=url` flags add to them.
 */
export function readDashboardSettings(env: NodeJS.ProcessEnv, extraTargets: readonly string[] = []): DashboardSettings {
  const port = Number(env.ES_DASHBOARD_PORT ?? METRICS_PORTS.dashboard);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new ConfigError(`ES_DASHBOARD_PORT: "${env.ES_DASHBOARD_PORT}" is not a TCP port`);
  const listed = (env.ES_DASHBOARD_TARGETS ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  const specs = [...listed, ...extraTargets];
  const defaults = Object.entries({ evaluator: METRICS_PORTS.evaluator, aggregator: METRICS_PORTS.aggregator, worker: METRICS_PORTS.worker }).map(
    ([name, p]) => `${name}=http://127.0.0.1:${p}/metrics`,
  );
  return {
    port,
    host: env.ES_DASHBOARD_HOST?.trim() || '0.0.0.0',
    targets: (specs.length > 0 ? specs : defaults).map(parseTarget),
    intervalMs: positiveInt(env.ES_DASHBOARD_INTERVAL_MS ?? '1000', 'ES_DASHBOARD_INTERVAL_MS'),
  };
}

export function parseTarget(spec: string): ScrapeTarget {
  const at = spec.indexOf('=');
  const name = spec.slice(0, at).trim();
  const url = spec.slice(at + 1).trim();
  if (at <= 0 || !/^https?:\/\/\S+$/.test(url)) throw new ConfigError(`dashboard target "${spec}" is not NAME=http://host:port/metrics`);
  return { name, url };
}

/** Runs the dashboard until SIGTERM/SIGINT; configuration is read and checked here, once. */
export async function runDashboard(extraTargets: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const runtime = readRuntimeConfig(env);
  const settings = readDashboardSettings(env, extraTargets);
  const logger = createLogger('dashboard', runtime.logLevel, { instance: runtime.instanceId });
  const kafka = createKafka({ brokers: runtime.kafkaBrokers, security: runtime.kafkaSecurity, clientId: `dashboard-${runtime.instanceId}`, logger });
  const dashboard = new Dashboard({ kafka, metricsTopic: runtime.topics.metrics, targets: settings.targets, logger, intervalMs: settings.intervalMs });
  await runUntilSignal(
    'dashboard',
    logger,
    async () => void (await dashboard.start(settings.port, settings.host)),
    () => dashboard.stop(),
    runtime.supervision,
  );
}
