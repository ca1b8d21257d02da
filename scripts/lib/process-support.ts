/**
 * Process support for dev and test tooling (scripts/dev-cluster.ts and test/helpers): where
 * the built programs are, free loopback ports, finding and starting a one-member etcd, and
 * stopping a child with a grace time. Not product runtime: nothing under agent/,
 * coordinator/, cli/ or shared/ imports it.
 */
import { request as httpsRequest } from 'node:https';
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
  /**
   * TLS on the client and peer URLs with client-certificate auth (the CN is the etcd user):
   * the CA that issued etcd's certificate and every client's, and etcd's own certificate.
   */
  tls?: { caFile: string; certFile: string; keyFile: string };
}

/** Starts a one-member etcd on loopback ports; returns the child and its client URL. */
export function spawnEtcd(o: EtcdSpawnOptions): { proc: ChildProcess; url: string; endpoint: string } {
  const scheme = o.tls ? 'https' : 'http';
  const url = `${scheme}://127.0.0.1:${o.clientPort}`;
  const peer = `${scheme}://127.0.0.1:${o.peerPort}`;
  const tls = o.tls ? [
    '--client-cert-auth', '--trusted-ca-file', o.tls.caFile, '--cert-file', o.tls.certFile, '--key-file', o.tls.keyFile,
    '--peer-client-cert-auth', '--peer-trusted-ca-file', o.tls.caFile, '--peer-cert-file', o.tls.certFile, '--peer-key-file', o.tls.keyFile,
  ] : [];
  const out = openSync(o.logFile, 'a');
  const proc = spawn(o.bin, [
    '--name', o.name, '--data-dir', o.dataDir,
    '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `${o.name}=${peer}`,
    '--log-level', 'warn',
    ...tls,
    ...(o.extraArgs ?? []),
  ], { stdio: ['ignore', out, out], detached: o.detached ?? false });
  closeSync(out);
  return { proc, url, endpoint: `127.0.0.1:${o.clientPort}` };
}

/**
 * Whether the etcd at `url` says it is healthy (GET /health: a leader and a quorum). Over TLS
 * it presents `tls`'s client certificate (etcd with --client-cert-auth refuses a handshake
 * without one) and checks the name `etcd` that cluster-coordinator init's certificate carries.
 */
export async function etcdHealthy(url: string, timeoutMs = 2000, tls?: { caPem: string; certPem: string; keyPem: string }): Promise<boolean> {
  try {
    if (!tls) {
      const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(timeoutMs) });
      return r.ok && ((await r.json()) as { health?: string }).health === 'true';
    }
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(`${url}/health`, { ca: tls.caPem, cert: tls.certPem, key: tls.keyPem, timeout: timeoutMs, servername: 'etcd' }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => { text += d; });
        res.on('end', () => resolve(res.statusCode === 200 ? text : ''));
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end();
    });
    return (JSON.parse(body || '{}') as { health?: string }).health === 'true';
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
