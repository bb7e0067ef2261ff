import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

/** Where one process spent its CPU: self time by package or project file, and the top functions. */
export interface ProfileSummary {
  process: string;
  /** Sampled time with the process not idle, ms. */
  busyMs: number;
  byArea: { name: string; ms: number; share: number }[];
  topFunctions: { name: string; ms: number; share: number }[];
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

/** Reads a V8 CPU profile (`.cpuprofile`, as `node --cpu-prof` writes) and sums self time. */
export function summariseProfile(path: string, processName: string, top = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    // Sample i lasts until sample i + 1.
    const us = profile.timeDeltas[i + 1] ?? 0;
    const frame = frames.get(id);
    if (frame === undefined || frame.functionName === '(idle)') return;
    busy += us;
    const area = areaOf(frame.url, frame.functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
    const name = frame.url === '' ? frame.functionName : `${frame.functionName || '(anonymous)'} ${basename(frame.url)}:${frame.lineNumber + 1}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
  });
  const rank = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({ name, ms: us / 1000, share: busy === 0 ? 0 : us / busy }));
  return { process: processName, busyMs: busy / 1000, byArea: rank(byArea, top), topFunctions: rank(byFunction, top) };
}

/** A package under node_modules, a Node built-in, a project file, or a V8 pseudo-frame. */
function areaOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg !== null) return pkg[1] as string;
  if (url.startsWith('node:')) return 'node internals';
  const own = /\/dist\/(.+)$/.exec(url);
  return own !== null ? (own[1] as string) : url;
}
