/**
 * How the running agent gets its hardware facts: each collection (at start, on the slow
 * schedule, on a hardware change, on `refresh-facts`) runs agent/facts-child.ts in a short-lived
 * child process, which loads systeminformation, collects (agent/facts-collector.ts) and sends the
 * facts back over the IPC channel.
 *
 * Why a process and not an import: systeminformation is 0.7 MB of JavaScript (two-byte strings in
 * V8: some of its files hold characters above U+00FF), with its bytecode and the garbage of each
 * collection, and an agent keeps whatever it once loaded for its whole life (bench/README.md,
 * "The agent's own cost"). Collections are minutes apart, so the ~50 ms of a Node start each time
 * is cheap, and everything the collection used leaves with the child. A worker thread would share
 * the process's malloc arenas, which glibc does not hand back.
 *
 * This module imports no systeminformation, so neither does the agent's bundle.
 */
import { fork } from 'node:child_process';
import { join } from 'node:path';
import type { Facts } from '../shared/facts';
import type { LogFields, Logger } from '../shared/logger';

/** What the Agent calls to get facts; a benchmark shares one collected object across agents. */
export type FactsProvider = () => Promise<Facts>;

/** Time box of one facts probe. @default 10000 */
export const DEFAULT_FACTS_PROBE_TIMEOUT_MS = 10_000;

/**
 * The child's program, beside this file: dist/agent/facts-child.js, or in the packages
 * /usr/lib/cluster/facts-child.js beside agent.js (scripts/rpm/bundle.mjs bundles it on its own).
 */
export const FACTS_CHILD_SCRIPT = join(__dirname, 'facts-child.js');

/** Time a Node start may take on a loaded machine, on top of the collection's own bound. */
const CHILD_START_ALLOWANCE_MS = 20_000;

/** The request the parent sends, once. */
export interface FactsChildRequest {
  hostname: string;
  probeTimeoutMs: number;
}

/** What the child sends: its log lines as they happen, then the facts. */
export type FactsChildMessage =
  | { kind: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; msg: string; fields?: LogFields }
  | { kind: 'facts'; facts: Facts };

export interface ChildFactsOptions {
  /** Reported hostname (the identity's, which a sandbox may override). */
  hostname: string;
  logger?: Logger;
  /** Per-probe time box. @default DEFAULT_FACTS_PROBE_TIMEOUT_MS */
  probeTimeoutMs?: number;
  /** The child's program. @default FACTS_CHILD_SCRIPT */
  script?: string;
  /**
   * Kill the child when it has not answered after this long. @default two probe time boxes (the
   * parallel probes, then the runtime probes) plus 20 s for Node to start.
   */
  deadlineMs?: number;
}

function isChildMessage(m: unknown): m is FactsChildMessage {
  if (typeof m !== 'object' || m === null) return false;
  const kind = (m as { kind?: unknown }).kind;
  return (kind === 'log' && typeof (m as { msg?: unknown }).msg === 'string') || (kind === 'facts' && typeof (m as { facts?: unknown }).facts === 'object');
}

/**
 * Collects facts once in a child process. Rejects (after killing it) when the child cannot start,
 * dies, or has not answered by the deadline; the probes' own failures and timeouts are not
 * errors (they degrade to empty values inside the child, logged through `logger`).
 */
export function collectFactsInChild(options: ChildFactsOptions): Promise<Facts> {
  const probeTimeoutMs = options.probeTimeoutMs ?? DEFAULT_FACTS_PROBE_TIMEOUT_MS;
  const deadlineMs = options.deadlineMs ?? 2 * probeTimeoutMs + CHILD_START_ALLOWANCE_MS;
  const log = options.logger;
  return new Promise<Facts>((resolve, reject) => {
    // No execArgv: the agent's own flags (a preloaded probe, --inspect) are not the child's.
    const child = fork(options.script ?? FACTS_CHILD_SCRIPT, [], { execArgv: [], stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'json' });
    let settled = false;
    let stderr = '';
    const finish = (err: Error | undefined, facts?: Facts): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(facts as Facts);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(new Error(`facts collection process gave no answer within ${deadlineMs} ms (killed)`));
    }, deadlineMs);
    // The child holds the event loop while it runs (a `cluster-agent apply` waits for it); the
    // agent exits with process.exit, and a child whose parent is gone exits too (facts-child.ts).
    timer.unref();
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => { stderr = (stderr + d).slice(-2000); });
    child.on('message', (m: unknown) => {
      if (!isChildMessage(m)) {
        log?.warn('facts collection process sent an unknown message', { message: JSON.stringify(m).slice(0, 200) });
      } else if (m.kind === 'log') {
        log?.[m.level](m.msg, m.fields);
      } else {
        finish(undefined, m.facts);
      }
    });
    child.on('error', (err) => finish(new Error(`facts collection process failed: ${err.message}`)));
    // 'close' comes after the IPC channel and stderr are drained: a facts message sent before exit was seen.
    child.on('close', (code, signal) => {
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const tail = stderr.trim().split('\n').slice(-5).join(' | ');
      finish(new Error(`facts collection process ${how} without facts${tail ? `: ${tail}` : ''}`));
    });
    const request: FactsChildRequest = { hostname: options.hostname, probeTimeoutMs };
    child.send(request, (err) => { if (err) finish(new Error(`facts collection process: cannot send the request: ${err.message}`)); });
  });
}

/** Facts with every field empty: what a collection whose every probe failed reports. */
export function emptyFacts(hostname: string, now: Date = new Date()): Facts {
  return {
    collectedAt: now.toISOString(),
    hostname,
    system: { manufacturer: '', model: '', serial: '', uuid: '', sku: '', virtual: false },
    bios: { vendor: '', version: '', releaseDate: '' },
    baseboard: { manufacturer: '', model: '', serial: '' },
    cpu: { manufacturer: '', brand: '', model: '', cores: 0, physicalCores: 0, threads: 0, sockets: 0, speedGHz: 0 },
    memory: { totalBytes: 0, layout: [] },
    disks: [],
    network: [],
    os: { platform: '', distro: '', release: '', codename: '', kernel: '', arch: '' },
    gpus: [],
    runtime: { init: '', systemdVersion: '', virtualization: '', virtualizationType: '' },
  };
}

/**
 * A FactsProvider that collects from this machine, in a child process, each time it is called.
 * When the child fails (it cannot start, dies, or hangs past its deadline) and no collection has
 * succeeded yet, the error is logged and empty facts stand in, as when every probe fails: the
 * agent registers (its membership needs facts) and the next collection fills them in. After a
 * success a failure rejects, so the cached facts stay and the caller says it failed.
 */
export function childFactsProvider(options: ChildFactsOptions): FactsProvider {
  let succeeded = false;
  return async () => {
    try {
      const facts = await collectFactsInChild(options);
      succeeded = true;
      return facts;
    } catch (err) {
      if (succeeded) throw err;
      options.logger?.error('facts collection failed; reporting empty facts until one succeeds', { error: err instanceof Error ? err.message : String(err) });
      return emptyFacts(options.hostname);
    }
  };
}

/** Facts without the collection time: two collections of an unchanged machine compare equal. */
export function factsFingerprint(facts: Facts): string {
  const { collectedAt: _ignored, ...rest } = facts;
  void _ignored;
  return JSON.stringify(rest);
}

/** The machine's primary address for the member record: the default route's interface first. */
export function primaryAddress(facts: Facts): string {
  const nics = facts.network;
  const primary = nics.find((n) => n.isDefault && n.ipv4.length > 0) ?? nics.find((n) => !n.virtual && n.ipv4.length > 0) ?? nics.find((n) => n.ipv4.length > 0);
  return primary?.ipv4[0] ?? '';
}
