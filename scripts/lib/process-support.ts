/**
 * Process support for dev and test tooling (scripts/dev-cluster.ts and test/helpers): where
 * the built programs are, free loopback ports, finding and starting a one-member etcd, and
 * stopping a child with a grace time. Not product runtime: nothing under agent/,
 * coordinator/, cli/ or shared/ imports it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { delimiter, join, resolve } from 'node:path';

/** The repository root (this file runs from dist/scripts/lib/). */
export const REPO_ROOT = resolve(__dirname, '..', '..', '..');
export const DIST = join(REPO_ROOT, 'dist');
/** The built programs. */
export const BIN = {
  agent: join(DIST, 'agent', 'main.js'),
  coordinator: join(DIST, 'coordinator', 'main.js'),
  clusterctl: join(DIST, 'cli', 'main.js'),
};

/** A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => res(port));
    });
  });
}

/** Whether `port` on 127.0.0.1 can be bound right now. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => res(true)));
  });
}

/** Whether a TCP connection to HOST:PORT opens within `timeoutMs`. */
export function tcpReachable(hostPort: string, timeoutMs: number): Promise<boolean> {
  const i = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(hostPort.slice(i + 1));
  return new Promise((res) => {
    const sock = connect({ host, port });
    const t = setTimeout(() => { sock.destroy(); res(false); }, timeoutMs);
    sock.once('connect', () => { clearTimeout(t); sock.destroy(); res(true); });
    sock.once('error', () => { clearTimeout(t); res(false); });
  });
}

/** The etcd binary: $ETCD_BIN, else `etcd` on PATH, else /usr/bin/etcd (Debian's etcd-server). */
export function findEtcd(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const candidates = [env.ETCD_BIN, ...(env.PATH ?? '').split(delimiter).filter((d) => d !== '').map((d) => join(d, 'etcd')), '/usr/bin/etcd'];
  return candidates.find((c): c is string => !!c && existsSync(c));
}

export interface EtcdSpawnOptions {
  bin: string;
  name: string;
  dataDir: string;
  clientPort: number;
  peerPort: number;
  /** File that receives etcd's output (appended). */
  logFile: string;
  /** More flags (e.g. a short heartbeat for tests). */
  extraArgs?: readonly string[];
  /** A new process group (dev-cluster: Ctrl-C reaches only the supervisor). */
  detached?: boolean;
}

/** Starts a one-member etcd on loopback ports; returns the child and its client URL. */
export function spawnEtcd(o: EtcdSpawnOptions): { proc: ChildProcess; url: string; endpoint: string } {
  const url = `http://127.0.0.1:${o.clientPort}`;
  const peer = `http://127.0.0.1:${o.peerPort}`;
  const out = openSync(o.logFile, 'a');
  const proc = spawn(o.bin, [
    '--name', o.name, '--data-dir', o.dataDir,
    '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `${o.name}=${peer}`,
    '--log-level', 'warn',
    ...(o.extraArgs ?? []),
  ], { stdio: ['ignore', out, out], detached: o.detached ?? false });
  closeSync(out);
  return { proc, url, endpoint: `127.0.0.1:${o.clientPort}` };
}

/** Whether the etcd at `url` says it is healthy (GET /health: a leader and a quorum). */
export async function etcdHealthy(url: string, timeoutMs = 2000): Promise<boolean> {
  try {
    const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(timeoutMs) });
    return r.ok && ((await r.json()) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

export function isRunning(proc: ChildProcess): boolean {
  return proc.exitCode === null && proc.signalCode === null;
}

/** Resolves when `proc` has exited (at once if it already has). */
export function exited(proc: ChildProcess): Promise<void> {
  if (!isRunning(proc)) return Promise.resolve();
  return new Promise((res) => proc.once('exit', () => res()));
}

/** SIGTERM, then SIGKILL after `graceMs` (calling `onKill` first); resolves once it exited. */
export async function stopChild(proc: ChildProcess, graceMs: number, onKill?: () => void): Promise<void> {
  if (!isRunning(proc)) return;
  const done = exited(proc);
  proc.kill('SIGTERM');
  const timer = setTimeout(() => {
    onKill?.();
    proc.kill('SIGKILL');
  }, graceMs);
  await done;
  clearTimeout(timer);
}

/** The last `lines` lines of a log file ('' when it cannot be read). */
export function tailFile(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
