import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import type { MetricsEntry } from '../shared/records.js';
import type { EvaluationReport } from './report.js';

/**
 * The evaluator's figures on a Prometheus endpoint (GET /metrics). Every value comes from the latest
 * report, the one also published on Kafka, so both always agree. Totals are deployment-wide (read
 * from Redis): several evaluator instances expose the same values, so aggregate them with max, not sum.
 */
const PREFIX = 'ensemble_stream_';
const QUANTILES = [
  ['0.5', 'latencyP50Ms'],
  ['0.95', 'latencyP95Ms'],
  ['0.99', 'latencyP99Ms'],
] as const;

type EntryField = 'accuracy' | 'macroPrecision' | 'macroRecall' | 'macroF1' | 'logLoss' | 'brier' | 'mae' | 'rmse';
const WINDOW_GAUGES: readonly { name: string; help: string; field: EntryField }[] = [
  { name: 'accuracy_ratio', help: 'Accuracy over the rolling window.', field: 'accuracy' },
  { name: 'macro_precision_ratio', help: 'Macro-averaged precision over the rolling window.', field: 'macroPrecision' },
  { name: 'macro_recall_ratio', help: 'Macro-averaged recall over the rolling window.', field: 'macroRecall' },
  { name: 'macro_f1_ratio', help: 'Macro-averaged F1 over the rolling window.', field: 'macroF1' },
  { name: 'log_loss', help: 'Mean log loss over the rolling window.', field: 'logLoss' },
  { name: 'brier_score', help: 'Mean multiclass Brier score over the rolling window.', field: 'brier' },
  { name: 'mean_absolute_error', help: 'Mean absolute error over the rolling window (regression).', field: 'mae' },
  { name: 'root_mean_squared_error', help: 'Root mean squared error over the rolling window (regression).', field: 'rmse' },
];

export class MetricsEndpoint {
  readonly registry = new Registry();
  private latest: EvaluationReport | undefined;
  private server: Server | undefined;

  constructor() {
    const report = () => this.latest;
    this.windowGauges(report);
    this.joinGauges(report);
    this.totalCounters(report);
  }

  /** The rolling-window figures per subject: quality, labelled count, latency, learned weight. */
  private windowGauges(report: () => EvaluationReport | undefined): void {
    const registers = [this.registry];
    const entries = (): readonly MetricsEntry[] => report()?.snapshot.entries ?? [];
    for (const g of WINDOW_GAUGES) {
      new Gauge({
        name: PREFIX + g.name,
        help: g.help,
        labelNames: ['subject'],
        registers,
        collect() {
          this.reset();
          for (const e of entries()) {
            const value = e[g.field];
            if (value !== null) this.set({ subject: e.subject }, value);
          }
        },
      });
    }
    new Gauge({
      name: `${PREFIX}window_labelled`,
      help: 'Labelled predictions in the rolling window.',
      labelNames: ['subject'],
      registers,
      collect() {
        this.reset();
        for (const e of entries()) this.set({ subject: e.subject }, e.labelled);
      },
    });
    new Gauge({
      name: `${PREFIX}latency_seconds`,
      help: 'Latency quantiles over the event window: per model from request creation to its prediction, for subject "ensemble" end to end.',
      labelNames: ['subject', 'quantile'],
      registers,
      collect() {
        this.reset();
        for (const e of entries()) {
          for (const [quantile, field] of QUANTILES) {
            const ms = e[field];
            if (ms !== null) this.set({ subject: e.subject, quantile }, ms / 1000);
          }
        }
      },
    });
    new Gauge({
      name: `${PREFIX}model_weight`,
      help: 'Fusion weight learned from label feedback.',
      labelNames: ['model'],
      registers,
      collect() {
        this.reset();
        for (const e of entries()) if (e.weight !== null) this.set({ model: e.subject }, e.weight);
      },
    });
  }

  /** The join's figures over the event window: completeness, partial share, late share per model. */
  private joinGauges(report: () => EvaluationReport | undefined): void {
    const registers = [this.registry];
    new Gauge({
      name: `${PREFIX}join_completeness_ratio`,
      help: 'Share of fused results over the event window in which every expected model contributed.',
      registers,
      collect() {
        this.reset();
        const value = report()?.join.completeness;
        if (value !== null && value !== undefined) this.set(value);
      },
    });
    new Gauge({
      name: `${PREFIX}partial_ratio`,
      help: 'Share of fused results over the event window that lacked some model (status PARTIAL).',
      registers,
      collect() {
        this.reset();
        const value = report()?.join.partial;
        if (value !== null && value !== undefined) this.set(value);
      },
    });
    new Gauge({
      name: `${PREFIX}late_ratio`,
      help: "Share of a model's predictions over the event window that arrived after their request was fused without them.",
      labelNames: ['model'],
      registers,
      collect() {
        this.reset();
        for (const [model, value] of report()?.join.lateRate ?? []) if (value !== null) this.set({ model }, value);
      },
    });
  }

  /** Running totals since the deployment started. */
  private totalCounters(report: () => EvaluationReport | undefined): void {
    const registers = [this.registry];
    const totalCounter = (name: string, help: string, label: string, pick: (r: EvaluationReport) => Iterable<[string, number]>) =>
      new Counter({
        name: PREFIX + name,
        help,
        labelNames: [label],
        registers,
        collect() {
          this.reset();
          const r = report();
          if (r !== undefined) for (const [key, value] of pick(r)) if (value > 0) this.inc({ [label]: key }, value);
        },
      });
    totalCounter('labelled_total', 'Predictions joined to a label.', 'subject', (r) => r.totals.labelled);
    totalCounter('predictions_total', 'Predictions received per model.', 'model', (r) => r.totals.predictions);
    totalCounter('late_total', 'Predictions that arrived after their request was fused without them.', 'model', (r) => r.totals.late);
    totalCounter('missing_total', 'Fused results a model was missing from.', 'model', (r) => r.totals.missing);
    totalCounter('fused_total', 'Fused results by status.', 'status', (r) => Object.entries(r.totals.fused));
  }

  update(report: EvaluationReport): void {
    this.latest = report;
  }

  /** Serves GET /metrics on `port` (0: any free port); resolves to the port bound. */
  async listen(port: number): Promise<number> {
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.registry.metrics().then(
        (body) => res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(body),
        () => res.writeHead(500).end(),
      );
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, () => resolve());
    });
    return (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // A scraper's keep-alive connection would otherwise hold the server open.
    server.closeAllConnections();
    await closed;
  }
}
