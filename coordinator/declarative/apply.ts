/**
 * Plan and apply of a cluster file against etcd (any replica: configuration is data the leader
 * acts on later, like a bundle push).
 *
 * `plan` reads everything at ONE revision and records the mod revision of every configuration
 * key it read (the bundle versions and groups the file names, the source files, the last
 * applied record; "0" = absent). `apply` plans again, refuses when any key the operator's plan
 * read has changed since (by the saved plan's exact revisions, or by `--plan-revision R`: a
 * key modified after R), and writes everything in ONE transaction guarded by the revisions it
 * read, with one event — so a concurrent change between plan and apply changes nothing.
 * Large applies (over etcd's 128-operation or ~1 MiB budget) push their new bundle versions
 * first (create-only, immutable, harmless alone), then groups and the record in one guarded
 * transaction. The applied document is kept at meta/last-applied: `apply` with no file
 * re-converges to it (Clusterlite's habit). With `rollout`, the nodes that plan counted out of
 * date then get their upgrade jobs (rollout.ts), from the same plan and snapshot the write was
 * guarded by.
 */
import type { Etcd3 } from 'etcd3';
import {
  CAS_LOST, ConflictError, FailedPreconditionError, InvalidArgumentError, retryOnConflict, type Clock, type Keyspace,
} from '../../shared';
import { canonicalJson } from '../../shared/bundle';
import { bundleDigest, missingSourcesError, pinSources, sourceNames, type BundleInfoValue } from '../config/source-pins';
import { readPrefixes, type Compare, type TxnOp } from '../etcd-txn';
import type { EventLog } from '../event-log';
import { DEFAULT_SETTINGS } from '../options';
import type { GroupRecord } from '../config/group-store';
import { decodeSnapshot } from '../snapshot';
import { decodeJob, isActive } from '../jobs/job-record';
import { canonicalDocument, type ClusterFile } from '../../shared/cluster-file';
import { parseClusterFileOffLoop } from '../../shared/parse-worker';
import { formatPlan, planConfig, type PlanResult, type StoredConfig } from './plan';
import { decodeGlobals } from '../../shared/globals';
import { isEnvelope } from '../../shared/secret-envelope';
import { hasSecretUnits } from '../secrets/secret-content';
import { rolloutTargets, startRollouts, type GroupRollout } from './rollout';
import type { StartJob } from '../reconcile/job-request';

/** What meta/last-applied holds. */
export interface LastApplied {
  document: string;
  appliedAt: string;
  appliedBy: string;
  source: string;
}

export interface PlanOutcome {
  revision: string;
  plan: PlanResult;
  text: string;
  /** key → mod revision ("0" = absent) of every configuration key the plan read. */
  reads: Record<string, string>;
  document: string;
  file: ClusterFile;
  /** What the plan was made of (the nodes, which jobs are live): the rollout's input. */
  stored: StoredConfig;
}

export interface ApplyOutcome {
  revision: string;
  changed: boolean;
  plan: PlanResult;
  text: string;
  /** With `rollout`: per group with nodes out of date, the upgrade job started or why not. */
  rollouts?: GroupRollout[];
}

export interface ApplyRequest {
  /** '' = the last applied document. */
  document: string;
  source?: string;
  planRevision?: string;
  planReads?: Record<string, string>;
  actor?: string;
  /** Throws to refuse the parsed file (the caller's role against what it contains); runs before any write. */
  authorize?: (file: ClusterFile) => void;
  /**
   * Roll out after the write: one upgrade job per group of the file with nodes out of date
   * (rollout.ts). `authorize` throws to refuse it (the caller may not start upgrade jobs), before anything is read or written.
   */
  rollout?: { authorize?: () => void };
}

export interface DeclarativeOptions {
  client: Etcd3;
  keyspace: Keyspace;
  events: EventLog;
  clock: Clock;
  /** Plans-and-writes of an apply without an operator's plan before ConflictError (default: settings.configCasAttempts). */
  maxAttempts?: number;
  /** Largest apply written as one transaction (default: settings.applyTxnMaxOps / applyTxnMaxBytes). */
  txnLimits?: { maxOps: number; maxBytes: number };
  /** The jobs engine's StartJob path (JobStarter.start), for an apply with `rollout`. */
  startJob?: StartJob;
}

interface Snapshot {
  revision: string;
  stored: StoredConfig;
  /** key → mod revision of every key under the read prefixes. */
  mods: Map<string, string>;
  lastApplied?: LastApplied;
}

/**
 * Which keys changed since the plan: pure. `planReads` exact (a saved plan), or every key the
 * new plan reads modified after `planRevision`.
 */
export function changedSince(current: Readonly<Record<string, string>>, by: { planReads?: Readonly<Record<string, string>>; planRevision?: string }): string[] {
  const out: string[] = [];
  if (by.planReads && Object.keys(by.planReads).length > 0) {
    for (const [key, rev] of Object.entries(by.planReads)) {
      const now = current[key] ?? '0';
      if (now !== rev) out.push(`${key} (${rev === '0' ? 'absent' : `revision ${rev}`} at plan time, now ${now === '0' ? 'absent' : `revision ${now}`})`);
    }
    for (const key of Object.keys(current)) if (!(key in by.planReads) && current[key] !== '0') out.push(`${key} (not read by the plan)`);
  } else if (by.planRevision) {
    const r = BigInt(by.planRevision);
    for (const [key, rev] of Object.entries(current)) if (BigInt(rev) > r) out.push(`${key} (modified at revision ${rev})`);
  }
  return out.sort();
}

export class Declarative {
  constructor(private readonly o: DeclarativeOptions) {}

  private async snapshot(): Promise<Snapshot> {
    const ks = this.o.keyspace;
    const { revision, kvs } = await readPrefixes(this.o.client, [
      { prefix: ks.configsPrefix() },
      { prefix: ks.groupsPrefix() },
      { prefix: ks.filesPrefix(), keysOnly: true },
      { prefix: ks.nodesPrefix() },
      { prefix: ks.factsPrefix() },
      { prefix: ks.lastApplied() },
      { prefix: ks.jobsPrefix(), keysOnly: true },
      { prefix: ks.globals() },
    ]);
    const mods = new Map<string, string>();
    const bundles = new Map<string, string>();
    for (const kv of kvs[0]) {
      const p = ks.parseConfig(kv.key.toString());
      if (!p) continue;
      mods.set(kv.key.toString(), kv.mod_revision);
      try {
        bundles.set(`${p.bundle}@${p.version}`, canonicalJson(JSON.parse(kv.value.toString())));
      } catch {
        bundles.set(`${p.bundle}@${p.version}`, kv.value.toString());
      }
    }
    // An unreadable group is replaced if the file names it: its key's revision guards that write.
    for (const kv of kvs[1]) if (ks.parseGroup(kv.key.toString()) !== undefined) mods.set(kv.key.toString(), kv.mod_revision);
    const decoded = decodeSnapshot(ks, revision, ['groups', 'nodes', 'facts'], [kvs[1], kvs[3], kvs[4]]);
    const groups = new Map([...decoded.groups].map(([name, g]) => [name, g.record]));
    const nodes = [...decoded.nodes].map(([id, n]) => ({ record: n.record, facts: decoded.facts.get(id) }));
    const files = new Set<string>();
    for (const kv of kvs[2]) {
      const n = ks.parseFile(kv.key.toString());
      if (n === undefined) continue;
      files.add(n);
      mods.set(kv.key.toString(), kv.mod_revision);
    }
    let lastApplied: LastApplied | undefined;
    for (const kv of kvs[5]) {
      if (kv.key.toString() !== ks.lastApplied()) continue;
      mods.set(ks.lastApplied(), kv.mod_revision);
      try { lastApplied = JSON.parse(kv.value.toString()) as LastApplied; } catch { /* replaced by the next apply */ }
    }
    // Jobs were read keys-only (per-node outputs are large): a node is busy while it names a
    // job whose record exists; finished ones are told apart on the leader (auto-commission).
    const jobIds = new Set<string>();
    for (const kv of kvs[6]) {
      const p = ks.parseJobKey(kv.key.toString());
      if (p && p.nodeId === undefined) jobIds.add(p.jobId);
    }
    const activeJobs = new Set([...new Set(nodes.map((n) => n.record.currentJob).filter((j): j is string => !!j))].filter((j) => jobIds.has(j)));
    // The cluster globals: a node's desired variables (and so its being out of date) depend on them.
    let globals: Record<string, string> = {};
    for (const kv of kvs[7]) {
      if (kv.key.toString() !== ks.globals()) continue;
      try { globals = decodeGlobals(ks.globals(), kv.value.toString()).variables; } catch { /* unreadable: none */ }
    }
    return { revision, stored: { bundles, groups, files, nodes, activeJobs, globals }, mods, lastApplied };
  }

  /** The job records of the given ids that are still unfinished (to refine activeJobs). */
  private async refineActive(snap: Snapshot): Promise<void> {
    if (snap.stored.activeJobs.size === 0) return;
    const active = new Set<string>();
    for (const id of snap.stored.activeJobs) {
      const key = this.o.keyspace.job(id);
      const res = await this.o.client.get(key).string();
      if (res === null) continue;
      try {
        if (isActive(decodeJob(key, res).state)) active.add(id);
      } catch { /* unreadable: not active */ }
    }
    snap.stored = { ...snap.stored, activeJobs: active };
  }

  /** Keys a plan of `file` reads, with their mod revisions in `snap` ("0" = absent). */
  private reads(file: ClusterFile, snap: Snapshot): Record<string, string> {
    const ks = this.o.keyspace;
    const keys = new Set<string>([ks.lastApplied()]);
    for (const b of file.bundles) {
      keys.add(ks.config(b.name, b.version));
      for (const f of sourceNames(b)) keys.add(ks.file(f));
    }
    for (const g of file.groups) {
      keys.add(ks.group(g.name));
      keys.add(ks.config(g.bundle, g.version));
    }
    const out: Record<string, string> = {};
    for (const k of [...keys].sort()) out[k] = snap.mods.get(k) ?? '0';
    return out;
  }

  private async parse(document: string, source: string): Promise<ClusterFile> {
    if (document.trim() === '') throw new InvalidArgumentError('the cluster file is empty: name bundles and groups (see clusterctl apply --help)');
    const file = await parseClusterFileOffLoop(document, source);
    // The document itself is kept at meta/last-applied, in clear: a secret cannot sit in it.
    const secret = file.bundles.filter(hasSecretUnits).map((b) => `${b.name}@${b.version}`);
    if (secret.length > 0) {
      throw new InvalidArgumentError(
        `${source}: bundle ${secret.join(', ')} has a unit with secret: true; a cluster file is stored as written, so push such a bundle with \`clusterctl bundle push\` and name only its version here`,
      );
    }
    return file;
  }

  async plan(document: string, source = 'cluster file'): Promise<PlanOutcome> {
    const written = await this.parse(document, source);
    const snap = await this.snapshot();
    await this.refineActive(snap);
    const file = keepSecretVariables(written, snap.stored.groups);
    const plan = planConfig(file, snap.stored);
    return { revision: snap.revision, plan, text: formatPlan(plan), reads: this.reads(file, snap), document: canonicalDocument(written), file, stored: snap.stored };
  }

  /**
   * Writes the configuration (`write`); with `rollout`, then starts the upgrade jobs of the
   * nodes the applied plan counted out of date — also when the configuration was already
   * stored (an earlier `--no-rollout`, a global change): apply converges the nodes too.
   */
  async apply(req: ApplyRequest): Promise<ApplyOutcome> {
    const actor = req.actor?.trim() || 'operator';
    if (!req.rollout) return (await this.write(req, actor)).outcome;
    req.rollout.authorize?.();
    const startJob = this.o.startJob;
    if (!startJob) throw new FailedPreconditionError('this coordinator cannot start jobs from apply; apply with --no-rollout and run clusterctl node upgrade');
    const { outcome, planned } = await this.write(req, actor);
    const rollouts = rolloutTargets(planned.plan, planned.stored);
    await startRollouts(rollouts, startJob, actor);
    return { ...outcome, rollouts };
  }

  private async write(req: ApplyRequest, actor: string): Promise<{ outcome: ApplyOutcome; planned: PlanOutcome }> {
    if (req.planRevision !== undefined && req.planRevision !== '' && !/^\d+$/.test(req.planRevision)) {
      throw new InvalidArgumentError(`--plan-revision ${JSON.stringify(req.planRevision)} must be a number (the revision clusterctl plan printed)`);
    }
    let document = req.document;
    let source = req.source?.trim() || 'cluster file';
    if (document.trim() === '') {
      const snap = await this.snapshot();
      if (!snap.lastApplied?.document) {
        throw new FailedPreconditionError('nothing was applied yet, so there is no last applied configuration to re-converge to; run clusterctl apply -f cluster.yaml');
      }
      document = snap.lastApplied.document;
      source = `last applied configuration (${snap.lastApplied.source || 'cluster file'}, ${snap.lastApplied.appliedAt})`;
    }
    return retryOnConflict(this.o.maxAttempts ?? DEFAULT_SETTINGS.configCasAttempts, async (): Promise<{ outcome: ApplyOutcome; planned: PlanOutcome } | typeof CAS_LOST> => {
      const planned = await this.plan(document, source);
      const changed = changedSince(planned.reads, { planReads: req.planReads, planRevision: req.planRevision });
      if (changed.length > 0) {
        throw new FailedPreconditionError(
          `the configuration changed since the plan: ${changed.join(', ')}; nothing was applied — run clusterctl plan again and review it`,
        );
      }
      const { plan, file } = planned;
      req.authorize?.(file);
      if (plan.problems.length > 0) {
        throw new FailedPreconditionError(`${source} cannot be applied (${plan.problems.length} problem${plan.problems.length === 1 ? '' : 's'}): ${plan.problems.join('; ')}`);
      }
      const now = this.o.clock.iso();
      const ks = this.o.keyspace;
      const guards: Compare[] = Object.entries(planned.reads).map(([key, rev]) =>
        rev === '0' ? { key, target: 'Create', op: '==', value: '0', reason: 'plan-read' } : { key, target: 'Mod', op: '==', value: rev, reason: 'plan-read' });
      const bundleOps: TxnOp[] = [];
      const pushed = file.bundles.filter((b) => plan.bundles.find((p) => p.ref === `${b.name}@${b.version}`)?.action === 'push');
      // New versions pin the current edition of each file they name (coordinator/config/source-pins.ts).
      const pinned = await pinSources(this.o.client, ks, [...new Set(pushed.flatMap(sourceNames))]);
      if (pinned.missing.length > 0) throw missingSourcesError(source, pinned.missing);
      for (const b of pushed) {
        const sources = Object.fromEntries(sourceNames(b).map((f) => [f, pinned.pins[f]]));
        const info: BundleInfoValue = { digest: bundleDigest(b, sources), createdAt: now, ...(Object.keys(sources).length ? { sources } : {}) };
        bundleOps.push(
          { kind: 'put', key: ks.config(b.name, b.version), value: canonicalJson(b) },
          { kind: 'put', key: ks.configInfo(b.name, b.version), value: JSON.stringify(info) },
        );
      }
      guards.push(...pinned.compares);
      const groupOps: TxnOp[] = [];
      for (const g of file.groups) {
        if (plan.groups.find((p) => p.name === g.name)?.action === 'unchanged') continue;
        groupOps.push({ kind: 'put', key: ks.group(g.name), value: JSON.stringify({ ...g, updatedAt: now } satisfies GroupRecord) });
      }
      const last: LastApplied = { document: planned.document, appliedAt: now, appliedBy: actor, source };
      const sameDocument = (await this.lastDocument()) === planned.document;
      if (!plan.hasChanges && sameDocument) return { outcome: { revision: planned.revision, changed: false, plan, text: planned.text }, planned };
      const recordOp: TxnOp = { kind: 'put', key: ks.lastApplied(), value: JSON.stringify(last) };
      const summary = formatPlan(plan).trim().split('\n').pop() ?? '';
      const size = [...bundleOps, ...groupOps, recordOp].reduce((n, op) => n + (op.kind === 'put' ? op.key.length + op.value.length : 0), 0);
      const ops = [...bundleOps, ...pinned.ops, ...groupOps, recordOp];
      let outcome;
      const limits = this.o.txnLimits ?? { maxOps: DEFAULT_SETTINGS.applyTxnMaxOps, maxBytes: DEFAULT_SETTINGS.applyTxnMaxBytes };
      if (ops.length <= limits.maxOps && size <= limits.maxBytes) {
        outcome = await this.o.events.commit({ compares: guards, ops, event: { type: 'config.applied', message: `${source} applied: ${summary}`, actor } });
      } else {
        // Too big for one request: new bundle versions first, one create-only txn each.
        for (let i = 0; i < bundleOps.length; i += 2) {
          const op = bundleOps[i];
          const key = op.kind === 'put' ? op.key : '';
          const r = await this.o.events.commit({
            // The first also pins the file editions (their compares and records) for all of them.
            compares: [{ key, target: 'Create', op: '==', value: '0', reason: 'create-only' }, ...(i === 0 ? pinned.compares : [])],
            ops: [...bundleOps.slice(i, i + 2), ...(i === 0 ? pinned.ops : [])],
            event: { type: 'bundle.pushed', message: `bundle ${key.slice(ks.configsPrefix().length).replace('/', '@')} stored by apply of ${source}`, actor },
          });
          if (!r.succeeded) throw new ConflictError(`bundle ${key.slice(ks.configsPrefix().length).replace('/', '@')} was pushed concurrently; run clusterctl plan again`);
        }
        const rest = guards.filter((g) => !bundleOps.some((op) => op.kind === 'put' && op.key === g.key) && !pinned.compares.includes(g));
        outcome = await this.o.events.commit({ compares: rest, ops: [...groupOps, recordOp], event: { type: 'config.applied', message: `${source} applied: ${summary}`, actor } });
      }
      if (outcome.succeeded) return { outcome: { revision: outcome.revision, changed: plan.hasChanges, plan, text: planned.text }, planned };
      // Someone wrote between our read and our write. With a plan from the operator that is a
      // refusal (they reviewed something else); without one, plan again.
      if ((req.planReads && Object.keys(req.planReads).length > 0) || req.planRevision) {
        const keys = outcome.failed.map((c) => c.key);
        throw new FailedPreconditionError(`the configuration changed while applying (${keys.join(', ')}); nothing was applied — run clusterctl plan again`);
      }
      return CAS_LOST;
    }, () => new ConflictError('the configuration kept changing while applying; retry'));
  }

  private async lastDocument(): Promise<string | undefined> {
    const text = await this.o.client.get(this.o.keyspace.lastApplied()).string();
    if (text === null) return undefined;
    try {
      return (JSON.parse(text) as LastApplied).document;
    } catch {
      return undefined;
    }
  }
}

/**
 * Secret variables (`group set --secret-var`, stored sealed: docs/secrets.md) are not written in
 * cluster files, so a group the file names keeps the stored ones the file does not name (a
 * cluster file that sets one replaces it, in clear: the coordinator does not seal variables of
 * a cluster file). The last applied document stays as written, without them.
 */
export function keepSecretVariables(file: ClusterFile, stored: ReadonlyMap<string, GroupRecord>): ClusterFile {
  return {
    ...file,
    groups: file.groups.map((g) => {
      const kept = Object.entries(stored.get(g.name)?.variables ?? {}).filter(([k, v]) => isEnvelope(v) && !(k in (g.variables ?? {})));
      return kept.length === 0 ? g : { ...g, variables: { ...g.variables, ...Object.fromEntries(kept) } };
    }),
  };
}
