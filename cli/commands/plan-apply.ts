/**
 * `clusterctl plan -f cluster.yaml` and `clusterctl apply [-f cluster.yaml]`: declarative
 * configuration, plan before apply (Terraform, Clusterlite). The cluster file is parsed and
 * validated HERE first (every problem with its line; nothing is sent while there is one), its
 * `file:` bundle entries are read relative to the file, and the self-contained document goes
 * to the coordinator, which plans against etcd (coordinator/declarative/).
 *
 * `apply` then rolls out: the coordinator starts one upgrade job per group whose nodes the plan
 * counted "to upgrade" (coordinator/declarative/rollout.ts); `--wait` follows them like
 * `node upgrade --wait`; `--no-rollout` writes the configuration only.
 *
 * Exit codes: plan → 0 no changes, 2 changes (1 error); apply → 0, or 1 when a group's rollout
 * was refused or (with --wait) a job failed, was cancelled or rolled back.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '../../shared/errors';
import { defineCommand, EXIT, type ExitCode } from '../command';
import type { CliContext } from '../context';
import type { ApplyRollout__Output } from '../../generated/cluster/v1/ApplyRollout';
import { followJob } from './job-follow';

/** What `plan --out FILE` saves and `apply --plan FILE` reads. */
export interface SavedPlan {
  kind: 'clusterctl-plan';
  source: string;
  revision: string;
  reads: Record<string, string>;
  document: string;
  hasChanges: boolean;
  text: string;
}

/**
 * Reads and validates a cluster file; the self-contained canonical document. The parser (and the
 * bundle validator it pulls in, ~110 ms) is loaded only here, not on every clusterctl start.
 */
export async function loadClusterFile(path: string): Promise<string> {
  const { canonicalDocument, parseClusterFile } = await import('../../shared/cluster-file');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  const base = dirname(resolve(path));
  const file = parseClusterFile(text, {
    source: path,
    readFile: (rel) => readFileSync(isAbsolute(rel) ? rel : resolve(base, rel), 'utf8'),
  });
  return canonicalDocument(file);
}

function readSavedPlan(path: string): SavedPlan {
  let o: Partial<SavedPlan>;
  try {
    o = JSON.parse(readFileSync(path, 'utf8')) as Partial<SavedPlan>;
  } catch (err) {
    throw new InvalidArgumentError(`cannot read plan ${path}: ${(err as Error).message}`);
  }
  if (o.kind !== 'clusterctl-plan' || typeof o.document !== 'string' || typeof o.revision !== 'string' || !o.reads || typeof o.reads !== 'object') {
    throw new InvalidArgumentError(`${path} is not a plan saved by clusterctl plan --out`);
  }
  return o as SavedPlan;
}

const PLAN_OPTIONS = {
  file: { kind: 'string', short: 'f', description: 'the cluster file (YAML): bundles, groups, auto-commission rules', placeholder: 'FILE' },
  out: { kind: 'string', description: 'save the plan (revision, keys read, document) for apply --plan', placeholder: 'FILE' },
} as const;

export const planCommand = defineCommand<CliContext, typeof PLAN_OPTIONS>({
  name: 'plan',
  summary: 'Show what apply would change (bundles, groups, affected nodes); changes nothing',
  usage: 'plan -f FILE [--out plan.json]',
  description: 'Exit code 0: no changes; 2: changes; 1: error. The etcd revision the plan was made at is printed: give it to apply --plan-revision, or save the plan with --out and give it to apply --plan, so apply refuses if the configuration changed in between.',
  example: 'clusterctl plan -f cluster.yaml\nclusterctl plan -f cluster.yaml --out plan.json && clusterctl apply --plan plan.json',
  options: PLAN_OPTIONS,
  async run({ values, context }) {
    if (!values.file) throw new InvalidArgumentError('plan needs the cluster file: clusterctl plan -f cluster.yaml');
    const document = await loadClusterFile(values.file);
    const res = await context.client.plan({ document, sourceName: values.file });
    const blocked = (JSON.parse(res.planJson) as { problems?: string[] }).problems ?? [];
    if (context.format === 'json' || context.format === 'yaml') context.out.write(`${res.planJson}\n`);
    else context.out.write(`Plan of ${values.file} at etcd revision ${res.revision}:\n${res.text}`);
    if (values.out) {
      const saved: SavedPlan = { kind: 'clusterctl-plan', source: values.file, revision: res.revision, reads: res.reads, document: res.document, hasChanges: res.hasChanges, text: res.text };
      writeFileSync(values.out, JSON.stringify(saved, null, 2) + '\n');
      context.note(`plan saved to ${values.out}; apply it with: clusterctl apply --plan ${values.out}`);
    }
    if (blocked.length > 0) throw new FailedPreconditionError(`${blocked.length} problem${blocked.length === 1 ? '' : 's'} block apply: ${blocked.join('; ')}`);
    if (res.hasChanges) {
      context.note(`to apply exactly this: clusterctl apply -f ${values.file} --plan-revision ${res.revision}`);
      return EXIT.changes;
    }
    return EXIT.ok;
  },
});

const APPLY_OPTIONS = {
  file: { kind: 'string', short: 'f', description: 'the cluster file (default: re-apply the last applied configuration)', placeholder: 'FILE' },
  plan: { kind: 'string', description: 'a plan saved by plan --out: refuse if any key it read changed since', placeholder: 'FILE' },
  planRevision: { kind: 'string', description: 'the revision plan printed: refuse if the configuration changed after it', placeholder: 'REVISION' },
  noRollout: { kind: 'boolean', description: 'write the configuration only; start no upgrade job (nodes stay out of date until clusterctl node upgrade)' },
  wait: { kind: 'boolean', description: 'follow the rollout\'s upgrade jobs until they end; exit 0 all succeeded, 1 one failed, was cancelled or rolled back' },
} as const;

/** The rollout, one line per group (and per node left out), as the operator reads it. Pure. */
export function formatRollouts(rollouts: readonly ApplyRollout__Output[]): string {
  if (rollouts.length === 0) return 'Nothing to roll out: no node is out of date.\n';
  const lines: string[] = [];
  for (const r of rollouts) {
    if (r.jobId) lines.push(`Rollout of group ${r.group}: job ${r.jobId} upgrades ${r.nodeIds.length} node(s) to ${r.bundle}: ${r.nodeIds.join(', ')}`);
    else if (r.refused) lines.push(`Rollout of group ${r.group} refused: ${r.refused}; its nodes stay out of date (clusterctl node upgrade -g ${r.group})`);
    else lines.push(`Rollout of group ${r.group}: no job started, every out-of-date node is left out`);
    for (const s of r.skipped) lines.push(`  skipped node ${s.nodeId}: ${s.reason}`);
  }
  return lines.join('\n') + '\n';
}

export const applyCommand = defineCommand<CliContext, typeof APPLY_OPTIONS>({
  name: 'apply',
  summary: 'Apply a cluster file (or, with no file, re-converge to the last applied one)',
  usage: 'apply [-f FILE] [--plan plan.json | --plan-revision R] [--wait | --no-rollout]',
  description: 'Bundles and groups are written in one etcd transaction guarded by the revisions the plan read; the applied file becomes the last applied configuration. ' +
    'Then apply rolls it out: for each group of the file with nodes out of date (what plan counts "to upgrade"), one upgrade job of those nodes, started as clusterctl node upgrade would ' +
    '(the manager\'s default batch and the group\'s soak apply; nodes in maintenance, in another job, or never commissioned are left out and named). ' +
    'It needs the right to start upgrade jobs (operator), checked before anything is written. --wait follows the jobs; --no-rollout writes the configuration only. ' +
    'Discovered nodes follow through the leader\'s auto-commission.',
  example: 'clusterctl apply -f cluster.yaml --plan-revision 1234 --wait\nclusterctl apply --plan plan.json\nclusterctl apply -f cluster.yaml --no-rollout   # configuration only\nclusterctl apply            # back to the last applied configuration',
  options: APPLY_OPTIONS,
  async run({ values, context }) {
    if (values.plan && values.planRevision) throw new InvalidArgumentError('give either --plan FILE or --plan-revision R, not both');
    if (values.noRollout && values.wait) throw new InvalidArgumentError('--wait follows the rollout\'s jobs; with --no-rollout there are none');
    if (values.planRevision !== undefined && !/^\d+$/.test(values.planRevision)) {
      throw new InvalidArgumentError(`--plan-revision ${JSON.stringify(values.planRevision)} must be a number (the revision clusterctl plan printed)`);
    }
    let document = values.file ? await loadClusterFile(values.file) : '';
    let source = values.file ?? '';
    let planReads: Record<string, string> = {};
    if (values.plan) {
      const saved = readSavedPlan(values.plan);
      if (values.file && document !== saved.document) {
        throw new FailedPreconditionError(`${values.file} differs from the file the plan ${values.plan} was made of; run clusterctl plan again`);
      }
      document = saved.document;
      source = saved.source;
      planReads = saved.reads;
    } else if (values.planRevision && !values.file) {
      throw new InvalidArgumentError('--plan-revision goes with -f FILE (the file that was planned)');
    }
    const rollout = !values.noRollout;
    const res = await context.client.apply({
      document, sourceName: source, planRevision: values.planRevision ?? '', planReads, rollout,
    });
    const machine = context.format === 'json' || context.format === 'yaml';
    if (machine) {
      const rollouts = res.rollouts.map((r) => ({ group: r.group, bundle: r.bundle, jobId: r.jobId, nodeIds: r.nodeIds, skipped: r.skipped, refused: r.refused }));
      context.out.write(`${JSON.stringify({ revision: res.revision, changed: res.changed, plan: JSON.parse(res.planJson) as unknown, ...(rollout ? { rollouts } : {}) })}\n`);
    } else {
      context.out.write(res.text);
      context.out.write(res.changed ? `Applied at etcd revision ${res.revision}.\n` : `Nothing to apply: the stored configuration already matches${document ? '' : ' the last applied one'}.\n`);
      if (rollout) context.out.write(formatRollouts(res.rollouts));
    }
    let code: ExitCode = res.rollouts.some((r) => r.refused) ? EXIT.error : EXIT.ok;
    const jobs = res.rollouts.filter((r) => r.jobId).map((r) => r.jobId);
    if (!values.wait) {
      if (!machine && jobs.length > 0) context.note(`follow: ${jobs.map((j) => `clusterctl job watch ${j}`).join('; ')}`);
      return code;
    }
    for (const id of jobs) {
      const result = await followJob(context, id, { print: context.format !== 'yaml' });
      if (result.code === EXIT.error) code = EXIT.error;
    }
    return code;
  },
});
