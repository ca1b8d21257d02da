/**
 * The agent's identity in the cluster: its key, its certificate and the cluster CA, kept in
 * `<state-dir>/pki/` (node.key mode 0600, node.crt, ca.crt; the directory 0700).
 *
 * - First start: no usable certificate there, so the agent joins with a token. It makes its key
 *   on this machine (the key never leaves it), finds the leader, takes the CA from the TLS
 *   handshake only if its public-key hash is the one the token pins (fetchPinnedCa: a man in the
 *   middle with another CA is refused before the token is sent), then calls PkiService.Join over
 *   TLS that trusts only that CA and only a coordinator-role server certificate.
 * - Every later start uses the stored files; no token is needed.
 * - Renewal: at two thirds of the certificate's life a new key and CSR go to PkiService.Renew
 *   over the agent's own mutual TLS; the new pair replaces the old atomically and listeners
 *   (the coordinator link) reconnect with it. A failed renewal is logged and retried with backoff.
 *
 * The stream (coordinator-link.ts) takes its TLS identity from a `CredentialSource`: this
 * file's NodeCertificate for the daemon, `StaticCredentials` for a benchmark that runs many
 * agents in one process with certificates issued from the CA directly.
 */
import type * as grpc from '@grpc/grpc-js';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { CertificateResponse__Output } from '../generated/cluster/v1/CertificateResponse';
import type { PkiServiceClient } from '../generated/cluster/v1/PkiService';
import { Backoff } from '../shared/backoff';
import { systemClock, type Clock, type Timer } from '../shared/clock';
import { ClusterError, UnauthenticatedError, UnavailableError, errorMessage, fromGrpcError } from '../shared/errors';
import type { Logger } from '../shared/logger';
import { clientCredentials, CLUSTER_CHANNEL_OPTIONS, fetchPinnedCa, parseJoinToken, renewalTime, verifyIssuedBy } from '../shared/pki';
import { createKeyAndCsr } from '../shared/pki/csr';
import { loadServiceClient } from '../shared/proto';
import type { LeaderSource } from './leader-discovery';

/** What one mutual-TLS client needs: the CA it trusts, and its own certificate and key (PEM). */
export interface TlsIdentity {
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** Where the coordinator link gets its TLS identity, and hears when it changes (renewal). */
export interface CredentialSource {
  current(): TlsIdentity;
  /** Called with every new identity. Returns an unsubscribe function. */
  subscribe(listener: (identity: TlsIdentity) => void): () => void;
}

/** A fixed identity (benchmarks and in-process tests: certificates issued from the CA directly). */
export class StaticCredentials implements CredentialSource {
  constructor(private readonly identity: TlsIdentity) {}
  current(): TlsIdentity { return this.identity; }
  subscribe(): () => void { return () => undefined; }
}

/** The agent cannot get an identity without an operator: the message says what to do. The daemon exits non-zero. */
export class NotJoinedError extends ClusterError {}

export const NOT_JOINED_HINT = 'this agent has not joined the cluster: start it once with --join-token (clusterctl token create prints one)';

/** The files in `<state-dir>/pki/`. */
export class NodeCertificateFiles {
  readonly dir: string;
  readonly keyFile: string;
  readonly certFile: string;
  readonly caFile: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'pki');
    this.keyFile = join(this.dir, 'node.key');
    this.certFile = join(this.dir, 'node.crt');
    this.caFile = join(this.dir, 'ca.crt');
  }

  /**
   * The stored identity when it is usable for `nodeId` at `now` (issued by the stored CA, valid,
   * an agent certificate for this node, key belonging to it); otherwise `problem` says why not.
   */
  async read(nodeId: string, now: Date): Promise<{ identity: TlsIdentity; storedAt: number } | { problem: string }> {
    let keyPem: string;
    let certPem: string;
    let caPem: string;
    let storedAt: number;
    try {
      [keyPem, certPem, caPem] = await Promise.all([this.keyFile, this.certFile, this.caFile].map((f) => fs.readFile(f, 'utf8')));
      storedAt = (await fs.stat(this.certFile)).mtimeMs;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { problem: `no certificate in ${this.dir}` };
      return { problem: `cannot read ${this.dir}: ${errorMessage(err)}` };
    }
    const identity = { keyPem, certPem, caPem };
    const problem = checkIdentity(identity, nodeId, now);
    if (!problem) return { identity, storedAt };
    // A renewal cut off between renaming the new key and the new certificate: finish it.
    const pending = await fs.readFile(`${this.certFile}.tmp`, 'utf8').catch(() => undefined);
    if (pending !== undefined && checkIdentity({ ...identity, certPem: pending }, nodeId, now) === undefined) {
      await fs.rename(`${this.certFile}.tmp`, this.certFile);
      return { identity: { ...identity, certPem: pending }, storedAt: Date.now() };
    }
    return { problem: `the certificate in ${this.dir} cannot be used: ${problem}` };
  }

  /**
   * Replaces the stored identity. Each file is written to a temporary name (fsynced) and renamed,
   * the key before the certificate; `read` refuses a key that does not belong to the
   * certificate, and completes a rename a crash cut off between the two.
   */
  async write(identity: TlsIdentity): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    await fs.chmod(this.dir, 0o700);
    const files: [string, string, number][] = [[this.caFile, identity.caPem, 0o644], [this.keyFile, identity.keyPem, 0o600], [this.certFile, identity.certPem, 0o644]];
    // Every new file complete on disk before the first rename.
    for (const [path, content, mode] of files) {
      const fh = await fs.open(`${path}.tmp`, 'w', mode);
      try {
        await fh.writeFile(content);
        await fh.chmod(mode);
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    for (const [path] of files) await fs.rename(`${path}.tmp`, path);
  }
}

/** Why `identity` is not a usable agent identity for `nodeId` (undefined: it is). */
export function checkIdentity(identity: TlsIdentity, nodeId: string, now: Date = new Date()): string | undefined {
  try {
    const peer = verifyIssuedBy(identity.certPem, identity.caPem, now);
    if (peer.role !== 'agent') return `it is a ${peer.role} certificate, not an agent's`;
    if (peer.name !== nodeId) return `it is for node ${peer.name}, not ${nodeId}`;
    const fromKey = createPublicKey(createPrivateKey(identity.keyPem)).export({ type: 'spki', format: 'der' });
    if (!fromKey.equals(new X509Certificate(identity.certPem).publicKey.export({ type: 'spki', format: 'der' }))) return 'the key does not belong to the certificate';
    return undefined;
  } catch (err) {
    return errorMessage(err);
  }
}

/**
 * When to renew: two thirds of the certificate's life (renewalTime), counted from when this agent
 * stored it when that is later. The CA back-dates notBefore for clock skew, which for a short
 * validity would put two thirds before the certificate was even issued.
 */
export function renewalDue(certPem: string, storedAt: number): number {
  const notAfter = Date.parse(new X509Certificate(certPem).validTo);
  return Math.max(renewalTime(certPem).getTime(), storedAt + Math.floor(((notAfter - storedAt) * 2) / 3));
}

function pkiClient(address: string, credentials: grpc.ChannelCredentials): PkiServiceClient {
  return new (loadServiceClient('PkiService'))(address, credentials, { ...CLUSTER_CHANNEL_OPTIONS });
}

function call<T>(fn: (deadline: grpc.Deadline, cb: (err: grpc.ServiceError | null, res?: T) => void) => void, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    fn(new Date(Date.now() + timeoutMs), (err, res) => (err || res === undefined ? reject(fromGrpcError(err ?? new Error('empty response'))) : resolve(res)));
  });
}

/** Checks what the coordinator issued: for this node, by the pinned CA, for the key made here. */
function acceptIssued(res: CertificateResponse__Output, caPem: string, keyPem: string, nodeId: string): TlsIdentity {
  // The CA the agent pinned (or already trusts) stays the anchor: a response naming another CA is not believed.
  const identity = { caPem, certPem: res.certificate, keyPem };
  const problem = checkIdentity(identity, nodeId);
  if (problem) throw new UnauthenticatedError(`the coordinator returned a certificate this agent cannot use: ${problem}`);
  return identity;
}

/** Whether a failed call is worth trying again (the coordinator is away or busy) rather than an operator's problem. */
function transient(err: ClusterError): boolean {
  return err.retryable;
}

export interface NodeCertificateOptions {
  stateDir: string;
  nodeId: string;
  /**
   * The join token, asked for only when a join is needed (so a joined agent starts even if its
   * token file is gone); undefined = none given; a throw says why it cannot be read.
   */
  joinToken?: () => string | undefined;
  leaders: LeaderSource;
  logger: Logger;
  /** Deadline of one Join/Renew call and of one TLS probe. @default 10000 */
  callTimeoutMs?: number;
  /** Retry bounds of join and renewal attempts. @default 1 s .. 60 s */
  backoff?: { initialMs: number; maxMs: number };
  clock?: Clock;
  random?: () => number;
}

/** Node's timers take at most 2^31-1 ms; a 90-day certificate renews 60 days out, so wait in steps. */
const MAX_TIMER_MS = 6 * 60 * 60 * 1000;

/** The daemon's identity: loaded (or obtained by joining) at start, renewed before it expires. */
export class NodeCertificate implements CredentialSource {
  private identity: TlsIdentity;
  private storedAt: number;
  private readonly listeners = new Set<(identity: TlsIdentity) => void>();
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private timer?: Timer;
  private stopped = false;
  private renewing?: Promise<void>;

  private constructor(private readonly o: NodeCertificateOptions, private readonly files: NodeCertificateFiles, loaded: { identity: TlsIdentity; storedAt: number }) {
    this.identity = loaded.identity;
    this.storedAt = loaded.storedAt;
    this.log = o.logger.child({ component: 'node-certificate' });
    this.clock = o.clock ?? systemClock;
    this.backoff = new Backoff({ ...(o.backoff ?? { initialMs: 1000, maxMs: 60_000 }), random: o.random });
  }

  /**
   * The stored identity, or a new one from joining with the token. Throws NotJoinedError (no
   * token, or the cluster refused it: the message says why and what to do) or an
   * UnauthenticatedError (the coordinator does not present the CA the token pins).
   */
  static async open(o: NodeCertificateOptions, signal?: AbortSignal): Promise<NodeCertificate> {
    const files = new NodeCertificateFiles(o.stateDir);
    const stored = await files.read(o.nodeId, new Date((o.clock ?? systemClock).now()));
    if ('identity' in stored) return new NodeCertificate(o, files, stored);
    let token: string | undefined;
    try {
      token = o.joinToken?.();
    } catch (err) {
      throw new NotJoinedError(`${stored.problem}, and the join token cannot be read: ${errorMessage(err)}`);
    }
    if (token === undefined) throw new NotJoinedError(`${NOT_JOINED_HINT} (${stored.problem})`);
    o.logger.info('joining the cluster with a token', { reason: stored.problem });
    const identity = await joinCluster(o, token, signal);
    await files.write(identity);
    const cert = new X509Certificate(identity.certPem);
    o.logger.info('joined the cluster', { serial: cert.serialNumber.toLowerCase(), notAfter: new Date(cert.validTo).toISOString(), dir: files.dir });
    return new NodeCertificate(o, files, { identity, storedAt: (o.clock ?? systemClock).now() });
  }

  current(): TlsIdentity {
    return this.identity;
  }

  subscribe(listener: (identity: TlsIdentity) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** When the current certificate is due for renewal (ms since the epoch). */
  get renewAt(): number {
    return renewalDue(this.identity.certPem, this.storedAt);
  }

  /** Schedules renewal of the current certificate. */
  start(): void {
    if (this.stopped) return;
    this.schedule(this.renewAt - this.clock.now());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    await this.renewing;
  }

  private schedule(delayMs: number): void {
    this.timer?.cancel();
    if (this.stopped) return;
    const step = Math.min(Math.max(0, delayMs), MAX_TIMER_MS);
    this.timer = this.clock.setTimeout(() => {
      if (this.clock.now() < this.renewAt && delayMs > step) {
        this.schedule(this.renewAt - this.clock.now());
        return;
      }
      this.renewing = this.renewOnce().finally(() => { this.renewing = undefined; });
    }, step);
  }

  private async renewOnce(): Promise<void> {
    try {
      await this.renew();
      this.backoff.reset();
      this.schedule(this.renewAt - this.clock.now());
    } catch (err) {
      const retryInMs = this.backoff.next();
      const notAfter = new Date(new X509Certificate(this.identity.certPem).validTo).toISOString();
      this.log.warn('certificate renewal failed', { error: errorMessage(err), retryInMs, notAfter });
      this.schedule(retryInMs);
    }
  }

  /** One renewal: new key and CSR, Renew over mutual TLS with the current identity, store, tell listeners. */
  async renew(): Promise<void> {
    const leader = this.o.leaders.current();
    if (!leader) {
      await this.o.leaders.refresh();
      throw new UnavailableError('no coordinator leader known to renew with');
    }
    const { keyPem, csrPem } = await createKeyAndCsr(this.o.nodeId);
    const current = this.identity;
    const client = pkiClient(leader.address, clientCredentials({ caPem: current.caPem, certPem: current.certPem, keyPem: current.keyPem }));
    let res: CertificateResponse__Output;
    try {
      res = await call<CertificateResponse__Output>((deadline, cb) => client.Renew({ csr: csrPem }, { deadline }, cb), this.o.callTimeoutMs ?? 10_000);
    } finally {
      client.close();
    }
    const next = acceptIssued(res, current.caPem, keyPem, this.o.nodeId);
    if (this.stopped) return;
    await this.files.write(next);
    this.identity = next;
    this.storedAt = this.clock.now();
    this.log.info('certificate renewed', { serial: res.serial, notAfter: res.notAfter });
    for (const l of [...this.listeners]) l(next);
  }
}

/** Waits until the leader source names a coordinator. */
async function leaderAddress(leaders: LeaderSource, backoff: Backoff, signal?: AbortSignal): Promise<string> {
  for (;;) {
    if (signal?.aborted) throw new UnavailableError('agent shutting down');
    const l = leaders.current();
    if (l) return l.address;
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, backoff.next());
      const unsubscribe = leaders.subscribe((x) => { if (x) done(); });
      function done(): void { clearTimeout(t); unsubscribe(); signal?.removeEventListener('abort', done); resolve(); }
      signal?.addEventListener('abort', done, { once: true });
    });
    if (!leaders.current()) await leaders.refresh();
  }
}

/**
 * Joins: pins the CA the token names, then Join over TLS trusting only it. Retries while the
 * coordinator cannot be reached; a refusal (bad, expired, used-up, revoked token; node already
 * enrolled) or a coordinator that does not present the pinned CA ends the attempt with the reason.
 */
async function joinCluster(o: NodeCertificateOptions, tokenText: string, signal?: AbortSignal): Promise<TlsIdentity> {
  let token;
  try {
    token = parseJoinToken(tokenText);
  } catch (err) {
    throw new NotJoinedError(`the join token cannot be used: ${errorMessage(err)}`);
  }
  const timeoutMs = o.callTimeoutMs ?? 10_000;
  const backoff = new Backoff({ ...(o.backoff ?? { initialMs: 1000, maxMs: 60_000 }), random: o.random });
  const { keyPem, csrPem } = await createKeyAndCsr(o.nodeId);
  let lastProblem: string | undefined;
  for (;;) {
    const address = await leaderAddress(o.leaders, backoff, signal);
    try {
      const caPem = await fetchPinnedCa(address, token.caHash, timeoutMs);
      const client = pkiClient(address, clientCredentials({ caPem }));
      try {
        const res = await call<CertificateResponse__Output>((deadline, cb) => client.Join({ token: tokenText, nodeId: o.nodeId, csr: csrPem }, { deadline }, cb), timeoutMs);
        return acceptIssued(res, caPem, keyPem, o.nodeId);
      } finally {
        client.close();
      }
    } catch (err) {
      const e = err instanceof ClusterError ? err : fromGrpcError(err);
      if (e instanceof UnauthenticatedError && /does not present the CA this join token pins|is not a coordinator of the pinned cluster/.test(e.message)) {
        throw new UnauthenticatedError(`refusing to join through ${address}: ${e.message}`);
      }
      if (!transient(e)) throw new NotJoinedError(`the cluster refused this agent's join: ${e.message}`);
      const retryInMs = backoff.next();
      if (e.message !== lastProblem) o.logger.warn('cannot join yet; retrying', { address, error: e.message, retryInMs });
      lastProblem = e.message;
      await o.leaders.refresh();
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, retryInMs);
        function done(): void { clearTimeout(t); signal?.removeEventListener('abort', done); resolve(); }
        signal?.addEventListener('abort', done, { once: true });
      });
      if (signal?.aborted) throw new UnavailableError('agent shutting down before it could join');
    }
  }
}
