/**
 * The processes the test helpers start (etcd members, coordinators, agents, sim-fleets,
 * Prometheus), so that none outlives the program that started it.
 *
 * - Every tracked child still running when this process exits is SIGKILLed from an 'exit'
 *   hook: a test file or benchmark that throws past its own teardown no longer leaves an etcd
 *   behind (etcd logs to a file, so unlike a child on our pipes nothing tells it we are gone).
 * - A signal skips 'exit' hooks altogether. A benchmark's main therefore calls `exitOnSignals()`:
 *   on SIGINT, SIGTERM or SIGHUP it exits with 128 + the signal's number, which runs every
 *   'exit' hook: this one, and the others' (kernel-cut.ts's nftables table, pki.ts's temp dir,
 *   systemd-sandbox.ts's mounts). Test runs do not: mocha has its own SIGINT handling.
 *
 * scripts/dev-cluster's processes are not tracked: it leaves its cluster running on purpose.
 */
import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { isRunning } from '../../scripts/lib/process-support';

const live = new Set<ChildProcess>();
let hooked = false;

/** Kill `proc` (SIGKILL) if it is still running when this process exits. */
export function trackChild(proc: ChildProcess): void {
  if (proc.pid === undefined || !isRunning(proc)) return;
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  if (!hooked) {
    hooked = true;
    process.on('exit', killTrackedChildren);
  }
}

/** SIGKILL every tracked child still running (synchronous: safe in an 'exit' hook). */
export function killTrackedChildren(): void {
  for (const proc of live) {
    try {
      proc.kill('SIGKILL');
    } catch {
      // Already gone.
    }
  }
  live.clear();
}

/**
 * For a benchmark's main: SIGINT, SIGTERM or SIGHUP ends it through process.exit (128 + the
 * signal's number), so the 'exit' hooks clean up what it started.
 */
export function exitOnSignals(signals: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']): void {
  for (const signal of signals) {
    process.once(signal, () => {
      process.stderr.write(`${signal}: stopping the processes this run started, then exiting\n`);
      process.exit(128 + (constants.signals[signal] ?? 0));
    });
  }
}
