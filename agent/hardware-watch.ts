/**
 * Noticing a hardware change without collecting all facts: a cheap fingerprint of what
 * hotplug changes — block devices (name and size from /sys/block) and network interfaces
 * (name, MAC, addresses) — compared on a timer. A full systeminformation collection costs
 * 0.2–0.3 s of CPU here and seconds on real servers; reading /sys/block and the interface
 * table costs well under a millisecond, so it can run every 30 s. On a change the agent
 * re-collects its facts (and writes them when they changed).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import type { Clock, Timer } from '../shared/clock';
import { errorMessage } from '../shared/errors';
import type { Logger } from '../shared/logger';

/** Virtual block devices that come and go with mounts and services, not with hardware. */
const VIRTUAL_BLOCK = /^(loop|ram|zram|nbd)\d*/;

export function systemHardwareSignature(): string {
  let blocks: string[] = [];
  try {
    blocks = readdirSync('/sys/block').filter((n) => !VIRTUAL_BLOCK.test(n)).sort().map((name) => {
      let size = '';
      try { size = readFileSync(`/sys/block/${name}/size`, 'utf8').trim(); } catch { /* gone meanwhile */ }
      return `${name}:${size}`;
    });
  } catch {
    // no sysfs (a container): interfaces alone
  }
  const nics = Object.entries(networkInterfaces()).map(([name, addrs]) => `${name}:${(addrs ?? []).map((a) => `${a.mac}/${a.address}`).sort().join(',')}`).sort();
  return JSON.stringify({ blocks, nics });
}

export interface HardwareWatchOptions {
  /** The fingerprint (default: systemHardwareSignature). */
  signature: () => string;
  intervalMs: number;
  clock: Clock;
  logger: Logger;
  /** Called when the fingerprint changed since the last check. */
  onChange: () => Promise<unknown>;
}

export class HardwareWatch {
  private timer?: Timer;
  private last?: string;
  private running = false;

  constructor(private readonly o: HardwareWatchOptions) {}

  start(): void {
    if (this.running || this.o.intervalMs <= 0) return;
    this.running = true;
    this.last = this.o.signature();
    this.schedule();
  }

  stop(): void {
    this.running = false;
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** One comparison now; true when the hardware changed (and onChange ran). */
  async check(): Promise<boolean> {
    const now = this.o.signature();
    if (now === this.last) return false;
    this.last = now;
    this.o.logger.info('hardware changed; re-collecting facts');
    try {
      await this.o.onChange();
    } catch (err) {
      this.o.logger.warn('facts refresh after a hardware change failed', { error: errorMessage(err) });
    }
    return true;
  }

  private schedule(): void {
    this.timer = this.o.clock.setTimeout(() => {
      void this.check().finally(() => { if (this.running) this.schedule(); });
    }, this.o.intervalMs);
  }
}
