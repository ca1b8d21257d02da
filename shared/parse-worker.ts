/**
 * Parsing bundles and cluster files off the event loop. A YAML parse within the input bounds
 * (shared/input-limits.ts) still costs 0.1–0.5 s for the largest accepted documents on a busy
 * 2-core box (bench/edge-bench.ts); on the coordinator's one event loop that is 0.1–0.5 s in
 * which no other call, keepalive or election renewal runs. So the coordinator parses in one
 * worker thread (the same program file, started with `PARSE_WORKER_DATA`): the loop only
 * copies the text there and the plain result back.
 *
 * A parse that takes longer than the time limit is stopped (the worker is terminated and a
 * new one started on the next request) and refused with INVALID_ARGUMENT; requests queued
 * behind it are answered UNAVAILABLE (retryable). Without `startParseWorker` (in-process
 * tests, the CLI) the same functions parse on the calling thread.
 */
import { parentPort, Worker } from 'node:worker_threads';
import { BundleValidationError } from './bundle/validate-bundle';
import { parseBundle } from './bundle/load-bundle';
import type { Bundle } from './bundle/types';
import { parseClusterFile, type ClusterFile } from './cluster-file';
import { ClusterError, InternalError, InvalidArgumentError, UnavailableError, errorMessage } from './errors';

/** `workerData` that makes a program's entry file serve parse requests instead of running. */
export const PARSE_WORKER_DATA = { role: 'cluster-parse-worker' } as const;

export function isParseWorker(data: unknown): boolean {
  return typeof data === 'object' && data !== null && (data as { role?: unknown }).role === PARSE_WORKER_DATA.role;
}

type ParseKind = 'bundle' | 'cluster-file';
interface ParseRequest { id: number; kind: ParseKind; text: string; origin: string }
interface WireError { name: string; code: number; message: string; problems?: string[]; bundleName?: string }
type ParseReply = { id: number; value: unknown } | { id: number; error: WireError } | { ready: true };

function parseOnThisThread(kind: ParseKind, text: string, origin: string): unknown {
  return kind === 'bundle' ? parseBundle(text, origin) : parseClusterFile(text, { source: origin });
}

function toWire(err: unknown): WireError {
  if (err instanceof BundleValidationError) return { name: err.name, code: err.code, message: err.message, problems: err.problems, ...(err.bundleName ? { bundleName: err.bundleName } : {}) };
  if (err instanceof ClusterError) return { name: err.name, code: err.code, message: err.message };
  return { name: 'Error', code: -1, message: errorMessage(err) };
}

function fromWire(e: WireError): Error {
  if (e.name === 'BundleValidationError' && e.problems) return new BundleValidationError(e.problems, e.bundleName);
  if (e.name === 'InvalidArgumentError') return new InvalidArgumentError(e.message);
  return new InternalError(`parse failed: ${e.message}`);
}

/** The worker side: answers each request with the parsed value or the error it threw. */
export function serveParseRequests(): void {
  const port = parentPort;
  if (!port) throw new Error('serveParseRequests runs in a worker thread');
  // The program's modules are loaded: requests may start their clocks.
  port.postMessage({ ready: true } satisfies ParseReply);
  port.on('message', (r: ParseRequest) => {
    let reply: ParseReply;
    try {
      reply = { id: r.id, value: parseOnThisThread(r.kind, r.text, r.origin) };
    } catch (err) {
      reply = { id: r.id, error: toWire(err) };
    }
    port.postMessage(reply);
  });
}

interface Pending { request: ParseRequest; resolve: (v: unknown) => void; reject: (e: Error) => void; timer?: NodeJS.Timeout }

class ParseWorkerPool {
  private worker: Worker | undefined;
  /** Whether the worker has loaded the program (requests wait until it has, without a clock). */
  private ready = false;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly file: string, private readonly timeLimitMs: number) {}

  run(kind: ParseKind, text: string, origin: string): Promise<unknown> {
    const worker = this.ensure();
    const request: ParseRequest = { id: this.nextId++, kind, text, origin };
    return new Promise((resolve, reject) => {
      const p: Pending = { request, resolve, reject };
      this.pending.set(request.id, p);
      if (this.ready) this.send(worker, p);
    });
  }

  close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this.failAll(new UnavailableError('the coordinator is shutting down'));
    return w ? w.terminate().then(() => undefined) : Promise.resolve();
  }

  /** The worker, started when there is none (at start-up, and after one was stopped). */
  ensure(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(this.file, { workerData: PARSE_WORKER_DATA });
    w.unref();
    w.on('message', (reply: ParseReply) => {
      if ('ready' in reply) {
        if (this.worker !== w) return;
        this.ready = true;
        for (const p of this.pending.values()) this.send(w, p);
        return;
      }
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      clearTimeout(p.timer);
      if ('error' in reply) p.reject(fromWire(reply.error));
      else p.resolve(reply.value);
    });
    w.on('error', (err) => this.lost(w, `the parse worker failed: ${errorMessage(err)}`));
    w.on('exit', () => this.lost(w, 'the parse worker stopped'));
    this.worker = w;
    this.ready = false;
    return w;
  }

  /** Sends a request; the time limit counts from here (one queued behind a slow parse waits for it). */
  private send(w: Worker, p: Pending): void {
    if (p.timer) return;
    p.timer = setTimeout(() => this.stop(p.request.id, p.request.origin), this.timeLimitMs);
    w.postMessage(p.request);
  }

  /** The request ran past the limit: terminate the worker (the next request starts another). */
  private stop(id: number, origin: string): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.reject(new InvalidArgumentError(`the ${origin} took more than ${this.timeLimitMs / 1000} s to parse and was refused: make it smaller or simpler`));
    const w = this.worker;
    this.worker = undefined;
    this.failAll(new UnavailableError('a parse that ran too long was stopped while this one waited behind it; try again'));
    void w?.terminate();
  }

  private lost(w: Worker, why: string): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    this.failAll(new UnavailableError(`${why}; try again`));
  }

  private failAll(err: Error): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
  }
}

let pool: ParseWorkerPool | undefined;

/**
 * From now on, parse in a worker thread running `file` (the program's entry file, which must
 * call serveParseRequests when `isParseWorker(workerData)`).
 */
export function startParseWorker(file: string, timeLimitMs = 5_000): void {
  void pool?.close();
  pool = new ParseWorkerPool(file, timeLimitMs);
  pool.ensure();
}

export async function stopParseWorker(): Promise<void> {
  const p = pool;
  pool = undefined;
  await p?.close();
}

/** parseBundle, off the event loop once startParseWorker was called. */
export async function parseBundleOffLoop(text: string, origin = 'bundle'): Promise<Bundle> {
  return (pool ? await pool.run('bundle', text, origin) : parseOnThisThread('bundle', text, origin)) as Bundle;
}

/** parseClusterFile (no `file:` reads), off the event loop once startParseWorker was called. */
export async function parseClusterFileOffLoop(text: string, origin: string): Promise<ClusterFile> {
  return (pool ? await pool.run('cluster-file', text, origin) : parseOnThisThread('cluster-file', text, origin)) as ClusterFile;
}
