/**
 * Pre-registered nodes (Contiv's `clusterctl discover <ip|serial|mac>...`): each identifier is a
 * New node (`serial-SN123`) until an agent whose facts match joins; then that agent's node takes
 * its labels and the pre-registration is gone. `discover list` shows the ones still waiting,
 * `discover delete` removes them.
 */
import type { Node__Output } from '../../generated/cluster/v1/Node';
import { InvalidArgumentError } from '../../shared/errors';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { ageSince, formatTable } from '../output';
import { formatLabels, nodeObject } from '../node-view';
import { printResult } from './print';

function table(nodes: readonly Node__Output[], nowMs: number): string {
  if (nodes.length === 0) return 'no pre-registered nodes (add some with: clusterctl discover 10.0.0.21 SN-4711 52:54:00:12:34:56)\n';
  return formatTable(['ID', 'STATE', 'EXPECTS', 'LABELS', 'AGE'], nodes.map((n) => [n.id, n.state, n.preRegisteredBy, formatLabels(n.labels), ageSince(n.createdAt, nowMs)]));
}

/** `k=v` pairs of --label. Pure. */
export function parseLabels(items: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`--label ${JSON.stringify(item)}: use KEY=VALUE`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

export const DISCOVER_OPTIONS = {
  label: { kind: 'list', placeholder: 'KEY=VALUE', description: 'a label the node gets when its agent joins (repeat the flag; the agent\'s own labels win)' },
} as const;

export const discoverList = defineCommand<CliContext, Record<string, never>>({
  name: 'list',
  aliases: ['ls', 'get'],
  summary: 'List the pre-registered nodes whose agent has not joined yet',
  usage: 'discover list [-o table|json|yaml]',
  example: 'clusterctl discover list\nclusterctl discover list -o json | jq -r \'.[].id\'',
  async run({ context }) {
    const nodes = (await context.client.listNodes()).filter((n) => n.preRegisteredBy);
    printResult(context, nodes.map(nodeObject), () => table(nodes, context.clock.now()));
    return EXIT.ok;
  },
});

export const discoverDelete = defineCommand<CliContext, Record<string, never>>({
  name: 'delete',
  aliases: ['rm'],
  summary: 'Delete pre-registrations (by id, or by the identifier given to discover)',
  usage: 'discover delete ID|IP|SERIAL|MAC... [-o table|json|yaml]',
  example: 'clusterctl discover delete serial-SN-4711\nclusterctl discover delete 10.0.0.21',
  maxPositionals: 256,
  minPositionals: { count: 1, message: 'which pre-registrations? give their ids (list them with: clusterctl discover list)' },
  async run({ positionals, context }) {
    const nodes = await context.client.deletePreRegistered(positionals);
    printResult(context, nodes.map(nodeObject), () => nodes.map((n) => `deleted pre-registration ${n.id} (${n.preRegisteredBy})`).join('\n') + '\n');
    return EXIT.ok;
  },
});

export const discoverCommand = defineCommand<CliContext, typeof DISCOVER_OPTIONS>({
  name: 'discover',
  summary: 'Pre-register expected machines by IP, serial or MAC: New until their agent joins',
  usage: 'discover IP|SERIAL|MAC... [--label K=V ...] [-o table|json|yaml] | discover list | discover delete ID...',
  example: 'clusterctl discover 10.0.0.21 SN-4711 52:54:00:12:34:56 --label rack=r1\nclusterctl discover list\nclusterctl discover delete serial-SN-4711',
  options: DISCOVER_OPTIONS,
  subcommands: [discoverList, discoverDelete],
  maxPositionals: 256,
  minPositionals: { count: 1, message: 'which machines? give IP addresses, serial numbers or MAC addresses (or: discover list)' },
  async run({ values, positionals, context }) {
    const nodes = await context.client.discover(positionals, parseLabels(values.label ?? []));
    printResult(context, nodes.map(nodeObject), () => table(nodes, context.clock.now()));
    return EXIT.ok;
  },
});
