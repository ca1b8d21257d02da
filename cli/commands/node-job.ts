/**
 * `clusterctl node commission|upgrade|decommission|verify|repair`: one command per job kind,
 * all built here because they share their targets and flags (Contiv's `clusterctl node
 * commission ID --host-group G -e '{...}'` keeps working). Without --wait the job id is printed
 * and the command returns; --wait follows the job and takes the exit code from its result
 * (0 succeeded, 1 failed/cancelled, 2 verify found drift), following a --canary job through its
 * pause until someone resumes or cancels it; --dry-run waits for the plan and prints it per
 * node and unit.
 */
import { InvalidArgumentError } from '../../shared/errors';
import { compileHealthGate, durationFlag, probesFromFlags, rollbackPolicy, ROLLBACK_POLICIES } from '../../shared/health-gate';
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
  upgrade: 'clusterctl node upgrade -g worker --bundle base@4 --batch 2 --wait\n' +
    'clusterctl node upgrade -g worker --bundle base@4 --canary 1 --batch 25%   # then: clusterctl job resume JOB\n' +
    'clusterctl node upgrade -g worker --bundle base@4 --canary 2 --canary-soak 10m\n' +
    'clusterctl node upgrade -g web --bundle web@3 --batch 2 --soak 2m --probe-http http://127.0.0.1:8080/healthz=200 --wait   # rolls back on failure\n' +
    'clusterctl node upgrade node-1 --dry-run',
  decommission: 'clusterctl node decommission node-7 --wait\nclusterctl node decommission node-1 --force   # below the group\'s minimum size',
  verify: 'clusterctl node verify -g worker --wait\nclusterctl node verify node-1 --repair --wait',
  repair: 'clusterctl node repair node-1 --wait',
};

/** What an apply does with units the new bundle version no longer has (commission, upgrade, repair). */
const DROPPED_UNITS =
  'Units the node applied before (its agent\'s own record) that this bundle version no longer has are removed after the new '
  + 'version applied, in reverse order, with each unit\'s remove rules (file deleted, service stopped, disabled and its unit file deleted, '
  + 'package removed, command undo run); a unit with the same id, kind and target (path, package, systemd unit) is kept. '
  + '--dry-run lists them as `remove`. A removal that fails fails the node; the next apply removes what is left.';

const DESCRIPTION: Partial<Record<Kind, string>> = {
  commission: `${DROPPED_UNITS} This holds for a node that ran another group's bundle too.`,
  upgrade: `${DROPPED_UNITS} An upgrade back to an older version removes what the newer one added.`,
  repair: DROPPED_UNITS,
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

/** The coordinator's bound on --canary-soak (coordinator/jobs/job-starter.ts), checked here before the round trip. */
const MAX_CANARY_SOAK_MS = 24 * 3_600_000;

/** --canary-soak in ms for the request (0: none); longer than 24 h is refused. */
export function checkCanarySoak(ms: number | undefined): number {
  if (ms === undefined) return 0;
  if (ms > MAX_CANARY_SOAK_MS) throw new InvalidArgumentError('--canary-soak is longer than the 24h allowed; for a longer look use --canary alone (the job pauses until clusterctl job resume)');
  return ms;
}

/** The health gate's and the rollback's flags as the request's fields, checked here so a typo fails before any round trip. */
export function healthRequest(kind: Kind, dryRun: boolean, v: Partial<Record<'soak' | 'probeInterval' | 'probeCommand' | 'rollback', string | undefined>> & { probeTcp?: string[]; probeHttp?: string[] }): {
  soakMs: number; probeIntervalMs: number; probes: ReturnType<typeof probesFromFlags>; rollback: string;
} {
  const soakMs = durationFlag('--soak', v.soak) ?? 0;
  const probeIntervalMs = durationFlag('--probe-interval', v.probeInterval) ?? 0;
  const probes = probesFromFlags({ tcp: v.probeTcp, http: v.probeHttp, command: v.probeCommand !== undefined ? [v.probeCommand] : [] });
  compileHealthGate({ soakMs, intervalMs: probeIntervalMs, probes });
  rollbackPolicy(v.rollback, kind, dryRun);
  return { soakMs, probeIntervalMs, probes, rollback: v.rollback ?? '' };
}

function nodeJobCommand(kind: Kind, extraOptions: Record<string, never> | typeof VERIFY_OPTIONS | typeof COMMISSION_OPTIONS | typeof UPGRADE_JOB_OPTIONS = {}): Command<CliContext> {
  const options = { ...NODE_JOB_OPTIONS, ...extraOptions } as typeof NODE_JOB_OPTIONS & Partial<typeof VERIFY_OPTIONS> & Partial<typeof CANARY_OPTIONS> & Partial<typeof UPGRADE_OPTIONS>;
  return defineCommand<CliContext, typeof options>({
    name: kind,
    // Contiv's spelling of upgrade.
    aliases: kind === 'upgrade' ? ['update'] : undefined,
    summary: SUMMARY[kind],
    usage: `node ${kind} ID... | -l SELECTOR | -g GROUP [flags]`,
    example: EXAMPLE[kind],
    ...(DESCRIPTION[kind] ? { description: DESCRIPTION[kind] } : {}),
    options,
    maxPositionals: 10_000,
    async run({ values, positionals, context }) {
      const v = values as typeof values & { repair?: boolean; canary?: number; canarySoak?: number } & Partial<Record<'soak' | 'probeInterval' | 'probeCommand' | 'rollback', string>> & { probeTcp?: string[]; probeHttp?: string[] };
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
      const health = healthRequest(actual, values.dryRun, v);
      const request = {
        ...health,
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
        canary: v.canary ?? 0,
        canarySoakMs: checkCanarySoak(v.canarySoak),
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
          (job.canary && !job.canarySoakMs ? `it pauses after its ${job.canary} canary node(s); then: clusterctl job resume ${job.id}\n` : '') +
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

const CANARY_OPTIONS = {
  canary: {
    kind: 'int', min: 0, placeholder: 'N',
    description: 'run N nodes first (a batch of their own, in node-id order), then pause the job until clusterctl job resume; less than the job\'s node count',
  },
  canarySoak: {
    kind: 'duration', min: 1000, placeholder: 'DURATION',
    description: 'with --canary: instead of pausing, wait this long (at most 24h), re-run the bundle\'s verify probes on the canary nodes and go on by itself when all pass',
  },
} as const;

/** Commission and upgrade: the health gate (shared/health-gate.ts); upgrade also the rollback. */
const HEALTH_OPTIONS = {
  soak: {
    kind: 'string', placeholder: 'DURATION',
    description: 'health gate: after each node\'s apply its probes must keep passing this long (e.g. 30s, 2m; at most 60m) before the next batch starts',
  },
  probeInterval: {
    kind: 'string', placeholder: 'DURATION',
    description: 'how often the probes run during the soak (default 10s, or the soak if shorter; at least 1s)',
  },
  probeTcp: {
    kind: 'list', placeholder: 'HOST:PORT',
    description: 'extra probe, run on the node: HOST:PORT accepts a connection (e.g. 127.0.0.1:8080; repeat the flag)',
  },
  probeHttp: {
    kind: 'list', placeholder: 'URL[=STATUS]',
    description: 'extra probe, run on the node: GET URL answers STATUS (default any 2xx/3xx), e.g. http://127.0.0.1:8080/healthz=200',
  },
  probeCommand: {
    kind: 'string', placeholder: 'COMMAND',
    description: 'extra probe, run on the node as the agent runs guarded commands: COMMAND exits 0',
  },
} as const;

const UPGRADE_OPTIONS = {
  ...HEALTH_OPTIONS,
  rollback: {
    kind: 'string', choices: ROLLBACK_POLICIES, placeholder: 'on-failure|never',
    description: 'when the job stops at --max-failures: on-failure (the default) re-applies each upgraded node\'s previous version and variables, newest first; never leaves them',
  },
} as const;

const COMMISSION_OPTIONS = { ...CANARY_OPTIONS, ...HEALTH_OPTIONS } as const;
const UPGRADE_JOB_OPTIONS = { ...CANARY_OPTIONS, ...UPGRADE_OPTIONS } as const;

export const nodeCommission = nodeJobCommand('commission', COMMISSION_OPTIONS);
export const nodeUpgrade = nodeJobCommand('upgrade', UPGRADE_JOB_OPTIONS);
export const nodeDecommission = nodeJobCommand('decommission');
export const nodeVerify = nodeJobCommand('verify', VERIFY_OPTIONS);
export const nodeRepair = nodeJobCommand('repair');
