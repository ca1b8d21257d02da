/**
 * `clusterctl node maintenance on|off ID... [--reason TEXT]` (kubectl's cordon/uncordon): a node
 * in maintenance is left out of automatic actions (auto-commission, scheduled verify) and jobs
 * refuse it unless --force. Setting the flag it already has changes nothing.
 */
import type { Node__Output } from '../../generated/cluster/v1/Node';
import { InvalidArgumentError } from '../../shared/errors';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { formatTable, useColour } from '../output';
import { NODE_COLUMNS, nodeObject, nodeRow } from '../node-view';
import { printResult } from './print';

export const NODE_MAINTENANCE_OPTIONS = {
  reason: {
    kind: 'string',
    short: 'r',
    description: 'why (recorded in the event)',
    placeholder: 'TEXT',
  },
} as const;

export const nodeMaintenance = defineCommand<CliContext, typeof NODE_MAINTENANCE_OPTIONS>({
  name: 'maintenance',
  aliases: ['cordon'],
  summary: 'Put nodes in maintenance (on) or take them out (off)',
  usage: 'node maintenance on|off ID... [--reason TEXT]',
  example: 'clusterctl node maintenance on node-1 --reason "disk swap, ticket 4711"\nclusterctl node maintenance off node-1',
  options: NODE_MAINTENANCE_OPTIONS,
  maxPositionals: 10_000,
  minPositionals: { count: 2, message: 'say on or off, then the node ids (e.g. clusterctl node maintenance on node-1)' },
  async run({ values, positionals, context }) {
    const [mode, ...ids] = positionals;
    if (mode !== 'on' && mode !== 'off') {
      throw new InvalidArgumentError(`node maintenance takes on or off first, not ${JSON.stringify(mode)} (e.g. clusterctl node maintenance on ${mode})`);
    }
    const client = context.client;
    const nodes: Node__Output[] = [];
    for (const id of ids) nodes.push(await client.setMaintenance(id, mode === 'on', values.reason ?? ''));
    const now = context.clock.now();
    printResult(context, nodes.map(nodeObject), () => formatTable(NODE_COLUMNS, nodes.map((n) => nodeRow(n, now)), { colour: useColour(context.out, context.env) }));
    return EXIT.ok;
  },
});
