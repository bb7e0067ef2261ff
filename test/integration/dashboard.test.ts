import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kafka } from 'kafkajs';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dashboard } from '../../services/dashboard/dashboard.js';
import { parsePromText, sumBy } from '../../services/dashboard/prom-text.js';
import { readEvaluatorSettings } from '../../services/evaluator/config.js';
import { Evaluator } from '../../services/evaluator/evaluator.js';
import { codecs } from '../../services/shared/codec.js';
import { type MetricsServer, serveMetrics } from '../../services/shared/metrics-server.js';
import type { EnsembleMetrics, Label } from '../../services/shared/records.js';
import { createRedis } from '../../services/shared/redis.js';
import type { Topics } from '../../services/shared/topics.js';
import { uniqueName } from '../support/ids.js';
import { testInfra } from '../support/infra.js';
import {
  classificationConfig,
  createTestTopics,
  eventually,
  featureMessage,
  produce,
  quietLogger,
  SliceRunner,
  tail,
  tailFused,
  TestPipeline,
  testKafka,
} from '../support/pipeline.js';
import { repoRoot } from '../../services/shared/repo-root.js';

/**
 * The live dashboard in a real headless Chromium (Debian's package, driven by playwright-core) over
 * a real pipeline on Kafka and Redis: two workers, an aggregator and an evaluator, each with its
 * /metrics. The page's figures must equal those on /metrics and on the metrics topic, and follow
 * the traffic without a reload. The screenshot is kept as a CI artifact.
 */
const CHROMIUM = process.env.ES_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOT = join(repoRoot(), 'test-output', 'dashboard.png');
const MODELS = ['m1', 'm2'];
const CLASSES = 3;

describe('dashboard in a browser', () => {
  let kafka: Kafka;
  let topics: Topics;
  let pipeline: TestPipeline;
  let evaluator: Evaluator;
  let dashboard: Dashboard;
  let browser: BrowserContext;
  let page: Page;
  let profileDir: string;
  const servers: MetricsServer[] = [];
  const urls: Record<string, string> = {};
  const redis = createRedis(testInfra().redisUrl, uniqueName('dash-eval'));

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: apt-get install chromium (or set ES_CHROMIUM)`);
    kafka = testKafka('dashboard-test');
    topics = await createTestTopics(kafka);
    pipeline = new TestPipeline(kafka, topics);
    const config = classificationConfig(MODELS, { deadlineMs: 2000 });
    for (const [i, model] of MODELS.entries()) {
      const worker = await pipeline.startWorker(new SliceRunner(model, i, CLASSES));
      servers.push(await serveMetrics(worker.metrics.registry, 0, '127.0.0.1', quietLogger));
      urls[model] = `http://127.0.0.1:${servers.at(-1)!.port}/metrics`;
    }
    const aggregator = await pipeline.startAggregator(config);
    servers.push(await serveMetrics(aggregator.metrics.registry, 0, '127.0.0.1', quietLogger));
    urls.aggregator = `http://127.0.0.1:${servers.at(-1)!.port}/metrics`;
    const settings = readEvaluatorSettings(MODELS, { ES_METRICS_INTERVAL_MS: '300', ES_METRICS_PORT: '0', ES_EVAL_EVENT_WINDOW_MS: '3600000' });
    evaluator = new Evaluator({
      kafka,
      redis,
      keys: pipeline.keys,
      topics,
      config,
      settings,
      instanceId: uniqueName('eval'),
      logger: quietLogger,
      groupId: `${topics.labels}-evaluator`,
    });
    await evaluator.start();
    urls.evaluator = `http://127.0.0.1:${evaluator.metricsPort()}/metrics`;
    dashboard = new Dashboard({
      kafka,
      metricsTopic: topics.metrics,
      targets: Object.entries(urls).map(([name, url]) => ({ name, url })),
      logger: quietLogger,
      intervalMs: 250,
    });
    const port = await dashboard.start(0, '127.0.0.1');
    profileDir = mkdtempSync(join(tmpdir(), 'es-chromium-'));
    // A fresh profile (--user-data-dir) per run.
    browser = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1400, height: 1500 },
    });
    page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${port}/`);
  });

  afterAll(async () => {
    await browser?.close();
    await dashboard?.stop();
    await evaluator?.stop();
    await pipeline?.stop();
    await Promise.all(servers.map((s) => s.close()));
    redis.disconnect();
    if (profileDir !== undefined) rmSync(profileDir, { recursive: true, force: true });
  });

  it('shows what /metrics and the metrics topic say, and follows the traffic without a reload', async () => {
    const records = await tail<EnsembleMetrics>(kafka, topics.metrics, (v, h) => codecs.ensembleMetrics.decode(v, h as never));
    const fused = await tailFused(kafka, topics);
    // Set once: still there at the end only if the page never reloaded.
    await page.evaluate('window.marker = "same page"');

    // First traffic: 30 requests, every model answers.
    const first = requests('a', 30);
    await produce(
      kafka,
      topics.features,
      first.map((r) => featureMessage(r.id, r.features)),
    );
    await untilFigure(page, 'fused.total', 30);
    await pipeline.drained(fused);
    await expectCountersEqual(page, urls);
    expect(await figure(page, 'fused.COMPLETE')).toBe(30);

    // Labels: the page shows the metrics record the evaluator published, figure for figure.
    await sendLabels(kafka, topics.labels, first);
    await untilFigure(page, 'labelled:ensemble', 30);
    const shown = await figure(page, 'quality.generatedAtMs');
    await eventually(() => records.received.some((r) => r.value.generatedAtMs === shown), 'the shown record on the topic');
    const record = records.received.find((r) => r.value.generatedAtMs === shown)!.value;
    const evaluatorSamples = parsePromText(await (await fetch(urls.evaluator!)).text());
    for (const e of record.entries) {
      for (const [field, gauge] of [
        ['accuracy', 'accuracy_ratio'],
        ['macroF1', 'macro_f1_ratio'],
        ['logLoss', 'log_loss'],
      ] as const) {
        expect(await figure(page, `${field}:${e.subject}`), `${field} of ${e.subject}`).toBe(e[field]);
        // Nothing new arrived since, so the evaluator's /metrics has the same figures.
        expect(sumBy(evaluatorSamples, `ensemble_stream_${gauge}`, 'subject').get(e.subject)).toBe(e[field]);
      }
      expect(await figure(page, `latencyP50Ms:${e.subject}`)).toBe(e.latencyP50Ms ?? 0);
      expect(await figure(page, `labelled:${e.subject}`)).toBe(e.labelled);
    }
    expect(record.entries.map((e) => e.subject).sort()).toEqual(['ensemble', ...MODELS]);

    // More traffic, two bad requests among it: the same page moves on.
    const second = requests('b', 20);
    const bad = [
      featureMessage(uniqueName('bad'), [1, 0, 0, 1, 0, 0], Date.now() + 3_600_000),
      featureMessage(uniqueName('bad'), [1, 0, 0, 1, 0, 0], Date.now() + 3_600_000),
    ];
    await produce(kafka, topics.features, [...second.map((r) => featureMessage(r.id, r.features)), ...bad]);
    await untilFigure(page, 'fused.total', 50);
    await untilFigure(page, 'deadLetters:INVALID_TIMESTAMP', bad.length * MODELS.length);
    await pipeline.drained(fused);
    await expectCountersEqual(page, urls);
    expect(await page.evaluate('window.marker')).toBe('same page');
    expect(Number(await page.evaluate('document.body.dataset.updates'))).toBeGreaterThan(2);
    for (const m of MODELS) expect(await text(page, `breaker.worker:${m}`)).toBe('closed');

    await sendLabels(kafka, topics.labels, second);
    await untilFigure(page, 'labelled:ensemble', 50);
    mkdirSync(join(repoRoot(), 'test-output'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`dashboard screenshot: ${SCREENSHOT}`);
    await records.stop();
    await fused.stop();
  });
});

/** Requests whose features carry each model's probabilities (SliceRunner): every model votes its class. */
function requests(prefix: string, n: number) {
  return Array.from({ length: n }, (_, i) => {
    const cls = i % CLASSES;
    const other = (cls + 1) % CLASSES;
    const p = (c: number, strong: number) => Array.from({ length: CLASSES }, (_, k) => (k === c ? strong : (1 - strong) / (CLASSES - 1)));
    // m1 is always right, m2 right two times in three.
    return { id: uniqueName(prefix), label: String.fromCharCode(97 + cls), features: [...p(cls, 0.8), ...p(i % 3 === 2 ? other : cls, 0.6)] };
  });
}

async function sendLabels(kafka: Kafka, topic: string, rows: readonly { id: string; label: string }[]): Promise<void> {
  await produce(
    kafka,
    topic,
    rows.map((r) => {
      const label: Label = { requestId: r.id, label: r.label, value: null, observedAtMs: Date.now() };
      return { key: r.id, value: codecs.label.encode(label), headers: codecs.label.headers };
    }),
  );
}

async function figure(page: Page, name: string): Promise<number | null> {
  const value = await page.getAttribute(`[data-figure="${name}"]`, 'data-value', { timeout: 5000 });
  return value === null || value === '' ? null : Number(value);
}

async function text(page: Page, name: string): Promise<string | null> {
  return page.getAttribute(`[data-figure="${name}"]`, 'data-value', { timeout: 5000 });
}

/** Waits, in the page, until a figure reaches `value` (the page redraws from server-sent events). */
async function untilFigure(page: Page, name: string, value: number): Promise<void> {
  const expression = `Number(document.querySelector(${JSON.stringify(`[data-figure="${name}"]`)})?.getAttribute('data-value')) === ${value}`;
  await page.waitForFunction(expression, undefined, { timeout: 60_000 });
}

/** Once the pipeline is drained: the page's counters equal the services' /metrics, read now. */
async function expectCountersEqual(page: Page, urls: Record<string, string>): Promise<void> {
  const scrape = async (url: string) => parsePromText(await (await fetch(url)).text());
  const aggregator = await scrape(urls.aggregator!);
  const byStatus = sumBy(aggregator, 'ensemble_stream_aggregator_fused_total', 'status');
  const workers = (await Promise.all(MODELS.map((m) => scrape(urls[m]!)))).flat();
  // The page redraws every 250 ms: wait for the redraw after the last scrape above, then compare.
  const total = [...byStatus.values()].reduce((a, b) => a + b, 0);
  await untilFigure(page, 'fused.total', total);
  for (const status of ['COMPLETE', 'PARTIAL', 'INSUFFICIENT']) expect(await figure(page, `fused.${status}`), status).toBe(byStatus.get(status) ?? 0);
  for (const m of MODELS) {
    const ok = workers.filter((s) => s.name === 'ensemble_stream_worker_predictions_total' && s.labels.model === m && s.labels.status === 'OK');
    expect(await figure(page, `predictions.OK:${m}`)).toBe(ok[0]?.value);
  }
  for (const [reason, n] of sumBy(workers, 'ensemble_stream_worker_dead_letters_total', 'reason')) expect(await figure(page, `deadLetters:${reason}`)).toBe(n);
}
