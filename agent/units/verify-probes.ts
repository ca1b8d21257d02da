/**
 * Verify probes: checks of the *result* of a bundle rather than of one unit (is the service
 * answering?). A command's exit code, a TCP port accepting connections, an HTTP status, a
 * systemd unit being active. Each is bounded by its timeout. After an apply a probe is retried
 * until its timeout (a service just restarted needs a moment); a plain verify tries once.
 */
import { connect } from 'node:net';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { VerifyProbe } from '../../shared/bundle/types';
import { runShell } from './run-shell';
import type { UnitContext } from './unit';

export const DEFAULT_PROBE_TIMEOUT_MS = 5000;

export interface ProbeResult {
  id: string;
  ok: boolean;
  /** What was checked and what was found: `tcp 127.0.0.1:323: connection refused`. */
  detail: string;
  durationMs: number;
}

interface Attempt { ok: boolean; detail: string }

export function splitHostPort(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(hostPort.slice(i + 1)) };
}

function tcpAttempt(target: string, signal: AbortSignal): Promise<Attempt> {
  const { host, port } = splitHostPort(target);
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (a: Attempt): void => {
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      resolve(a);
    };
    const onAbort = (): void => done({ ok: false, detail: `tcp ${target}: no answer within the timeout` });
    signal.addEventListener('abort', onAbort, { once: true });
    sock.once('connect', () => done({ ok: true, detail: `tcp ${target}: open` }));
    sock.once('error', (err: NodeJS.ErrnoException) => done({ ok: false, detail: `tcp ${target}: ${err.code ?? err.message}` }));
  });
}

function httpAttempt(url: string, expect: number | undefined, signal: AbortSignal): Promise<Attempt> {
  return new Promise((resolve) => {
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, { method: 'GET', signal }, (res) => {
      res.resume();
      const code = res.statusCode ?? 0;
      const ok = expect !== undefined ? code === expect : code >= 200 && code < 400;
      resolve({ ok, detail: `http ${url}: status ${code}${ok ? '' : ` (want ${expect ?? '2xx or 3xx'})`}` });
    });
    req.once('error', (err: NodeJS.ErrnoException) => {
      resolve({ ok: false, detail: `http ${url}: ${signal.aborted ? 'no answer within the timeout' : (err.code ?? err.message)}` });
    });
    req.end();
  });
}

async function commandAttempt(cmd: string, expect: number, ctx: UnitContext, signal: AbortSignal): Promise<Attempt> {
  const r = await runShell(cmd, { cwd: ctx.root, env: ctx.env, signal, outputLimit: 4096 });
  if (r.aborted) return { ok: false, detail: `command "${cmd}": did not finish within the timeout` };
  const last = r.output.text.trimEnd().split('\n').pop() ?? '';
  const ok = r.exitCode === expect;
  return { ok, detail: `command "${cmd}": exit ${r.exitCode ?? r.signal ?? '?'}${ok ? '' : ` (want ${expect})${last ? `: ${last.slice(0, 200)}` : ''}`}` };
}

async function systemdAttempt(unit: string, ctx: UnitContext): Promise<Attempt> {
  const status = await (await ctx.systemd()).status(unit);
  const ok = status.activeState === 'active';
  return { ok, detail: `systemd ${unit}: ${status.activeState}${status.subState ? ` (${status.subState})` : ''}${status.loadState !== 'loaded' ? `, ${status.loadState}` : ''}` };
}

function attempt(probe: VerifyProbe, ctx: UnitContext, signal: AbortSignal): Promise<Attempt> {
  if ('command' in probe) return commandAttempt(probe.command, probe.expectExit ?? 0, ctx, signal);
  if ('tcp' in probe) return tcpAttempt(probe.tcp, signal);
  if ('http' in probe) return httpAttempt(probe.http, probe.expectStatus, signal);
  return systemdAttempt(probe.systemdActive, ctx);
}

/** Pause between tries of a probe with `retry`. @default 250 */
export const PROBE_RETRY_INTERVAL_MS = 250;

/**
 * The probe's own deadline joined with the caller's signal. Not `AbortSignal.any([…,
 * AbortSignal.timeout(ms)])`: on Node 20 a garbage collection can drop the timeout signal held
 * only by the composite (nodejs/node#57736), and a retrying probe then never times out, so a
 * health-gated upgrade hung in its soak. Here the timer is ours, held until `dispose`.
 */
export function probeDeadline(outer: AbortSignal, timeoutMs: number): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const onOuter = (): void => ac.abort(outer.reason);
  const timer = setTimeout(() => ac.abort(new Error(`probe timeout ${timeoutMs} ms`)), timeoutMs);
  if (outer.aborted) ac.abort(outer.reason);
  else outer.addEventListener('abort', onOuter, { once: true });
  return {
    signal: ac.signal,
    dispose: () => {
      clearTimeout(timer);
      outer.removeEventListener('abort', onOuter);
    },
  };
}

/** Sleeps `ms`, or less when `signal` aborts; leaves no listener behind. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Runs one probe within its timeout; with `retry`, tries again every `intervalMs` until it passes or time is up. */
export async function runProbe(probe: VerifyProbe, ctx: UnitContext, options: { retry?: boolean; intervalMs?: number } = {}): Promise<ProbeResult> {
  const started = Date.now();
  const timeoutMs = probe.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const deadline = probeDeadline(ctx.signal, timeoutMs);
  const signal = deadline.signal;
  let last: Attempt = { ok: false, detail: 'not run' };
  try {
    for (;;) {
      try {
        last = await attempt(probe, ctx, signal);
      } catch (err) {
        last = { ok: false, detail: err instanceof Error ? err.message : String(err) };
      }
      if (last.ok || !options.retry || signal.aborted) break;
      await pause(options.intervalMs ?? PROBE_RETRY_INTERVAL_MS, signal);
      if (signal.aborted) break;
    }
  } finally {
    deadline.dispose();
  }
  return { id: probe.id, ok: last.ok, detail: last.detail, durationMs: Date.now() - started };
}
