import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

/**
 * Preloaded into a service (`--import`) when the bench profiles: records a V8 CPU profile, the
 * format `node --cpu-prof` writes, and saves it to $ES_BENCH_CPU_PROFILE when the process exits.
 * An in-process inspector session answers synchronously, so saving works in an exit handler.
 */
const target = process.env.ES_BENCH_CPU_PROFILE;
if (target !== undefined && target !== '') {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  process.on('exit', () => {
    session.post('Profiler.stop', (error, result) => {
      if (error === null) writeFileSync(target, JSON.stringify(result.profile));
    });
  });
}
