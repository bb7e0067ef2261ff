import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

/**
 * CPU time and resident memory of the processes under test, read from /proc (Linux): CPU seconds
 * as the difference of two readings, peak RSS as the largest of periodic samples (VmHWM would
 * cover the whole life of the process, not one phase). The machine-wide CPU use comes with it, so
 * a report can say how much of the machine other work took.
 */
export interface WatchedProcess {
  name: string;
  pid: number;
  /** Where the process counts its Kafka requests by API (kafka-requests.ts), if it does. */
  requestsFile?: string;
}

export interface ProcessUsage {
  name: string;
  pid: number;
  cpuSeconds: number;
  /** CPU seconds per wall-clock second: 1.0 is one core fully used. */
  cores: number;
  peakRssMb: number;
}

export interface MachineUsage {
  wallSeconds: number;
  /** Cores busy on average over the window, every process on the machine counted. */
  busyCores: number;
  /** Cores busy with processes not under test. */
  otherCores: number;
  loadAverage1mStart: number;
  loadAverage1mEnd: number;
}

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** utime + stime of a process, seconds; undefined once it has exited. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; the fields after it start past the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

function rssMb(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? 0 : Number(match[1]) / 1024;
  } catch {
    return 0;
  }
}

/** Busy and total jiffies of the whole machine. */
function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/** Samples the processes every `intervalMs` between `start()` and `stop()`. */
export class ProcessSampler {
  private readonly startCpu = new Map<number, number>();
  private readonly peak = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private startMachine = { busy: 0, total: 0 };
  private startLoad = 0;

  constructor(
    private readonly processes: readonly WatchedProcess[],
    private readonly intervalMs = 200,
  ) {}

  start(): void {
    this.startedAt = performance.now();
    this.startMachine = machineTicks();
    this.startLoad = loadavg()[0] ?? 0;
    for (const p of this.processes) {
      this.startCpu.set(p.pid, cpuSeconds(p.pid) ?? 0);
      this.peak.set(p.pid, rssMb(p.pid));
    }
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  stop(): { processes: ProcessUsage[]; machine: MachineUsage } {
    clearInterval(this.timer);
    this.sample();
    const wallSeconds = (performance.now() - this.startedAt) / 1000;
    const machineEnd = machineTicks();
    const processes = this.processes.map((p) => {
      const cpu = Math.max(0, (cpuSeconds(p.pid) ?? 0) - (this.startCpu.get(p.pid) ?? 0));
      return { name: p.name, pid: p.pid, cpuSeconds: cpu, cores: cpu / wallSeconds, peakRssMb: this.peak.get(p.pid) ?? 0 };
    });
    const cores = (machineEnd.total - this.startMachine.total) / CLOCK_TICKS / wallSeconds;
    const busyShare = (machineEnd.busy - this.startMachine.busy) / Math.max(1, machineEnd.total - this.startMachine.total);
    const busyCores = busyShare * cores;
    const ours = processes.reduce((a, p) => a + p.cores, 0);
    return {
      processes,
      machine: {
        wallSeconds,
        busyCores,
        otherCores: Math.max(0, busyCores - ours),
        loadAverage1mStart: this.startLoad,
        loadAverage1mEnd: loadavg()[0] ?? 0,
      },
    };
  }

  private sample(): void {
    for (const p of this.processes) this.peak.set(p.pid, Math.max(this.peak.get(p.pid) ?? 0, rssMb(p.pid)));
  }
}
