import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Consumer, Kafka } from 'kafkajs';
import { codecs } from '../shared/codec.js';
import { describeError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { EnsembleMetrics } from '../shared/records.js';
import { DASHBOARD_PAGE } from './page.js';
import { parsePromText } from './prom-text.js';
import { appendHistory, buildView, type DashboardView, type QualityPoint, type Scrape } from './view.js';

export interface ScrapeTarget {
  name: string;
  url: string;
}

export interface DashboardOptions {
  kafka: Kafka;
  metricsTopic: string;
  targets: readonly ScrapeTarget[];
  logger: Logger;
  /** How often the targets are scraped and the page updated, ms. @defaultValue 1000 */
  intervalMs?: number;
  /** Metrics records kept for the charts. @defaultValue 360 */
  historyRecords?: number;
}

const SCRAPE_TIMEOUT_MS = 2000;

/**
 * The live dashboard: scrapes every service's /metrics, follows the ensemble-metrics topic (from the
 * records published after it starts) and serves one page that redraws from server-sent events.
 * It only reads: what it shows is what /metrics and the topic say.
 */
export class Dashboard {
  private readonly consumer: Consumer;
  private latest: EnsembleMetrics | undefined;
  private history: QualityPoint[] = [];
  private view: DashboardView;
  private readonly clients = new Set<ServerResponse>();
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private scraping: Promise<void> | undefined;

  constructor(private readonly o: DashboardOptions) {
    this.consumer = o.kafka.consumer({ groupId: `ensemble-stream.dashboard.${randomBytes(6).toString('hex')}`, maxWaitTimeInMs: 100 });
    this.view = buildView([], undefined, [], Date.now());
  }

  /** Starts following the topic and serving on `port` (0: any free port); resolves to the port bound. */
  async start(port: number, host = '0.0.0.0'): Promise<number> {
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.o.metricsTopic, fromBeginning: false });
    await this.consumer.run({ eachMessage: async ({ message }) => this.onRecord(message.value, message.headers) });
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(port, host, () => resolve());
    });
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.o.intervalMs ?? 1000);
    const bound = (this.server.address() as AddressInfo).port;
    this.o.logger.info('dashboard started', {
      url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${bound}/`,
      targets: this.o.targets.map((t) => t.name),
      topic: this.o.metricsTopic,
    });
    return bound;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.scraping;
    for (const c of this.clients) c.end();
    this.clients.clear();
    const server = this.server;
    if (server !== undefined) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    }
    await this.consumer.disconnect();
  }

  /** The figures the page shows now. */
  current(): DashboardView {
    return this.view;
  }

  private onRecord(value: Buffer | null, headers: unknown): void {
    try {
      const record = codecs.ensembleMetrics.decode(value, headers as never);
      if (this.latest !== undefined && record.generatedAtMs < this.latest.generatedAtMs) return;
      this.latest = record;
      this.history = appendHistory(this.history, record, this.o.historyRecords ?? 360);
    } catch (error) {
      this.o.logger.warn('unreadable metrics record skipped', { error: describeError(error) });
    }
  }

  /** Scrapes every target once, rebuilds the view and pushes it to every open page. */
  private refresh(): Promise<void> {
    this.scraping ??= (async () => {
      const scrapes = await Promise.all(this.o.targets.map((t) => scrape(t)));
      this.view = buildView(scrapes, this.latest, this.history, Date.now());
      const event = `data: ${JSON.stringify(this.view)}\n\n`;
      for (const c of this.clients) c.write(event);
    })().finally(() => {
      this.scraping = undefined;
    });
    return this.scraping;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
    } else if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(DASHBOARD_PAGE);
    } else if (path === '/api/view') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.view));
    } else if (path === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      res.write(`data: ${JSON.stringify(this.view)}\n\n`);
      this.clients.add(res);
      req.on('close', () => this.clients.delete(res));
    } else {
      res.writeHead(404).end();
    }
  }
}

async function scrape(target: ScrapeTarget): Promise<Scrape> {
  try {
    const res = await fetch(target.url, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
    if (!res.ok) return { ...target, samples: [], error: `HTTP ${res.status}` };
    return { ...target, samples: parsePromText(await res.text()) };
  } catch (error) {
    return { ...target, samples: [], error: describeError(error) };
  }
}
