import { renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/**
 * Preloaded into every service the bench starts (`--import`): counts the Kafka requests the
 * process sends, by API (Fetch, Produce, EndTxn ...), with the time each waited for its answer.
 * kafkajs sends every request through one method of its connection class, which is patched here;
 * the service loads the same module instance, as Node caches CommonJS modules by path. The counts
 * go to $ES_BENCH_KAFKA_REQUESTS when the bench asks (SIGUSR2), so counting costs the service
 * nothing between readings.
 */
const target = process.env.ES_BENCH_KAFKA_REQUESTS;

if (target !== undefined && target !== '') {
  const require = createRequire(import.meta.url);
  const Connection = require('kafkajs/src/network/connection.js') as { prototype: { send: (protocol: { request: { apiName: string } }) => Promise<unknown> } };
  const counts: Record<string, number> = {};
  const waitedMs: Record<string, number> = {};
  const send = Connection.prototype.send;
  Connection.prototype.send = function countedSend(this: unknown, protocol) {
    const api = protocol.request.apiName;
    counts[api] = (counts[api] ?? 0) + 1;
    const started = performance.now();
    return send.call(this, protocol).finally(() => {
      waitedMs[api] = (waitedMs[api] ?? 0) + performance.now() - started;
    });
  };
  const save = () => {
    writeFileSync(`${target}.tmp`, JSON.stringify({ counts, waitedMs, savedAtMs: Date.now() }));
    renameSync(`${target}.tmp`, target);
  };
  save();
  process.on('SIGUSR2', save);
}
