import { parseArgs } from 'node:util';
import { DELIVERY_MODES, type DeliveryMode } from '../services/core/ensemble-config.js';
import { ConfigError } from '../services/shared/errors.js';
import { positiveInt } from '../services/shared/runtime-config.js';
import { parseScalingOptions, type ScalingOptions } from './scaling-table.js';

export type ProfileName = 'synthetic' | 'letter' | 'dead-model' | 'colocated' | 'letter-colocated';
const PROFILES: readonly ProfileName[] = ['synthetic', 'letter', 'dead-model', 'colocated', 'letter-colocated'];
/** Not a pipeline profile: the aggregator against a Kafka Streams app on a pre-loaded topic (backlog.ts). */
const BACKLOG = 'backlog';

export interface BenchOptions {
  /** Measured requests per phase. */
  requests: number;
  /** Offered rate of the fixed-rate phase, requests per second. */
  rate: number;
  /** Requests sent before the measured phases of a profile, to warm up the JIT and the connections. */
  warmup: number;
  /** How many times each phase runs; the table shows medians. */
  repeat: number;
  profiles: ProfileName[];
  /** Probabilities per synthetic answer. */
  classes: number;
  /** Measure the broker's raw rates first. */
  ceiling: boolean;
  /** Records per ceiling measurement. */
  ceilingRecords: number;
  /** Join deadline; long enough that a saturation backlog never expires requests. */
  deadlineMs: number;
  /** Join state TTL; the run waits for it at the end to check Redis memory returns to baseline. */
  stateTtlMs: number;
  /** Write a V8 CPU profile per service process (bench/results/<run>-profiles). */
  cpuProfile: boolean;
  /** Aggregator instances (they share the predictions partitions). */
  aggregators: number;
  /** The dead-model profile: offered rate and join deadline (every request waits for it). */
  deadModel: { rate: number; deadlineMs: number };
  /** Each profile runs once per delivery mode listed. */
  deliveries: DeliveryMode[];
  /** After a profile's phases, the pipeline's CPU is measured this long with no traffic; 0: not. */
  idleSeconds: number;
  /** Synthetic models of the synthetic profiles (the dead-model profile starts all but one). */
  models: number;
  /** Partitions of every topic a profile creates; undefined: ES_PARTITIONS (3). */
  partitions?: number;
  /** `--scaling`: the scaling matrix and the Redis memory table instead of the profiles (bench/scaling.ts). */
  scaling?: ScalingOptions;
  /** Requests of the backlog comparison (backlog.ts), when --profile lists it. */
  backlog?: number;
}

export const USAGE = `usage: npm run bench -- [options]

  --requests N         measured requests per phase (20000)
  --rate N             offered rate of the fixed-rate phase, req/s (2000)
  --warmup N           unmeasured requests before each profile's phases (2000)
  --repeat N           runs of each phase; the table shows medians (1)
  --profile LIST       synthetic,letter,dead-model,colocated,letter-colocated,backlog (all; colocated: the
                       same models in one worker process instead of one process per model; backlog: the
                       aggregator and a Kafka Streams app, bench/kafka-streams, each draining the same
                       pre-loaded topic exactly once; its deadline is at least 10 min)
  --backlog-requests N requests pre-loaded for the backlog profile (100000; 3 predictions each)
  --classes N          probabilities per synthetic answer (26, like letter)
  --no-ceiling         skip the raw broker measurements
  --ceiling-records N  records per raw broker measurement (100000)
  --deadline-ms N      join deadline (30000: a saturation backlog must not expire requests)
  --state-ttl-ms N     join state TTL, waited for at the end (35000)
  --cpu-profile        write a V8 CPU profile of every service process
  --aggregators N      aggregator instances sharing the partitions (1)
  --dead-model-rate N  offered rate of the dead-model profile, req/s (300)
  --dead-model-deadline-ms N  its deadline, which every request waits for (1000)
  --delivery LIST      run each profile in each delivery mode listed (exactly-once,at-least-once;
                       the backlog profile runs exactly once, --scaling in the first mode listed)
  --idle-seconds N     CPU of the whole pipeline with no traffic, after each profile (30; 0: skip)
  --models N           synthetic models (3); the dead-model profile expects N and starts N-1
  --partitions N       partitions of the topics each profile creates (ES_PARTITIONS, 3)

  --scaling            instead of the profiles: the synthetic profile at saturation for every
                       combination of --models, --aggregators and --partitions, each then a list
                       (3,5,10 / 1,2 / 3,12), with --requests 5000 and --warmup 1000 unless given;
                       then Redis memory with --open-requests LIST requests waiting in the join for
                       a model that never answers (1000,10000,50000; 0: skip)

Kafka and Redis: KAFKA_BROKERS, REDIS_URL (started with infra/local/*.sh when nothing answers,
the broker on KAFKA_BROKERS's port; set KAFKA_CONTROLLER_PORT/ES_LOCAL_DIR to match).`;

export function parseBenchOptions(argv: string[]): BenchOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      requests: { type: 'string' },
      rate: { type: 'string' },
      warmup: { type: 'string' },
      repeat: { type: 'string' },
      profile: { type: 'string' },
      classes: { type: 'string' },
      'no-ceiling': { type: 'boolean' },
      'ceiling-records': { type: 'string' },
      'deadline-ms': { type: 'string' },
      'state-ttl-ms': { type: 'string' },
      'cpu-profile': { type: 'boolean' },
      aggregators: { type: 'string' },
      'dead-model-rate': { type: 'string' },
      'dead-model-deadline-ms': { type: 'string' },
      delivery: { type: 'string' },
      'idle-seconds': { type: 'string' },
      models: { type: 'string' },
      partitions: { type: 'string' },
      scaling: { type: 'boolean' },
      'open-requests': { type: 'string' },
      'backlog-requests': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return undefined;
  const listed = (values.profile ?? [...PROFILES, BACKLOG].join(',')).split(',').map((p) => p.trim());
  for (const p of listed)
    if (![...PROFILES, BACKLOG].includes(p)) throw new ConfigError(`--profile: "${p}" is not one of ${[...PROFILES, BACKLOG].join(', ')}`);
  const profiles = listed.filter((p) => p !== BACKLOG);
  const int = (text: string | undefined, fallback: number, flag: string) => (text === undefined ? fallback : positiveInt(text, flag));
  // Scaling mode: --models, --aggregators and --partitions are the matrix's lists; short phases.
  const scaling = values.scaling === true ? parseScalingOptions(values) : undefined;
  if (scaling === undefined && values['open-requests'] !== undefined) throw new ConfigError('--open-requests: only with --scaling');
  const options: BenchOptions = {
    requests: int(values.requests, scaling === undefined ? 20_000 : 5000, '--requests'),
    rate: int(values.rate, 2000, '--rate'),
    warmup: values.warmup === '0' ? 0 : int(values.warmup, scaling === undefined ? 2000 : 1000, '--warmup'),
    repeat: int(values.repeat, 1, '--repeat'),
    profiles: profiles as ProfileName[],
    classes: int(values.classes, 26, '--classes'),
    ceiling: scaling === undefined && values['no-ceiling'] !== true,
    ceilingRecords: int(values['ceiling-records'], 100_000, '--ceiling-records'),
    deadlineMs: int(values['deadline-ms'], 30_000, '--deadline-ms'),
    stateTtlMs: int(values['state-ttl-ms'], 35_000, '--state-ttl-ms'),
    cpuProfile: values['cpu-profile'] === true,
    aggregators: scaling === undefined ? int(values.aggregators, 1, '--aggregators') : (scaling.aggregators[0] as number),
    deadModel: {
      rate: int(values['dead-model-rate'], 300, '--dead-model-rate'),
      deadlineMs: int(values['dead-model-deadline-ms'], 1000, '--dead-model-deadline-ms'),
    },
    deliveries: (values.delivery ?? DELIVERY_MODES.join(',')).split(',').map((d) => d.trim()) as DeliveryMode[],
    idleSeconds: values['idle-seconds'] === '0' ? 0 : int(values['idle-seconds'], 30, '--idle-seconds'),
    models: scaling === undefined ? int(values.models, 3, '--models') : (scaling.models[0] as number),
    ...(scaling === undefined ? {} : { scaling }),
    ...(scaling === undefined && listed.includes(BACKLOG) ? { backlog: int(values['backlog-requests'], 100_000, '--backlog-requests') } : {}),
  };
  if (scaling === undefined && values.partitions !== undefined) options.partitions = positiveInt(values.partitions, '--partitions');
  if (options.models < 2) throw new ConfigError('--models: at least 2');
  for (const d of options.deliveries) if (!DELIVERY_MODES.includes(d)) throw new ConfigError(`--delivery: "${d}" is not one of ${DELIVERY_MODES.join(', ')}`);
  if (options.classes < 2) throw new ConfigError('--classes: at least 2');
  if (options.stateTtlMs <= options.deadlineMs) throw new ConfigError('--state-ttl-ms must be longer than --deadline-ms');
  if (options.stateTtlMs <= options.deadModel.deadlineMs) throw new ConfigError('--state-ttl-ms must be longer than --dead-model-deadline-ms');
  return options;
}
