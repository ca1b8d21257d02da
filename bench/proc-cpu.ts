/**
 * CPU time of processes over a phase, from /proc/<pid>/stat (utime + stime, the process and all
 * its threads; not its children): which process is the bottleneck of a benchmark phase. A phase's
 * CPU seconds against its wall seconds is that process's share of one core (1.0 = one core busy
 * all along; the box has two).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpuSeconds } from './sim-fleet';

/** utime + stime of `pid` in ms (NaN when it is gone or unreadable). */
export function cpuMs(pid: number): number {
  try {
    const ms = cpuSeconds(pid) * 1000;
    return Number.isFinite(ms) ? ms : NaN;
  } catch {
    return NaN;
  }
}

/**
 * The whole machine's busy time in ms summed over its cores, from /proc/stat's first line: user,
 * nice, system, irq and softirq (not idle, iowait or steal). Work no process is charged for shows
 * here: the kernel's TCP keepalive probes and their ACKs run in softirq.
 */
export function machineBusyMs(): { busyMs: number; softirqMs: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq] = fields;
  const tick = 1000 / 100; // USER_HZ is 100 on Linux
  return { busyMs: (user + nice + system + irq + softirq) * tick, softirqMs: softirq * tick };
}

/** etcd's pid: the process whose command line names this server's data dir (-1: none). */
export function etcdPid(dataDir: string): number {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(dataDir)) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  return -1;
}

/** CPU ms of each named process set (a set's pids are summed) between `start()` and `stop()`. */
export class PhaseCpu<K extends string> {
  private begin = new Map<K, number>();
  private startedAt = 0;

  constructor(private readonly pids: Record<K, () => readonly number[]>) {}

  private now(): Map<K, number> {
    const out = new Map<K, number>();
    for (const k of Object.keys(this.pids) as K[]) out.set(k, this.pids[k]().reduce((a, p) => a + cpuMs(p), 0));
    return out;
  }

  start(): this {
    this.begin = this.now();
    this.startedAt = Date.now();
    return this;
  }

  /** CPU ms per set since `start()`, and the wall ms. */
  stop(): { wallMs: number; cpuMs: Record<K, number> } {
    const end = this.now();
    const cpu = {} as Record<K, number>;
    for (const [k, v] of end) cpu[k] = Math.round(v - (this.begin.get(k) ?? NaN));
    return { wallMs: Date.now() - this.startedAt, cpuMs: cpu };
  }
}
