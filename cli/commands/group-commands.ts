/**
 * Groups: `clusterctl groups` (list), `group show NAME`, `group set NAME --bundle B[@V] ...`.
 * `group set` on an existing group changes only the fields given (read, merge, write with the
 * revision read, so a concurrent change is refused rather than overwritten).
 */
import type { Group, Group__Output } from '../../generated/cluster/v1/Group';
import { InvalidArgumentError, NotFoundError } from '../../shared/errors';
import { parseSelector } from '../../shared/selector';
import { durationFlag } from '../../shared/health-gate';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { formatTable, orDash } from '../output';
import { parseBundleArg } from './bundle-commands';
import { printResult } from './print';
import { parseSecretVars } from '../secret-input';
import { isEnvelope } from '../../shared/secret-envelope';

export function groupObject(g: Group__Output): Record<string, unknown> {
  return {
    name: g.name, bundle: g.bundle, version: g.version,
    variables: Object.fromEntries(Object.entries(g.variables).sort(([a], [b]) => (a < b ? -1 : 1))),
    minSize: g.minSize, dependsOn: g.dependsOn, verifySchedule: g.verifySchedule, repairPolicy: g.repairPolicy, soakMs: g.soakMs,
    autoCommission: g.autoCommission.map((a) => a.selector), allowedPaths: g.allowedPaths, updatedAt: g.updatedAt, revision: g.revision,
    ...(g.secretVariables.length ? { secretVariables: g.secretVariables } : {}),
  };
}

function vars(g: Group__Output): string {
  const e = Object.entries(g.variables).sort(([a], [b]) => (a < b ? -1 : 1));
  // A secret variable's value is its envelope (docs/secrets.md): say what it is instead.
  return e.length ? e.map(([k, v]) => `${k}=${isEnvelope(v) ? '(secret)' : v}`).join(',') : '<none>';
}

export const groupsList = defineCommand<CliContext, Record<string, never>>({
  name: 'list',
  aliases: ['ls', 'get'],
  summary: 'List groups and the bundle version each should run',
  usage: 'groups [list] [-o table|wide|json|yaml]',
  example: 'clusterctl groups\nclusterctl groups -o yaml',
  async run({ context }) {
    const list = await context.client.listGroups();
    if (list.length === 0 && (context.format === 'table' || context.format === 'wide')) {
      context.note('no groups yet (create one with: clusterctl group set NAME --bundle BUNDLE@VERSION)');
      return EXIT.ok;
    }
    printResult(context, list.map(groupObject), (wide) => formatTable(
      wide ? ['NAME', 'BUNDLE', 'MIN-SIZE', 'DEPENDS-ON', 'VERIFY', 'REPAIR', 'AUTO-COMMISSION', 'VARIABLES'] : ['NAME', 'BUNDLE', 'MIN-SIZE', 'DEPENDS-ON', 'REPAIR'],
      list.map((g) => [
        g.name, `${g.bundle}@${g.version}`, String(g.minSize), orDash(g.dependsOn.join(',')), ...(wide ? [orDash(g.verifySchedule)] : []), g.repairPolicy,
        ...(wide ? [orDash(g.autoCommission.map((a) => a.selector).join(' | ')), vars(g)] : []),
      ]),
    ));
    return EXIT.ok;
  },
});

export function describeGroup(g: Group__Output): string {
  return [
    `Group:            ${g.name}`,
    `Bundle:           ${g.bundle}@${g.version}`,
    `Variables:        ${vars(g)}`,
    `Min size:         ${g.minSize}`,
    `Depends on:       ${orDash(g.dependsOn.join(', '))}`,
    `Verify schedule:  ${orDash(g.verifySchedule)}`,
    `Soak:             ${g.soakMs ? `${g.soakMs / 1000}s (commission/upgrade health gate)` : '-'}`,
    `Repair policy:    ${g.repairPolicy}`,
    `Auto-commission:  ${orDash(g.autoCommission.map((a) => a.selector).join(' | '))}`,
    `Allowed paths:    ${g.allowedPaths.length ? g.allowedPaths.join(', ') : '<any>'}`,
    `Updated:          ${orDash(g.updatedAt)} (revision ${g.revision})`,
  ].join('\n') + '\n';
}

export const groupShow = defineCommand<CliContext, Record<string, never>>({
  name: 'show',
  aliases: ['describe', 'get'],
  summary: 'Show one group',
  usage: 'group show NAME [-o json|yaml]',
  example: 'clusterctl group show worker\nclusterctl group show worker -o json | jq .variables',
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'which group? give its name (list them with: clusterctl groups)' },
  async run({ positionals, context }) {
    const g = await context.client.getGroup(positionals[0]);
    printResult(context, groupObject(g), () => describeGroup(g));
    return EXIT.ok;
  },
});

export const GROUP_SET_OPTIONS = {
  bundle: { kind: 'string', placeholder: 'BUNDLE[@VERSION]', description: 'the bundle the group runs (no version: the newest stored)' },
  var: { kind: 'list', placeholder: 'KEY=VALUE', description: 'set a group variable (repeat the flag; KEY= with nothing removes it)' },
  secretVar: {
    kind: 'list', placeholder: 'KEY=@FILE', description: 'set a secret group variable, stored encrypted and redacted from all output (admin); the value from @FILE, @- (stdin) or literally (visible in ps and shell history)',
  },
  minSize: { kind: 'int', min: 0, placeholder: 'N', description: 'decommission is refused below this many commissioned nodes (unless --force)' },
  dependsOn: { kind: 'list', placeholder: 'GROUP', description: 'groups that need a commissioned node before this one commissions (repeat the flag; each must exist; "" clears)' },
  verifySchedule: { kind: 'string', placeholder: 'CRON', description: 'cron expression for scheduled verification ("" = none), e.g. "0 3 * * *"' },
  repairPolicy: { kind: 'string', choices: ['report', 'repair'], placeholder: 'report|repair', description: 'what to do when drift is found' },
  autoCommission: { kind: 'string', placeholder: 'SELECTOR', description: 'commission Discovered nodes matching this label selector (facts.FIELD too); "" clears' },
  soak: { kind: 'string', placeholder: 'DURATION', description: 'health gate of commissions and upgrades of the group that give no --soak: probes must keep passing this long after each apply (e.g. 2m; 0 clears)' },
  allowPath: { kind: 'list', placeholder: 'PATH', description: 'a directory (or file) the group\'s file, directory and systemd units may write; repeat the flag; replaces the list; "" clears (package and command units are not restricted)' },
} as const;

/** `k=v` pairs of --var into a map; `k=` removes. Pure. */
export function parseVars(items: readonly string[]): { set: Record<string, string>; remove: string[] } {
  const set: Record<string, string> = {};
  const remove: string[] = [];
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`--var ${JSON.stringify(item)}: use KEY=VALUE (KEY= removes the variable)`);
    const k = item.slice(0, eq);
    const v = item.slice(eq + 1);
    if (v === '') remove.push(k);
    else set[k] = v;
  }
  return { set, remove };
}

export const groupSet = defineCommand<CliContext, typeof GROUP_SET_OPTIONS>({
  name: 'set',
  aliases: ['create', 'update'],
  summary: 'Create a group or change the fields given',
  usage: 'group set NAME [--bundle BUNDLE[@VERSION]] [--var K=V ...] [--secret-var K=@FILE ...] [--min-size N] [--depends-on G] [--verify-schedule CRON] [--repair-policy report|repair] [--auto-commission SELECTOR] [--soak DURATION] [--allow-path PATH ...]',
  example: 'clusterctl group set worker --bundle base@3 --var ntp_server=10.0.0.1 --min-size 2 --depends-on control\nclusterctl group set worker --verify-schedule "0 3 * * *" --repair-policy repair\nclusterctl group set worker --depends-on ""   # clear the dependency\nclusterctl group set worker --secret-var db_password=@./db-password\nclusterctl group set myapp --allow-path /etc/myapp --allow-path /opt/myapp',
  options: GROUP_SET_OPTIONS,
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'which group? give its name' },
  async run({ values, positionals, given, context }) {
    const name = positionals[0];
    const client = context.client;
    let current: Group__Output | undefined;
    try {
      current = await client.getGroup(name);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    if (values.autoCommission) parseSelector(values.autoCommission);
    const { set, remove } = parseVars(values.var);
    const secret = parseSecretVars(values.secretVar);
    let bundle = current?.bundle ?? '';
    let version = current?.version ?? '';
    if (values.bundle !== undefined) {
      const ref = parseBundleArg(values.bundle);
      bundle = ref.name;
      // No version: the newest stored, resolved now so the group pins an exact version.
      version = ref.version || (await client.getBundle(ref.name, '')).version;
    }
    if (!bundle) throw new InvalidArgumentError(`group ${name} does not exist yet: give --bundle BUNDLE[@VERSION] to create it`);
    const variables = { ...(current?.variables ?? {}), ...set, ...secret };
    for (const k of remove) delete variables[k];
    // Stored secrets come back as envelopes and go back unchanged; --var NAME=VALUE makes one plain again.
    const secretVariables = [...new Set([...(current?.secretVariables ?? []).filter((k) => k in variables && !(k in set)), ...Object.keys(secret)])];
    // `--depends-on ""` clears the dependency; no --depends-on keeps it.
    const dependsOn = given.has('dependsOn') ? values.dependsOn : current?.dependsOn ?? [];
    const group: Group = {
      name, bundle, version, variables, secretVariables,
      minSize: values.minSize ?? current?.minSize ?? 0,
      dependsOn,
      verifySchedule: values.verifySchedule ?? current?.verifySchedule ?? '',
      repairPolicy: values.repairPolicy ?? current?.repairPolicy ?? 'report',
      autoCommission: values.autoCommission !== undefined
        ? (values.autoCommission.trim() ? [{ selector: values.autoCommission.trim() }] : [])
        : current?.autoCommission.map((a) => ({ selector: a.selector })) ?? [],
      soakMs: durationFlag('--soak', values.soak) ?? current?.soakMs ?? 0,
      // `--allow-path ""` clears the list; no --allow-path keeps it.
      allowedPaths: given.has('allowPath') ? values.allowPath.filter((p) => p.trim() !== '') : current?.allowedPaths ?? [],
    };
    const saved = await client.setGroup(group, current?.revision ?? '');
    const cleared = current && current.dependsOn.length > 0 && saved.dependsOn.length === 0 ? `; dependency on ${current.dependsOn.join(', ')} cleared` : '';
    printResult(context, groupObject(saved), () => `group ${saved.name} ${current ? 'updated' : 'created'}: ${saved.bundle}@${saved.version}${cleared}\n`);
    return EXIT.ok;
  },
});

const GROUP_DELETE_OPTIONS = {
  force: { kind: 'boolean', description: 'delete although Decommissioned, Failed, New or Discovered nodes still name the group (never while one is Commissioned, in a transition or running a job)' },
} as const;

export const groupDelete = defineCommand<CliContext, typeof GROUP_DELETE_OPTIONS>({
  name: 'delete',
  aliases: ['rm'],
  summary: 'Delete a group (refused while nodes are in it, or another group depends on it)',
  usage: 'group delete NAME [--force]',
  example: 'clusterctl group delete canary\nclusterctl group delete canary --force   # its nodes are all Decommissioned or Failed',
  options: GROUP_DELETE_OPTIONS,
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'which group? give its name (list them with: clusterctl groups)' },
  async run({ values, positionals, context }) {
    const res = await context.client.deleteGroup(positionals[0], values.force);
    printResult(context, { group: positionals[0], nodes: res.nodes }, () =>
      `group ${positionals[0]} deleted` + (res.nodes.length ? ` (node${res.nodes.length === 1 ? '' : 's'} ${res.nodes.join(', ')} still name it)` : '') + '\n');
    return EXIT.ok;
  },
});
