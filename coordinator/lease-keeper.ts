/**
 * The election lease's keepalives, sent from a worker thread with its own etcd connection, so a
 * busy main event loop does not cost the leadership (issue 12 §2: with the 2 s TTL a keepalive
 * is due every 667 ms, and hundreds of agents' TLS handshakes and hellos at once blocked the
 * loop for longer than the TTL: the leader lost its lease in the middle of a re-attach storm).
 *
 * Fencing is unchanged: the main thread reads the send time of the last keepalive etcd
 * acknowledged from shared memory, and leads only while that is younger than the TTL (etcd
 * cannot expire the lease before send time + TTL); every leader-only write still carries the
 * fence compare.
 *
 * A watchdog keeps a hung leader from leading forever: the main thread writes a heartbeat into
 * shared memory every `heartbeatMs`, and the worker sends no keepalive while that heartbeat is
 * older than `stallLimitMs`. A loop blocked past the limit therefore loses its lease (within
 * the limit plus the TTL) and another replica takes over; a shorter block costs nothing.
 *
 * The worker runs a program file with `workerData.role === LEASE_KEEPER_ROLE`: the coordinator's
 * main.ts (so the packaged single-file bundle works) or, when no file is given (in-process
 * tests), this module's own file, which then serves on load (the end of this file).
 */
import { EventEmitter } from 'node:events';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createEtcdClient, type EtcdTls } from '../shared/etcd';
import { errorMessage } from '../shared/errors';

export const LEASE_KEEPER_ROLE = 'election-lease-keeper';

/** Slots of the shared BigInt64Array (epoch ms, or a generation number). */
const HEARTBEAT = 0;
/** Generation of the lease the main thread wants kept alive; 0: none. */
const GENERATION = 1;
/** Send time of the last keepalive etcd acknowledged for GENERATION (or the grant's send time). */
const ACK_SENT_AT = 2;
const SLOTS = 3;

export interface LeaseKeeperWorkerData {
  role: typeof LEASE_KEEPER_ROLE;
  /** 'module': this file is the worker's entry (it serves on load); 'program': the entry calls serveLeaseKeeper(). */
  entry: 'module' | 'program';
  shared: SharedArrayBuffer;
  endpoints: string[];
  tls?: EtcdTls;
  ttlMs: number;
  intervalMs: number;
  stallLimitMs: number;
}

type ToWorker = { kind: 'keep'; generation: number; leaseId: string } | { kind: 'drop' } | { kind: 'close' };
type FromWorker =
  | { kind: 'ready' }
  | { kind: 'ok'; generation: number }
  | { kind: 'failed'; generation: number; error: string }
  | { kind: 'expired'; generation: number }
  | { kind: 'stalled'; generation: number; heartbeatAgeMs: number }
  | { kind: 'closed' };

export function isLeaseKeeperWorker(data: unknown): data is LeaseKeeperWorkerData {
  return typeof data === 'object' && data !== null && (data as { role?: unknown }).role === LEASE_KEEPER_ROLE;
}

export interface LeaseKeeperOptions {
  endpoints: readonly string[];
  tls?: EtcdTls;
  ttlMs: number;
  intervalMs: number;
  /** The worker stops renewing once the main loop's heartbeat is older than this. */
  stallLimitMs: number;
  /** How often the main loop writes its heartbeat. @default 250 */
  heartbeatMs?: number;
  /** The worker's program file (the coordinator's main.js); default: this module's file. */
  file?: string;
}

export interface LeaseKeeperEvents {
  /** etcd acknowledged a keepalive after a failure (or the first one). */
  ok: [];
  failed: [error: string];
  /** etcd says the lease is gone (TTL 0 or unknown lease): campaign again. */
  expired: [];
  /** The worker paused renewing: the main loop has not written its heartbeat for this long. */
  stalled: [heartbeatAgeMs: number];
}

/** The main thread's side: starts the worker, says which lease to keep, reads the last acknowledged send time. */
export class LeaseKeeper extends EventEmitter<LeaseKeeperEvents> {
  private readonly slots: BigInt64Array;
  private readonly shared = new SharedArrayBuffer(SLOTS * BigInt64Array.BYTES_PER_ELEMENT);
  private worker?: Worker;
  private heartbeat?: NodeJS.Timeout;
  private generation = 0;

  constructor(private readonly options: LeaseKeeperOptions) {
    super();
    this.slots = new BigInt64Array(this.shared);
  }

  /** Starts the worker; resolves once it has loaded its modules and connected nothing yet. */
  async start(): Promise<void> {
    if (this.worker) return;
    const o = this.options;
    const data: LeaseKeeperWorkerData = {
      role: LEASE_KEEPER_ROLE, entry: o.file ? 'program' : 'module', shared: this.shared, endpoints: [...o.endpoints],
      ...(o.tls ? { tls: o.tls } : {}), ttlMs: o.ttlMs, intervalMs: o.intervalMs, stallLimitMs: o.stallLimitMs,
    };
    this.beat();
    const worker = new Worker(o.file ?? __filename, { workerData: data });
    worker.unref();
    this.worker = worker;
    const ready = new Promise<void>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the election keepalive worker exited with code ${code}`)));
      worker.on('message', (m: FromWorker) => {
        if (m.kind === 'ready') resolve();
      });
    });
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    // After start-up an error or exit is reported as failed keepalives: leadership then lapses on time.
    worker.on('error', (err) => this.emit('failed', `election keepalive worker failed: ${errorMessage(err)}`));
    await ready;
    this.heartbeat = setInterval(() => this.beat(), this.options.heartbeatMs ?? 250);
    this.heartbeat.unref();
  }

  /** Keeps `leaseId` alive from now on; `grantSentAt` (epoch ms) is when its grant was sent. */
  keep(leaseId: string, grantSentAt: number): void {
    this.generation++;
    Atomics.store(this.slots, GENERATION, BigInt(this.generation));
    Atomics.store(this.slots, ACK_SENT_AT, BigInt(Math.floor(grantSentAt)));
    this.beat();
    this.post({ kind: 'keep', generation: this.generation, leaseId });
  }

  /** Stops renewing the current lease (resigning or campaigning again). */
  drop(): void {
    Atomics.store(this.slots, GENERATION, 0n);
    this.post({ kind: 'drop' });
  }

  /**
   * Epoch ms at which the last acknowledged keepalive of the kept lease was sent; -Infinity when
   * no lease is kept. (A late write of a dropped lease's worker can only lower this value: its
   * keepalive was sent before the drop, hence before the next grant.)
   */
  lastAckSentAt(): number {
    if (Atomics.load(this.slots, GENERATION) === 0n) return Number.NEGATIVE_INFINITY;
    return Number(Atomics.load(this.slots, ACK_SENT_AT));
  }

  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    const worker = this.worker;
    this.worker = undefined;
    if (!worker) return;
    Atomics.store(this.slots, GENERATION, 0n);
    const closed = new Promise<void>((resolve) => {
      worker.on('message', (m: FromWorker) => { if (m.kind === 'closed') resolve(); });
      worker.once('exit', () => resolve());
    });
    worker.postMessage({ kind: 'close' } satisfies ToWorker);
    const timer = setTimeout(() => void worker.terminate(), 2000);
    await closed;
    clearTimeout(timer);
    await worker.terminate();
  }

  private beat(): void {
    Atomics.store(this.slots, HEARTBEAT, BigInt(Date.now()));
  }

  private post(message: ToWorker): void {
    this.worker?.postMessage(message);
  }

  private onMessage(m: FromWorker): void {
    // Reports about a lease we no longer keep are history.
    if ('generation' in m && m.generation !== this.generation) return;
    switch (m.kind) {
      case 'ok': this.emit('ok'); break;
      case 'failed': this.emit('failed', m.error); break;
      case 'expired': this.emit('expired'); break;
      case 'stalled': this.emit('stalled', m.heartbeatAgeMs); break;
      default: break;
    }
  }
}

let serving = false;

/** The worker thread: keeps the lease it is told about alive, every interval, unless the main loop stalled. Once per thread. */
export function serveLeaseKeeper(): void {
  const port = parentPort;
  if (!port || !isLeaseKeeperWorker(workerData)) throw new Error('serveLeaseKeeper runs in a lease keeper worker thread');
  if (serving) return;
  serving = true;
  const data = workerData;
  const slots = new BigInt64Array(data.shared);
  // This thread is its own composition root: a client cannot be shared across threads.
  const client = createEtcdClient({ endpoints: data.endpoints, dedicatedConnection: true, ...(data.tls ? { tls: data.tls } : {}) });
  let current: { generation: number; leaseId: string } | undefined;
  let wake: (() => void) | undefined;
  let closing = false;
  const send = (m: FromWorker): void => port.postMessage(m);

  port.on('message', (m: ToWorker) => {
    if (m.kind === 'keep') current = { generation: m.generation, leaseId: m.leaseId };
    else if (m.kind === 'drop') current = undefined;
    else closing = true;
    wake?.();
  });

  const sleep = (ms: number): Promise<void> => new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void { clearTimeout(timer); wake = undefined; resolve(); }
    wake = done;
  });

  /** One keepalive; resolves with the TTL etcd answered ('0': the lease is gone). */
  const keepaliveOnce = async (leaseId: string, deadlineMs: number): Promise<string> => {
    const stream = await client.leaseClient.leaseKeepAlive({ deadline: new Date(Date.now() + deadlineMs) });
    try {
      return await new Promise<string>((resolve, reject) => {
        stream.on('data', (res: { TTL: string }) => resolve(res.TTL));
        stream.on('error', reject);
        stream.on('end', () => reject(new Error('keepalive stream ended without an answer')));
        stream.write({ ID: leaseId });
      });
    } finally {
      stream.end();
    }
  };

  const run = async (): Promise<void> => {
    let lastSentAt = 0;
    let failing = true;
    let stalledSaid = false;
    let kept: number | undefined;
    while (!closing) {
      const lease = current;
      if (!lease) {
        await sleep(60_000);
        continue;
      }
      if (lease.generation !== kept) {
        // A new lease: its grant was just sent, the first keepalive is due one interval later.
        kept = lease.generation;
        lastSentAt = Date.now();
        failing = true;
        stalledSaid = false;
      }
      await sleep(Math.max(0, lastSentAt + data.intervalMs - Date.now()));
      if (closing || current?.generation !== lease.generation) continue;
      const sentAt = Date.now();
      lastSentAt = sentAt;
      const heartbeatAgeMs = sentAt - Number(Atomics.load(slots, HEARTBEAT));
      if (heartbeatAgeMs > data.stallLimitMs) {
        // The main loop has not run for too long: let the lease run out, so a hung leader stops leading.
        if (!stalledSaid) send({ kind: 'stalled', generation: lease.generation, heartbeatAgeMs });
        stalledSaid = true;
        continue;
      }
      stalledSaid = false;
      // As long as an answer can still extend the lease (at most two intervals, so a dead
      // connection is given up in time to try again).
      const left = Number(Atomics.load(slots, ACK_SENT_AT)) + data.ttlMs - sentAt;
      const waitMs = Math.max(data.intervalMs, Math.min(2 * data.intervalMs, left));
      try {
        const ttl = await keepaliveOnce(lease.leaseId, waitMs);
        if (ttl === '0') {
          send({ kind: 'expired', generation: lease.generation });
          if (current?.generation === lease.generation) current = undefined;
          continue;
        }
      } catch (err) {
        if (/requested lease not found/i.test(errorMessage(err))) {
          send({ kind: 'expired', generation: lease.generation });
          if (current?.generation === lease.generation) current = undefined;
          continue;
        }
        failing = true;
        send({ kind: 'failed', generation: lease.generation, error: errorMessage(err) });
        continue;
      }
      if (Atomics.load(slots, GENERATION) === BigInt(lease.generation)) {
        // Only ever forward: an answer to an older keepalive must not pull the time back.
        const before = Atomics.load(slots, ACK_SENT_AT);
        if (BigInt(sentAt) > before) Atomics.compareExchange(slots, ACK_SENT_AT, before, BigInt(sentAt));
      }
      if (failing) send({ kind: 'ok', generation: lease.generation });
      failing = false;
    }
  };

  send({ kind: 'ready' });
  run().catch((err: unknown) => send({ kind: 'failed', generation: current?.generation ?? 0, error: errorMessage(err) }))
    .finally(() => {
      client.close();
      send({ kind: 'closed' });
      port.close();
    });
}

if (!isMainThread && isLeaseKeeperWorker(workerData) && workerData.entry === 'module') serveLeaseKeeper();
