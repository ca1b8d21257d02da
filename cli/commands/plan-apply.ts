/**
 * `clusterctl plan -f cluster.yaml` and `clusterctl apply [-f cluster.yaml]`: declarative
 * configuration, plan before apply (Terraform, Clusterlite). The cluster file is parsed and
 * validated HERE first (every problem with its line; nothing is sent while there is one), its
 * `file:` bundle entries are read relative to the file, and the self-contained document goes
 * to the coordinator, which plans against etcd (coordinator/declarative/).
 *
 * Exit codes: plan → 0 no changes, 2 changes (1 error); apply → 0.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '../../shared/errors';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';

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
} as const;

export const applyCommand = defineCommand<CliContext, typeof APPLY_OPTIONS>({
  name: 'apply',
  summary: 'Apply a cluster file (or, with no file, re-converge to the last applied one)',
  usage: 'apply [-f FILE] [--plan plan.json | --plan-revision R]',
  description: 'Bundles and groups are written in one etcd transaction guarded by the revisions the plan read; the applied file becomes the last applied configuration. Nodes follow through jobs (upgrade) and the leader\'s auto-commission.',
  example: 'clusterctl apply -f cluster.yaml --plan-revision 1234\nclusterctl apply --plan plan.json\nclusterctl apply            # back to the last applied configuration',
  options: APPLY_OPTIONS,
  async run({ values, context }) {
    if (values.plan && values.planRevision) throw new InvalidArgumentError('give either --plan FILE or --plan-revision R, not both');
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
    const res = await context.client.apply({
      document, sourceName: source, planRevision: values.planRevision ?? '', planReads,
    });
    if (context.format === 'json' || context.format === 'yaml') context.out.write(`${JSON.stringify({ revision: res.revision, changed: res.changed, plan: JSON.parse(res.planJson) as unknown })}\n`);
    else {
      context.out.write(res.text);
      context.out.write(res.changed ? `Applied at etcd revision ${res.revision}.\n` : `Nothing to apply: the stored configuration already matches${document ? '' : ' the last applied one'}.\n`);
    }
    return EXIT.ok;
  },
});
