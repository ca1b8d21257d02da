/**
 * `clusterctl node commission|upgrade|decommission|verify|repair`: one command per job kind,
 * all built here because they share their targets and flags (Contiv's `clusterctl node
 * commission ID --host-group G -e '{...}'` keeps working). Without --wait the job id is printed
 * and the command returns; --wait follows the job and takes the exit code from its result
 * (0 succeeded, 1 failed/cancelled, 2 verify found drift); --dry-run waits for the plan and
 * prints it per node and unit.
 */
import { InvalidArgumentError } from '../../shared/errors';
import { parseSelector } from '../../shared/selector';
import { defineCommand, EXIT, type Command } from '../command';
import type { CliContext } from '../context';
import { followJob } from './job-follow';
import { formatPlan, jobDetailObject, jobExitCode, jobObject, planLines } from './job-view';
import { printResult } from './print';
import { parseSecretVars } from '../secret-input';

export const NODE_JOB_OPTIONS = {
  selector: {
    kind: 'string', short: 'l', placeholder: 'SELECTOR',
    description: 'the nodes whose labels match (instead of ids), e.g. role=worker,rack!=r1',
  },
  factSelector: {
    kind: 'string', placeholder: 'FIELD=VALUE,...',
    description: 'the nodes whose facts summary matches, e.g. "manufacturer=Dell Inc.,cpuCores=16"',
  },
  group: {
    kind: 'string', short: 'g', placeholder: 'GROUP',
    description: 'the group: with ids/-l, the group they join (commission) or move to (upgrade); alone, its members',
  },
  hostGroup: {
    kind: 'string', flag: 'host-group', placeholder: 'GROUP',
    description: 'same as --group (Contiv\'s spelling)',
  },
  batch: {
    kind: 'string', placeholder: 'N|P%',
    description: 'rolling: N nodes or P% of them per batch (without it: the manager\'s defaultBatch setting, all at once unless set; see clusterctl config get)',
  },
  maxFailures: {
    kind: 'int', min: 0, default: 0, placeholder: 'N',
    description: 'failed nodes tolerated before the job stops',
  },
  extraVars: {
    kind: 'string', short: 'e', placeholder: 'JSON',
    description: 'JSON object merged over the group\'s variables for this job, e.g. \'{"ntp_server":"10.0.0.1"}\'',
  },
  secretVar: {
    kind: 'list', placeholder: 'NAME=@FILE',
    description: 'a secret extra var: stored encrypted with the job and redacted from all output; the value from @FILE, @- (stdin) or literally (visible in ps)',
  },
  bundle: {
    kind: 'string', placeholder: 'NAME@VERSION',
    description: 'the bundle version to apply instead of the group\'s (upgrade: move to it)',
  },
  dryRun: {
    kind: 'boolean',
    description: 'change nothing: wait for the plan and print per node and unit what would change',
  },
  force: {
    kind: 'boolean',
    description: 'override group rules (minimum size, dependencies) and the maintenance flag',
  },
  wait: {
    kind: 'boolean', short: 'w',
    description: 'follow the job until it ends; exit 0 succeeded, 1 failed/cancelled, 2 drift found',
  },
} as const;

type Kind = 'commission' | 'upgrade' | 'decommission' | 'verify' | 'repair';

const SUMMARY: Record<Kind, string> = {
  commission: 'Bring nodes into service: apply their group\'s bundle (Discovered/Decommissioned/Failed → Commissioned)',
  upgrade: 'Apply a newer bundle version to commissioned nodes (rolling with --batch)',
  decommission: 'Take nodes out of service: remove their bundle in reverse order',
  verify: 'Check nodes against their applied bundle and probes; change nothing (exit 2 with --wait when drift is found)',
  repair: 'Re-apply the applied bundle to nodes that drifted',
};

const EXAMPLE: Record<Kind, string> = {
  commission: 'clusterctl node commission node-1 node-2 -g worker --wait\nclusterctl node commission -l rack=r1 -g worker --batch 25% --max-failures 1\nclusterctl node commission node-3 --host-group worker -e \'{"ntp_server":"10.0.0.1"}\'',
  upgrade: 'clusterctl node upgrade -g worker --bundle base@4 --batch 2 --wait\nclusterctl node upgrade node-1 --dry-run',
  decommission: 'clusterctl node decommission node-7 --wait\nclusterctl node decommission node-1 --force   # below the group\'s minimum size',
  verify: 'clusterctl node verify -g worker --wait\nclusterctl node verify node-1 --repair --wait',
  repair: 'clusterctl node repair node-1 --wait',
};

/** Checks -e locally so a typo fails at once with the parser's words; returns the text to send. */
export function checkExtraVars(text: string | undefined): string {
  if (text === undefined || text.trim() === '') return '';
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`--extra-vars is not JSON: ${(err as Error).message} (use e.g. -e '{"ntp_server":"10.0.0.1"}')`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidArgumentError('--extra-vars must be a JSON object, e.g. -e \'{"ntp_server":"10.0.0.1"}\'');
  return text;
}

/** The extra vars JSON with the secret ones merged in, and their names (StartJobRequest.secretExtraVars). Pure. */
export function withSecretExtraVars(extraJson: string, secret: Readonly<Record<string, string>>): { extraVarsJson: string; secretExtraVars: string[] } {
  const names = Object.keys(secret);
  if (names.length === 0) return { extraVarsJson: extraJson, secretExtraVars: [] };
  const extra = extraJson ? (JSON.parse(extraJson) as Record<string, unknown>) : {};
  return { extraVarsJson: JSON.stringify({ ...extra, ...secret }), secretExtraVars: names };
}

/** `N` or `P%` with 1 ≤ N and 1 ≤ P ≤ 100. */
export function checkBatch(text: string | undefined): string {
  if (text === undefined) return '';
  const t = text.trim();
  const m = /^(\d+)(%?)$/.exec(t);
  const n = m ? Number(m[1]) : NaN;
  if (!m || n < 1 || (m[2] === '%' && n > 100)) throw new InvalidArgumentError(`--batch ${JSON.stringify(text)}: use a node count (e.g. 2) or a percentage (e.g. 25%)`);
  return t;
}

function nodeJobCommand(kind: Kind, extraOptions: Record<string, never> | typeof VERIFY_OPTIONS = {}): Command<CliContext> {
  const options = { ...NODE_JOB_OPTIONS, ...extraOptions } as typeof NODE_JOB_OPTIONS & Partial<typeof VERIFY_OPTIONS>;
  return defineCommand<CliContext, typeof options>({
    name: kind,
    // Contiv's spelling of upgrade.
    aliases: kind === 'upgrade' ? ['update'] : undefined,
    summary: SUMMARY[kind],
    usage: `node ${kind} ID... | -l SELECTOR | -g GROUP [flags]`,
    example: EXAMPLE[kind],
    options,
    maxPositionals: 10_000,
    async run({ values, positionals, context }) {
      const v = values as typeof values & { repair?: boolean };
      const actual: Kind = kind === 'verify' && v.repair ? 'repair' : kind;
      if (values.group !== undefined && values.hostGroup !== undefined && values.group !== values.hostGroup) {
        throw new InvalidArgumentError(`--group ${values.group} and --host-group ${values.hostGroup} disagree; give one`);
      }
      const group = (values.group ?? values.hostGroup ?? '').trim();
      const selector = values.selector ?? '';
      parseSelector(selector); // a typo fails here, before any round trip
      if (positionals.length === 0 && !selector && !values.factSelector && !group) {
        throw new InvalidArgumentError(`which nodes? give node ids, -l SELECTOR or -g GROUP (usage: clusterctl node ${kind} ID... [flags])`);
      }
      const batch = checkBatch(values.batch);
      const request = {
        kind: actual,
        nodeIds: positionals,
        labelSelector: selector,
        factSelector: values.factSelector ?? '',
        group,
        // No --batch: the coordinator's defaultBatch setting decides (all at once unless set).
        strategy: batch ? 'rolling' : '',
        batch,
        maxFailures: values.maxFailures,
        dryRun: values.dryRun,
        force: values.force,
        ...withSecretExtraVars(checkExtraVars(values.extraVars), parseSecretVars(values.secretVar)),
        bundle: values.bundle ?? '',
      };
      const client = context.client;
      const job = await client.startJob(request);
      if (values.dryRun) {
        // The plan exists only once the agents answered: follow quietly, then print it.
        const result = await followJob(context, job.id, { print: false });
        const last = result.last;
        if (!last) return EXIT.error;
        printResult(context, jobDetailObject(last), () => `dry run of ${actual} (job ${job.id}, ${last.job?.state ?? '?'}): nothing was changed\n${formatPlan(last)}`);
        if (!result.finished) return EXIT.error;
        if (jobExitCode(last) === EXIT.error) return EXIT.error;
        return planLines(last).some((l) => l.action !== 'unchanged' && l.action !== '-') ? EXIT.changes : EXIT.ok;
      }
      if (!values.wait) {
        printResult(context, jobObject(job), () =>
          `job ${job.id} started: ${actual} of ${job.nodeIds.length} node(s)${job.group ? ` in group ${job.group}` : ''}${job.bundle ? ` with ${job.bundle}` : ''}\n` +
          `follow it: clusterctl job watch ${job.id}\n`);
        return EXIT.ok;
      }
      if (context.format === 'table' || context.format === 'wide') {
        context.out.write(`job ${job.id} started: ${actual} of ${job.nodeIds.length} node(s)\n`);
      }
      const result = await followJob(context, job.id, { print: context.format !== 'yaml' });
      if (context.format === 'yaml' && result.last) printResult(context, jobDetailObject(result.last), () => '');
      return result.code;
    },
  });
}

const VERIFY_OPTIONS = {
  repair: {
    kind: 'boolean',
    description: 're-apply the bundle where drift is found (a repair job instead of verify)',
  },
} as const;

export const nodeCommission = nodeJobCommand('commission');
export const nodeUpgrade = nodeJobCommand('upgrade');
export const nodeDecommission = nodeJobCommand('decommission');
export const nodeVerify = nodeJobCommand('verify', VERIFY_OPTIONS);
export const nodeRepair = nodeJobCommand('repair');
