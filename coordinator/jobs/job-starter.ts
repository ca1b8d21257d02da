/**
 * StartJob (any replica): validate everything, resolve the targets once, claim the nodes, and
 * write the job Pending with its event. Every refusal happens before the first write or is
 * rolled back, so a refused job changes nothing:
 *
 *   1. validate the request and the targets (unknown node → NOT_FOUND naming it; an illegal
 *      lifecycle move → FAILED_PRECONDITION naming the node, its state and the allowed moves;
 *      maintenance, group rules, a node already in a live job — Contiv #104)
 *   2. put the job record provisionally (claimed=false: the runner leaves it alone)
 *   3. claim the nodes in chunks (CAS on each node's mod revision; a lost chunk releases the
 *      earlier ones and deletes the provisional record)
 *   4. mark the job claimed, with event job.created (and, for an upgrade naming a bundle, move
 *      the group to it in the same transaction)
 *
 * A request with an idempotency key (request-binding.ts) whose key already started a job gets
 * that job back instead of a second one: step 4 also writes idempotency/<digest> → the job id,
 * bound to a lease of `idempotencyTtlSec`, guarded on that key being absent, so two copies of
 * one request racing on two replicas create one job. No write is sent after the request's
 * deadline (runTxn); the rollback of a refused request still is.
 */
import { createHash, createHmac } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import {
  checkTransition, ConflictError, FailedPreconditionError, InvalidArgumentError, NotFoundError, summariseFacts,
  type Clock, type Facts, type Keyspace, type LifecycleState, type NodeRecord,
} from '../../shared';
import { parseSelector, matchesSelector } from '../../shared/selector';
import type { StartJobRequest__Output } from '../../generated/cluster/v1/StartJobRequest';
import type { Compare, TxnOp } from '../etcd-txn';
import { readSnapshot } from '../snapshot';
import { secretValueProblem } from '../secrets/secret-store';
import { MAX_SECRET_VARIABLE_BYTES } from '../secrets/secret-variables';
import { parseBatchSize, planBatches, planCanaryBatches } from './batch-plan';
import { chunkToLimits, claimConflicts, CLAIM_CONCURRENCY } from './claim-plan';
import type { GroupRecord } from '../config/group-store';
import { ConfigReader, groupRules, parseBundleRef } from './config-records';
import { checkDependents, checkGroupRules } from './group-rules';
import { WORKING_STATE } from './job-outcome';
import { isFinished, isJobKind, JOB_KINDS, newJobId, type JobRecord, type JobTargets } from './job-record';
import type { JobStore, VersionedJob } from './job-store';
import { currentBinding, idempotencyDigest, unbound } from '../request-binding';
import { compileHealthGate, rollbackPolicy } from '../../shared/health-gate';

/** States from which verify and repair make sense: something was applied. */
const APPLIED_STATES: readonly LifecycleState[] = ['Commissioned', 'Upgraded', 'Failed', 'Cancelled'];

/** Why claiming stopped short: a node changed since validation, or etcd failed (or the deadline passed). */
type ClaimLoss = { node: string } | { err: unknown };

interface NodeSnapshot {
  record: NodeRecord;
  modRevision: string;
  facts?: Partial<Facts>;
}

/** Fact selector: "manufacturer=Dell Inc.,cpuCores=16" over the facts summary (values may hold spaces). */
export function parseFactSelector(text: string): { key: string; op: '=' | '!='; value: string }[] {
  const out: { key: string; op: '=' | '!='; value: string }[] = [];
  for (const raw of text.split(',')) {
    const m = /^\s*([A-Za-z][A-Za-z0-9]*)\s*(!=|==|=)\s*(.*?)\s*$/.exec(raw);
    if (!m) throw new InvalidArgumentError(`malformed fact selector ${JSON.stringify(text)}: use FIELD=VALUE[,FIELD!=VALUE] over facts summary fields, e.g. "manufacturer=Dell Inc.,cpuCores=16"`);
    out.push({ key: m[1], op: m[2] === '!=' ? '!=' : '=', value: m[3] });
  }
  return out;
}

export function matchesFacts(sel: ReturnType<typeof parseFactSelector>, facts: Partial<Facts> | undefined): boolean {
  const summary = summariseFacts(facts) as Record<string, unknown>;
  return sel.every((r) => {
    const v = summary[r.key];
    const text = typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;
    return r.op === '=' ? text === r.value : text !== r.value;
  });
}

function parseExtraVars(text: string): Record<string, string> {
  if (!text.trim()) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`extra vars are not JSON: ${(err as Error).message} (use e.g. {"ntp_server":"10.0.0.1"})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidArgumentError('extra vars must be a JSON object, e.g. {"ntp_server":"10.0.0.1"}');
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (typeof x === 'object' && x !== null) throw new InvalidArgumentError(`extra var ${k} must be a string, number or boolean`);
    out[k] = String(x);
  }
  return out;
}

export interface JobStarterOptions {
  client: Etcd3;
  keyspace: Keyspace;
  store: JobStore;
  config: ConfigReader;
  clock: Clock;
  /** Whole-request retries when a node changed between validation and claim (default 3). */
  attempts?: number;
  /**
   * How long an idempotency key's first result is kept, in seconds (a retry after that starts a new job).
   * @default 86400
   */
  idempotencyTtlSec?: number;
}

export const DEFAULT_IDEMPOTENCY_TTL_SEC = 24 * 3600;

/** --canary-soak above this is refused: a soak that long is a paused job (`--canary` alone). */
export const MAX_CANARY_SOAK_MS = 24 * 3_600_000;

/** --canary and --canary-soak checked on their own (the node count is checked once targets are known). */
export function checkCanary(kind: string, req: Pick<StartJobRequest__Output, 'canary' | 'canarySoakMs' | 'dryRun'>): void {
  if (req.canarySoakMs > 0 && req.canary === 0) throw new InvalidArgumentError('--canary-soak needs --canary N: the soak runs after the canary batch');
  if (req.canary === 0) return;
  if (kind !== 'commission' && kind !== 'upgrade') {
    throw new InvalidArgumentError(`--canary applies to commission and upgrade (it changes a few nodes first); a ${kind} job has no canary`);
  }
  if (req.dryRun) throw new InvalidArgumentError('--canary does not apply to a dry run: a dry run changes no node');
  if (req.canarySoakMs > MAX_CANARY_SOAK_MS) {
    throw new InvalidArgumentError(`--canary-soak ${Math.round(req.canarySoakMs / 60_000)}m is longer than the 24h allowed; for a longer look use --canary alone (the job pauses until clusterctl job resume)`);
  }
}

/** What idempotency/<digest> holds: the job the first request with that key started. */
interface IdempotencyRecord {
  jobId: string;
  /** sha256 of the request, so a key reused for another request is refused rather than answered. */
  request: string;
}

function requestDigest(req: StartJobRequest__Output, idempotencyKey: string): string {
  // A secret extra var enters the stored digest only keyed by the request's idempotency key
  // (which etcd does not hold), so the digest cannot be used to test guesses of the secret.
  let extraVarsJson = req.extraVarsJson;
  if ((req.secretExtraVars ?? []).length > 0) {
    try {
      const extra = JSON.parse(req.extraVarsJson) as Record<string, unknown>;
      for (const name of req.secretExtraVars) if (Object.hasOwn(extra, name)) extra[name] = createHmac('sha256', idempotencyKey).update(String(extra[name])).digest('hex');
      extraVarsJson = JSON.stringify(extra);
    } catch {
      extraVarsJson = '';
    }
  }
  return createHash('sha256').update(JSON.stringify({ ...req, extraVarsJson, requestedBy: '' })).digest('hex');
}

export class JobStarter {
  constructor(private readonly o: JobStarterOptions) {}

  async start(req: StartJobRequest__Output): Promise<VersionedJob> {
    const attempts = this.o.attempts ?? 3;
    const key = currentBinding()?.idempotencyKey;
    const idempotency = key ? { key: this.o.keyspace.idempotency(idempotencyDigest(req.requestedBy, key)), request: requestDigest(req, key) } : undefined;
    for (let i = 1; ; i++) {
      if (idempotency) {
        const first = await this.firstResult(idempotency.key, idempotency.request);
        if (first) return first;
      }
      try {
        return await this.startOnce(req, idempotency);
      } catch (err) {
        // A lost race with a copy of this request is a conflict too: the next turn finds its job.
        if (!(err instanceof ConflictError) || i >= attempts) throw err;
      }
    }
  }

  /**
   * Extra vars named secret (`-e NAME=VALUE --secret-var NAME`, docs/secrets.md) sealed before
   * the job is stored: the job record holds their envelopes, the leader opens them per command.
   */
  private async sealSecretExtraVars(extra: Record<string, string>, secretNames: readonly string[]): Promise<Record<string, string>> {
    const out = { ...extra };
    for (const name of new Set(secretNames)) {
      // Own keys only: a name like `constructor` must not find Object.prototype's.
      const value = Object.hasOwn(out, name) ? out[name] : undefined;
      if (typeof value !== 'string') throw new InvalidArgumentError(`secret extra var ${name} has no value: give it with -e ${name}=VALUE (read from a file or stdin with @FILE or @-)`);
      const problem = secretValueProblem(`secret extra var ${name}`, Buffer.byteLength(value), MAX_SECRET_VARIABLE_BYTES);
      if (problem) throw new InvalidArgumentError(problem);
      out[name] = await this.o.config.encrypt(value);
    }
    return out;
  }

  /** The job a request with this idempotency key already started, if any. */
  private async firstResult(key: string, request: string): Promise<VersionedJob | undefined> {
    const text = await this.o.client.get(key).string();
    if (text === null) return undefined;
    let rec: Partial<IdempotencyRecord>;
    try {
      rec = JSON.parse(text) as Partial<IdempotencyRecord>;
    } catch {
      return undefined;
    }
    if (typeof rec.jobId !== 'string') return undefined;
    if (rec.request !== request) {
      throw new InvalidArgumentError(`this idempotency key already started job ${rec.jobId} with another request; use a new key for a new request`);
    }
    return this.o.store.require(rec.jobId);
  }

  /**
   * The nodes and the job records (not their per-node records) at one revision; the facts, the
   * largest records, only for a fact selector (`withFacts`): nothing else here reads them.
   */
  private async snapshot(withFacts: boolean): Promise<{ nodes: Map<string, NodeSnapshot>; jobs: Map<string, JobRecord> }> {
    const snap = await readSnapshot(this.o.client, this.o.keyspace, ['nodes', 'jobRecords', ...(withFacts ? ['facts' as const] : [])]);
    const nodes = new Map<string, NodeSnapshot>([...snap.nodes].map(([id, n]) => [id, { ...n, facts: snap.facts.get(id) }]));
    const jobs = new Map([...snap.jobs].map(([id, j]) => [id, j.record]));
    return { nodes, jobs };
  }

  private async startOnce(req: StartJobRequest__Output, idempotency?: { key: string; request: string }): Promise<VersionedJob> {
    const kind = req.kind.trim().toLowerCase();
    if (!isJobKind(kind)) throw new InvalidArgumentError(`unknown job kind ${JSON.stringify(req.kind)}: use one of ${JOB_KINDS.join(', ')}`);
    let strategyText = req.strategy.trim();
    let batchText = req.batch.trim();
    if (strategyText === '' && batchText === '' && kind !== 'exec') {
      // Neither named: the manager's defaultBatch decides (`clusterctl config set defaultBatch=10%`).
      const byDefault = (await this.o.config.managerConfig()).defaultBatch;
      if (byDefault !== 'all') { strategyText = 'rolling'; batchText = byDefault; }
    }
    strategyText ||= 'all-at-once';
    if (strategyText !== 'all-at-once' && strategyText !== 'rolling') throw new InvalidArgumentError(`unknown strategy ${JSON.stringify(req.strategy)}: use all-at-once or rolling`);
    batchText ||= '1';
    const batch = parseBatchSize(batchText);
    const extraVars = await this.sealSecretExtraVars(parseExtraVars(req.extraVarsJson), req.secretExtraVars ?? []);
    const bundleOverride = req.bundle.trim() ? parseBundleRef(req.bundle, '--bundle') : undefined;
    // The health gate holds each batch after its apply; only jobs that apply a new version have one.
    const asked = compileHealthGate({ soakMs: req.soakMs, intervalMs: req.probeIntervalMs, probes: req.probes });
    if (asked && kind !== 'commission' && kind !== 'upgrade') throw new InvalidArgumentError(`${kind}: a health gate (--soak, --probe-*) is for commission and upgrade`);
    const rollback = rollbackPolicy(req.rollback, kind, req.dryRun);
    // exec: one command on the named nodes whatever their lifecycle state; no bundle, no group.
    const isExec = kind === 'exec';
    const execArgv = req.argv.filter((a) => a !== '');
    if (isExec && execArgv.length === 0) throw new InvalidArgumentError('exec needs a command: clusterctl exec -l SELECTOR -- COMMAND [ARGS...]');
    if (isExec && (req.dryRun || bundleOverride)) throw new InvalidArgumentError('exec runs a command: --dry-run and --bundle do not apply');
    if (!isExec && execArgv.length > 0) throw new InvalidArgumentError(`${kind} takes no command (argv is for exec jobs)`);
    checkCanary(kind, req);

    const ids = [...new Set(req.nodeIds.map((s) => s.trim()).filter(Boolean))];
    const label = req.labelSelector.trim();
    const fact = req.factSelector.trim();
    const groupName = req.group.trim();
    const given = [ids.length > 0, label !== '', fact !== ''].filter(Boolean).length;
    // commission -g G with another target: G is the group to join; alone, the group's members are the targets.
    const groupIsTarget = groupName !== '' && given === 0;
    if (given + (groupIsTarget ? 1 : 0) !== 1) {
      throw new InvalidArgumentError('name the nodes with exactly one of: node ids, a label selector (-l), a fact selector, or a group (-g)' +
        (kind === 'commission' ? '; with commission, -g may also accompany node ids or a selector to name the group they join' : ''));
    }
    if (groupName !== '' && !groupIsTarget && kind !== 'commission' && kind !== 'upgrade') {
      throw new InvalidArgumentError(`${kind}: -g names the target group and cannot be combined with node ids or selectors`);
    }
    const labelSel = label ? parseSelector(label) : undefined;
    const factSel = fact ? parseFactSelector(fact) : undefined;

    const { nodes, jobs } = await this.snapshot(factSel !== undefined);

    let targets: string[];
    if (ids.length > 0) {
      const unknown = ids.filter((id) => !nodes.has(id));
      if (unknown.length > 0) throw new NotFoundError(`node${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} not found (list nodes with \`clusterctl nodes\`)`);
      targets = ids;
    } else if (labelSel) {
      targets = [...nodes.values()].filter((n) => matchesSelector(labelSel, n.record.labels)).map((n) => n.record.id);
    } else if (factSel) {
      targets = [...nodes.values()].filter((n) => matchesFacts(factSel, n.facts)).map((n) => n.record.id);
    } else {
      targets = [...nodes.values()].filter((n) => n.record.group === groupName).map((n) => n.record.id);
    }
    targets.sort();
    if (targets.length === 0) {
      throw new FailedPreconditionError(`no node matches ${label ? `label selector ${JSON.stringify(label)}` : fact ? `fact selector ${JSON.stringify(fact)}` : `group ${groupName}`} (list nodes with \`clusterctl nodes\`)`);
    }
    if (req.canary > 0 && req.canary >= targets.length) {
      throw new InvalidArgumentError(`--canary ${req.canary} must be less than the job's ${targets.length} node(s): the canary is a first batch with the others after it`);
    }
    const targetNodes = targets.map((id) => nodes.get(id) as NodeSnapshot);

    // A node in a live job is refused naming that job (Contiv #104), and an illegal move naming
    // the node's state and its allowed moves, before anything about bundles: those say why.
    const liveness = (jobId: string): 'active' | 'finished' | 'missing' => {
      const j = jobs.get(jobId);
      return !j ? 'missing' : isFinished(j.state) ? 'finished' : 'active';
    };
    const conflicts = claimConflicts(targetNodes.map((n) => ({ id: n.record.id, currentJob: n.record.currentJob })), '', liveness);
    if (conflicts.length > 0) {
      const c = conflicts[0];
      const other = jobs.get(c.jobId);
      throw new FailedPreconditionError(
        `node ${c.nodeId} is already in job ${c.jobId} (${other?.kind ?? 'job'}, ${other?.state ?? 'active'})` +
        (conflicts.length > 1 ? ` and ${conflicts.length - 1} more node(s) are in running jobs` : '') +
        `; wait for it (clusterctl job watch ${c.jobId}) or cancel it (clusterctl job cancel ${c.jobId})`,
      );
    }

    const working = WORKING_STATE[kind];
    for (const n of targetNodes) {
      if (working) checkTransition(n.record.id, n.record.state, working);
      else if (!isExec && !APPLIED_STATES.includes(n.record.state)) {
        throw new FailedPreconditionError(`node ${n.record.id} is ${n.record.state}; ${kind} needs a node that was commissioned (${APPLIED_STATES.join(', ')})`);
      }
    }

    // --- the group and the bundle -----------------------------------------------------------
    let group: GroupRecord | undefined;
    let effectiveGroup = groupName;
    if (!effectiveGroup && !isExec) {
      const groups = [...new Set(targetNodes.map((n) => n.record.group).filter((g): g is string => !!g))];
      if (groups.length > 1 && kind !== 'decommission' && kind !== 'verify') {
        throw new InvalidArgumentError(`the nodes belong to different groups (${groups.sort().join(', ')}); run one job per group (-g)`);
      }
      if (groups.length === 1) effectiveGroup = groups[0];
    }
    if (effectiveGroup && !isExec) group = await this.o.config.requireGroup(effectiveGroup);
    let bundle: string | undefined;
    if (bundleOverride) bundle = `${bundleOverride.name}@${bundleOverride.version}`;
    else if (group?.bundle && group.version) bundle = `${group.bundle}@${group.version}`;
    if ((kind === 'commission' || kind === 'upgrade' || kind === 'repair') && !bundle) {
      throw new InvalidArgumentError(`${kind} needs a bundle: name a group with a bundle (-g GROUP) or a bundle (--bundle NAME@VERSION)`);
    }
    if (kind === 'decommission' || kind === 'verify') {
      const without = targetNodes.filter((n) => !n.record.appliedConfig && !bundle).map((n) => n.record.id);
      if (without.length > 0) throw new FailedPreconditionError(`node${without.length > 1 ? 's' : ''} ${without.join(', ')} ha${without.length > 1 ? 've' : 's'} no applied config and no group bundle; nothing to ${kind}`);
    }
    const refs = new Set<string>(bundle ? [bundle] : []);
    if (kind === 'decommission' || kind === 'verify' || kind === 'repair') for (const n of targetNodes) if (n.record.appliedConfig) refs.add(n.record.appliedConfig);
    for (const ref of refs) {
      const { name, version } = parseBundleRef(ref);
      await this.o.config.bundle(name, version); // NotFoundError naming it
    }

    // A job that names no soak takes its group's (`group set --soak`).
    const groupSoak = (kind === 'commission' || kind === 'upgrade') && !req.soakMs ? group?.soakMs ?? 0 : 0;
    const health = groupSoak > 0 ? compileHealthGate({ soakMs: groupSoak, intervalMs: req.probeIntervalMs, probes: req.probes }) : asked;

    // --- maintenance, group rules ---------------------------------------------------------
    const inMaintenance = targetNodes.filter((n) => n.record.maintenance).map((n) => n.record.id);
    // Maintenance holds back what changes a node. verify only reads it, and exec is the
    // operator's own hand on it (debugging one in maintenance is typical): neither is held.
    const changesNodes = !isExec && kind !== 'verify';
    if (inMaintenance.length > 0 && !req.force && changesNodes) {
      throw new FailedPreconditionError(`node${inMaintenance.length > 1 ? 's' : ''} ${inMaintenance.join(', ')} ${inMaintenance.length > 1 ? 'are' : 'is'} in maintenance; --force overrides the maintenance flag`);
    }
    if (!req.force && effectiveGroup && group && (kind === 'commission' || kind === 'decommission')) {
      const all = [...nodes.values()].map((n) => ({ id: n.record.id, group: n.record.group, state: n.record.state }));
      const violations = checkGroupRules(kind, effectiveGroup, groupRules(group), targets, all);
      if (kind === 'decommission') {
        const allRules = Object.fromEntries((await this.o.config.allGroups()).map((g) => [g.name, groupRules(g)]));
        violations.push(...checkDependents(effectiveGroup, allRules, targets, all));
      }
      if (violations.length > 0) throw new FailedPreconditionError(`${kind} refused: ${violations.join('; ')} (--force overrides this group rule)`);
    }
    // --- write -------------------------------------------------------------------------------
    const now = this.o.clock.iso();
    const jobId = newJobId(new Date(this.o.clock.now()));
    const targetsAsked: JobTargets = ids.length > 0 ? { nodeIds: ids } : label ? { labelSelector: label } : fact ? { factSelector: fact } : { group: groupName };
    const record: JobRecord = {
      id: jobId, kind, state: 'Pending', targets: targetsAsked, nodeIds: targets,
      ...(effectiveGroup ? { group: effectiveGroup } : {}), ...(bundle ? { bundle } : {}),
      // Globals < the group's variables < extra vars; the bundle's defaults go under all of them per command (commandVariables).
      variables: { ...(isExec ? {} : await this.o.config.globals()), ...(group?.variables ?? {}), ...extraVars },
      ...(Object.keys(extraVars).length ? { extraVars } : {}),
      strategy: strategyText, batch: batchText, maxFailures: req.maxFailures, dryRun: req.dryRun, force: req.force,
      batches: req.canary > 0 ? planCanaryBatches(targets, req.canary, { type: strategyText, batch }) : planBatches(targets, { type: strategyText, batch }), currentBatch: 0,
      ...(req.canary > 0 ? { canary: req.canary, ...(req.canarySoakMs > 0 ? { canarySoakMs: req.canarySoakMs } : {}) } : {}),
      message: 'waiting for the leader to start it', createdAt: now, requestedBy: req.requestedBy || 'operator', claimed: false,
      // 0 = the agent's default (10 min); the runner's own deadline follows this value.
      ...(isExec ? { exec: { argv: execArgv, timeoutMs: req.timeoutMs > 0 ? req.timeoutMs : 600_000 } } : {}),
      ...(health && !req.dryRun ? { health } : {}),
      ...(rollback !== 'never' ? { rollback } : {}),
    };
    const jobKey = this.o.keyspace.job(jobId);
    const provisional = await this.o.store.txn([{ key: jobKey, target: 'Create', op: '==', value: '0', reason: 'cas' }], [{ kind: 'put', key: jobKey, value: JSON.stringify(record) }]);
    if (!provisional.succeeded) throw new ConflictError(`job id ${jobId} is taken; retry`);
    const provisionalRev = provisional.revision;

    const claimedRevs = new Map<string, string>();
    const lost = await this.claim(targetNodes, jobId, now, claimedRevs);
    if (lost) {
      await this.rollback(targetNodes, claimedRevs, jobKey, provisionalRev);
      if ('err' in lost) throw lost.err;
      throw new ConflictError(`node ${lost.node} changed while job ${jobId} was claiming it; retry`);
    }

    const extra: TxnOp[] = [];
    if (kind === 'upgrade' && bundleOverride && group && !req.dryRun) {
      // "move the group to this bundle version first" (proto StartJobRequest.bundle); a dry run
      // plans with the version and changes nothing, the group included.
      const moved: GroupRecord = { ...group, bundle: bundleOverride.name, version: bundleOverride.version, updatedAt: now };
      extra.push({ kind: 'put', key: this.o.keyspace.group(group.name), value: JSON.stringify(moved) });
    }
    const final: JobRecord = { ...record, claimed: true };
    try {
      const guards: Compare[] = [];
      if (idempotency) {
        const lease = this.o.client.lease(this.o.idempotencyTtlSec ?? DEFAULT_IDEMPOTENCY_TTL_SEC, { autoKeepAlive: false });
        const value: IdempotencyRecord = { jobId, request: idempotency.request };
        extra.push({ kind: 'put', key: idempotency.key, value: JSON.stringify(value), lease: await lease.grant() });
        guards.push({ key: idempotency.key, target: 'Create', op: '==', value: '0', reason: 'cas' });
      }
      return await this.o.store.commit(final, provisionalRev, {
        type: 'job.created',
        message: `${kind}${req.dryRun ? ' (dry run)' : ''} of ${targets.length} node(s)${bundle ? ` with ${bundle}` : ''} requested by ${record.requestedBy}`,
        actor: record.requestedBy,
      }, extra, guards);
    } catch (err) {
      await this.rollback(targetNodes, claimedRevs, jobKey, provisionalRev);
      throw err;
    }
  }

  /**
   * Sets `currentJob` on every node (CAS on the revision validated), in chunks that fit one
   * transaction: the first alone, then the rest CLAIM_CONCURRENCY at a time; `claimedRevs` gets
   * each claimed node's new revision. Returns why it stopped short (a node that changed, or
   * etcd's error); no further chunk is sent then. The first chunk goes alone so that two jobs
   * started at once on the same nodes (targets are sorted) meet there: one wins it and goes on,
   * the other stops. In parallel from the start, each could win some chunks and both be refused.
   */
  private async claim(nodes: readonly NodeSnapshot[], jobId: string, now: string, claimedRevs: Map<string, string>): Promise<ClaimLoss | undefined> {
    const claims = nodes.map((n) => ({ n, key: this.o.keyspace.node(n.record.id), value: JSON.stringify({ ...n.record, currentJob: jobId, updatedAt: now }) }));
    const chunks = chunkToLimits(claims, (c) => c.key.length + Buffer.byteLength(c.value), this.o.store.limits);
    let lost: ClaimLoss | undefined;
    let next = 0;
    /** Sends chunks in order until `upTo` (exclusive) is reached or a claim is lost. */
    const worker = async (upTo: number): Promise<void> => {
      while (!lost && next < upTo) {
        const part = chunks[next++];
        const compares: Compare[] = part.map((c) => ({ key: c.key, target: 'Mod', op: '==', value: c.n.modRevision, reason: 'cas' }));
        try {
          const outcome = await this.o.store.txn(compares, part.map((c): TxnOp => ({ kind: 'put', key: c.key, value: c.value })));
          if (!outcome.succeeded) {
            lost ??= { node: outcome.failed[0]?.key.slice(this.o.keyspace.nodesPrefix().length) ?? '' };
            return;
          }
          for (const c of part) claimedRevs.set(c.n.record.id, outcome.revision);
        } catch (err) {
          // The deadline passed or etcd failed mid-claim: the caller gives back what was taken.
          lost ??= { err };
          return;
        }
      }
    };
    if (chunks.length > 0) {
      await worker(1);
      await Promise.all(Array.from({ length: Math.min(CLAIM_CONCURRENCY, chunks.length - 1) }, () => worker(chunks.length)));
    }
    return lost;
  }

  /** Releases our own claims (CAS on the revision our claim wrote) and deletes the provisional job. */
  private rollback(nodes: readonly NodeSnapshot[], claimedRevs: ReadonlyMap<string, string>, jobKey: string, jobRev: string): Promise<void> {
    // Undoing our own claims must land even when the request's deadline has passed.
    return unbound(() => this.release(nodes, claimedRevs, jobKey, jobRev));
  }

  private async release(nodes: readonly NodeSnapshot[], claimedRevs: ReadonlyMap<string, string>, jobKey: string, jobRev: string): Promise<void> {
    // The records as they were before the claim (only currentJob differs), CAS on our claim's revision.
    const undo = nodes.filter((n) => claimedRevs.has(n.record.id)).map((n) => ({
      key: this.o.keyspace.node(n.record.id), value: JSON.stringify(n.record), rev: claimedRevs.get(n.record.id) ?? '0',
    }));
    const compareOf = (u: (typeof undo)[number]): Compare => ({ key: u.key, target: 'Mod', op: '==', value: u.rev, reason: 'cas' });
    for (const part of chunkToLimits(undo, (u) => u.key.length + Buffer.byteLength(u.value), this.o.store.limits)) {
      const outcome = await this.o.store.txn(part.map(compareOf), part.map((u): TxnOp => ({ kind: 'put', key: u.key, value: u.value })));
      if (!outcome.succeeded) {
        // Someone changed a node after our claim: release one by one where it is still ours.
        for (const u of part) await this.o.store.txn([compareOf(u)], [{ kind: 'put', key: u.key, value: u.value }]);
      }
    }
    await this.o.store.txn([{ key: jobKey, target: 'Mod', op: '==', value: jobRev, reason: 'cas' }], [{ kind: 'delete', key: jobKey }]);
  }
}

