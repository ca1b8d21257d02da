/**
 * `clusterctl node label ID k=v k2-` (kubectl's spelling): sets and removes labels in one
 * change (one transaction, one event). Labels are what -l selectors and auto-commission match.
 */
import { InvalidArgumentError } from '../../shared/errors';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { formatTable, useColour } from '../output';
import { NODE_WIDE_COLUMNS, nodeObject, nodeWideRow } from '../node-view';
import { printResult } from './print';

/** `k=v` sets, `k-` removes; anything else is a one-line error. Pure, for tables. */
export function parseLabelArgs(args: readonly string[]): { set: Record<string, string>; remove: string[] } {
  const set: Record<string, string> = {};
  const remove: string[] = [];
  for (const a of args) {
    const eq = a.indexOf('=');
    if (eq > 0) set[a.slice(0, eq)] = a.slice(eq + 1);
    else if (a.endsWith('-') && a.length > 1) remove.push(a.slice(0, -1));
    else throw new InvalidArgumentError(`cannot read label change ${JSON.stringify(a)}: use KEY=VALUE to set or KEY- to remove (e.g. rack=r1 gpu-)`);
  }
  return { set, remove };
}

export const nodeLabel = defineCommand<CliContext, Record<string, never>>({
  name: 'label',
  summary: 'Set (k=v) and remove (k-) labels of a node',
  usage: 'node label ID KEY=VALUE... KEY-...',
  example: 'clusterctl node label node-1 rack=r1 role=worker\nclusterctl node label node-1 gpu-',
  maxPositionals: 10_000,
  minPositionals: { count: 2, message: 'give a node id and at least one change (KEY=VALUE or KEY-)' },
  async run({ positionals, context }) {
    const [id, ...changes] = positionals;
    const { set, remove } = parseLabelArgs(changes);
    const node = await context.client.setLabels(id, set, remove);
    printResult(context, nodeObject(node), () => formatTable(NODE_WIDE_COLUMNS, [nodeWideRow(node, context.clock.now())], { colour: useColour(context.out, context.env) }));
    return EXIT.ok;
  },
});
