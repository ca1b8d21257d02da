/**
 * Trust commands (admin role): join tokens for new machines, users and their credentials
 * files, and revocation of users and nodes.
 *
 *   clusterctl token create [--ttl 1h] [--uses N] [--description TEXT]   prints the token once
 *   clusterctl token list | token revoke ID
 *   clusterctl user add NAME --role viewer|operator|admin [-f FILE]       writes FILE (0600)
 *   clusterctl user list | user revoke NAME
 *   clusterctl node revoke ID
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { JoinTokenInfo__Output } from '../../generated/cluster/v1/JoinTokenInfo';
import type { UserInfo__Output } from '../../generated/cluster/v1/UserInfo';
import { InvalidArgumentError, AlreadyExistsError } from '../../shared/errors';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { formatBool, formatTable, orDash, useColour } from '../output';
import { printResult } from './print';

const TOKEN_CREATE_OPTIONS = {
  ttl: { kind: 'duration', unit: 's', description: 'how long the token can be used [default: 24h]', placeholder: 'DURATION', min: 1000 },
  neverExpires: { kind: 'boolean', description: 'the token does not expire (revoke it when done)' },
  uses: { kind: 'int', min: 1, description: 'how many machines may join with it [default: unlimited]', placeholder: 'N' },
  description: { kind: 'string', short: 'd', description: 'what the token is for (shown by token list)', placeholder: 'TEXT' },
} as const;

export const tokenCreate = defineCommand<CliContext, typeof TOKEN_CREATE_OPTIONS>({
  name: 'create',
  summary: 'Create a join token for new machines (printed once; the cluster keeps only its hash)',
  usage: 'token create [--ttl DURATION] [--uses N] [--description TEXT]',
  example: 'clusterctl token create --ttl 1h --uses 3 --description "rack 12"\ncluster-agent --join-token "$(clusterctl token create --uses 1)"',
  options: TOKEN_CREATE_OPTIONS,
  async run({ values, context }) {
    if (values.neverExpires && values.ttl !== undefined) throw new InvalidArgumentError('say --ttl or --never-expires, not both');
    const ttlSeconds = values.ttl === undefined ? 0 : Math.ceil(values.ttl / 1000);
    const res = await context.client.createToken({ ttlSeconds, neverExpires: values.neverExpires, uses: values.uses ?? 0, description: values.description ?? '' });
    const info = res.info;
    printResult(context, { token: res.token, ...(info ? tokenObject(info) : {}) }, () => `${res.token}\n`);
    if (info && (context.format === 'table' || context.format === 'wide')) {
      context.note(`join token ${info.id} ${info.expiresAt ? `expires ${info.expiresAt}` : 'never expires'}; it is shown only now: cluster-agent --join-token TOKEN`);
    }
    return EXIT.ok;
  },
});

function tokenObject(t: JoinTokenInfo__Output): Record<string, unknown> {
  return { id: t.id, createdAt: t.createdAt, expiresAt: t.expiresAt || null, usesLeft: t.usesLeft < 0 ? null : t.usesLeft, description: t.description, revoked: t.revoked };
}

const TOKEN_COLUMNS = ['ID', 'CREATED', 'EXPIRES', 'USES LEFT', 'REVOKED', 'DESCRIPTION'];
const tokenRow = (t: JoinTokenInfo__Output): string[] => [
  t.id, t.createdAt, t.expiresAt || 'never', t.usesLeft < 0 ? 'unlimited' : String(t.usesLeft), formatBool(t.revoked), orDash(t.description),
];

export const tokenList = defineCommand<CliContext, Record<string, never>>({
  name: 'list',
  aliases: ['ls'],
  summary: 'List join tokens (ids only: the secrets are not kept)',
  usage: 'token list [flags]',
  example: 'clusterctl token list\nclusterctl token list -o json',
  async run({ context }) {
    const tokens = await context.client.listTokens();
    printResult(context, tokens.map(tokenObject), () => formatTable(TOKEN_COLUMNS, tokens.map(tokenRow), { colour: useColour(context.out, context.env) }));
    return EXIT.ok;
  },
});

export const tokenRevoke = defineCommand<CliContext, Record<string, never>>({
  name: 'revoke',
  summary: 'Revoke a join token: no machine can join with it any more',
  usage: 'token revoke ID',
  example: 'clusterctl token revoke 8k2x9a',
  minPositionals: { count: 1, message: 'give the token id (clusterctl token list shows them)' },
  maxPositionals: 1,
  async run({ positionals, context }) {
    const t = await context.client.revokeToken(positionals[0]);
    printResult(context, tokenObject(t), () => `join token ${t.id} revoked\n`);
    return EXIT.ok;
  },
});

const USER_ADD_OPTIONS = {
  role: { kind: 'string', short: 'r', description: 'viewer reads; operator also runs lifecycle jobs; admin also exec, tokens, users, secrets', choices: ['viewer', 'operator', 'admin'], placeholder: 'ROLE' },
  file: { kind: 'string', short: 'f', description: 'where to write the credentials file [default: ./NAME.yaml]', placeholder: 'FILE' },
  validityDays: { kind: 'int', min: 1, description: 'certificate validity in days [default: 365]', placeholder: 'DAYS' },
} as const;

export const userAdd = defineCommand<CliContext, typeof USER_ADD_OPTIONS>({
  name: 'add',
  summary: 'Add a user with a role and write their credentials file (CA, certificate, key; mode 0600)',
  usage: 'user add NAME --role viewer|operator|admin [-f FILE]',
  example: 'clusterctl user add alice --role operator -f alice.yaml\nclusterctl --credentials alice.yaml nodes',
  options: USER_ADD_OPTIONS,
  minPositionals: { count: 1, message: 'give the user name (e.g. clusterctl user add alice --role operator)' },
  maxPositionals: 1,
  async run({ values, positionals, context }) {
    const name = positionals[0];
    if (!values.role) throw new InvalidArgumentError(`user add needs --role viewer, operator or admin (e.g. clusterctl user add ${name} --role operator)`);
    const file = resolve(values.file ?? `${name}.yaml`);
    const res = await context.client.addUser(name, values.role, values.validityDays ?? 0);
    try {
      // wx: never overwrite someone's credentials; 0600: the file holds a private key.
      writeFileSync(file, res.credentials, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new AlreadyExistsError(`user ${name} was added (certificate ${res.serial}), but ${file} exists and was not overwritten: run clusterctl user revoke ${name} and add again with another -f FILE`);
      throw new InvalidArgumentError(`user ${name} was added (certificate ${res.serial}), but ${file} could not be written (${(err as Error).message}): revoke and add again with -f FILE`);
    }
    printResult(context, { name, role: values.role, serial: res.serial, notAfter: res.notAfter, file }, () =>
      `user ${name} (${values.role}) added; credentials written to ${file} (mode 0600, valid until ${res.notAfter})\nuse: clusterctl --credentials ${file} status\n`);
    return EXIT.ok;
  },
});

const USER_COLUMNS = ['NAME', 'ROLE', 'CREATED', 'REVOKED', 'CERTIFICATES'];
const userObject = (u: UserInfo__Output): Record<string, unknown> => ({ name: u.name, role: u.role, createdAt: u.createdAt, revoked: u.revoked, serials: u.serials });

export const userList = defineCommand<CliContext, Record<string, never>>({
  name: 'list',
  aliases: ['ls'],
  summary: 'List users and their roles',
  usage: 'user list [flags]',
  example: 'clusterctl user list',
  async run({ context }) {
    const users = await context.client.listUsers();
    printResult(context, users.map(userObject), () => formatTable(
      USER_COLUMNS, users.map((u) => [u.name, u.role, u.createdAt, formatBool(u.revoked), String(u.serials.length)]), { colour: useColour(context.out, context.env) },
    ));
    return EXIT.ok;
  },
});

const REVOKE_OPTIONS = {
  reason: { kind: 'string', description: 'why (recorded in the event and the revocation)', placeholder: 'TEXT' },
} as const;

export const userRevoke = defineCommand<CliContext, typeof REVOKE_OPTIONS>({
  name: 'revoke',
  summary: 'Revoke a user: their certificates are refused from the next call on',
  usage: 'user revoke NAME [--reason TEXT]',
  example: 'clusterctl user revoke alice --reason "left the team"',
  options: REVOKE_OPTIONS,
  minPositionals: { count: 1, message: 'give the user name (clusterctl user list shows them)' },
  maxPositionals: 1,
  async run({ values, positionals, context }) {
    const res = await context.client.revokeUser(positionals[0], values.reason ?? '');
    printResult(context, { name: positionals[0], serials: res.serials }, () => `user ${positionals[0]} revoked (${res.serials.length} certificate(s))\n`);
    return EXIT.ok;
  },
});

export const nodeRevoke = defineCommand<CliContext, typeof REVOKE_OPTIONS>({
  name: 'revoke',
  summary: "Revoke a node's certificates: its agent is disconnected at once and must join again with a token",
  usage: 'node revoke ID [--reason TEXT]',
  example: 'clusterctl node revoke node-7 --reason "reinstalled"',
  options: REVOKE_OPTIONS,
  minPositionals: { count: 1, message: 'give the node id (e.g. clusterctl node revoke node-7)' },
  maxPositionals: 1,
  async run({ values, positionals, context }) {
    const res = await context.client.revokeNode(positionals[0], values.reason ?? '');
    printResult(context, { nodeId: positionals[0], serials: res.serials }, () => `node ${positionals[0]} revoked (${res.serials.length} certificate(s)); it can join again with a token\n`);
    return EXIT.ok;
  },
});
