/**
 * `clusterctl node describe ID` (also `node get ID`, Contiv's spelling, where `-j` means
 * JSON): the node record and its full hardware facts.
 */
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { formatJson, formatYaml } from '../output';
import { describeNode, nodeObject, parseFactsJson } from '../node-view';

export const NODE_DESCRIBE_OPTIONS = {
  json: {
    kind: 'boolean',
    short: 'j',
    description: 'print JSON (same as -o json)',
  },
} as const;

export const nodeDescribe = defineCommand<CliContext, typeof NODE_DESCRIBE_OPTIONS>({
  name: 'describe',
  aliases: ['get', 'show'],
  summary: 'Show one node: its record and full hardware facts',
  usage: 'node describe ID [-o json|yaml] [-j]',
  example: 'clusterctl node describe node-1\nclusterctl node get node-1 -j | jq .facts.cpu',
  options: NODE_DESCRIBE_OPTIONS,
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'which node? give its ID (list nodes with: clusterctl nodes)' },
  async run({ values, positionals, context }) {
    const id = positionals[0];
    const detail = await context.client.getNode(id);
    if (!detail.node) throw new Error(`the coordinator answered without a node record for ${id}`);
    const format = values.json ? 'json' : context.format;
    const doc = { node: nodeObject(detail.node), facts: parseFactsJson(detail.factsJson) };
    switch (format) {
      case 'json': context.out.write(formatJson(doc)); break;
      case 'yaml': context.out.write(formatYaml(doc)); break;
      case 'table':
      case 'wide': context.out.write(describeNode(detail.node, detail.factsJson, context.clock.now())); break;
    }
    return EXIT.ok;
  },
});
