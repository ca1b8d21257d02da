/**
 * `clusterctl node delete ID`: forgets a node (its record and facts). Only a Decommissioned node,
 * or one unreachable for a day; --force for any node without a live agent or a running job
 * (coordinator/node-admin.ts, nodeDeleteProblem, says why otherwise).
 */
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { nodeObject } from '../node-view';
import { printResult } from './print';

const NODE_DELETE_OPTIONS = {
  force: { kind: 'boolean', description: 'delete a node in any state, as long as its agent is not connected and it runs no job' },
} as const;

export const nodeDelete = defineCommand<CliContext, typeof NODE_DELETE_OPTIONS>({
  name: 'delete',
  aliases: ['rm'],
  summary: 'Forget a Decommissioned (or long unreachable) node: removes its record and facts',
  usage: 'node delete ID [--force]',
  example: 'clusterctl node delete node-7\nclusterctl node delete node-9 --force   # Failed, agent stopped for good\nclusterctl node revoke node-7          # its certificate: revoke it too',
  options: NODE_DELETE_OPTIONS,
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'which node? give its ID (list them with: clusterctl nodes)' },
  async run({ values, positionals, context }) {
    const node = await context.client.deleteNode(positionals[0], values.force);
    printResult(context, nodeObject(node), () =>
      `node ${node.id} deleted (was ${node.state}); its certificate stays valid until: clusterctl node revoke ${node.id}\n`);
    return EXIT.ok;
  },
});
