/**
 * `clusterctl node refresh-facts ID`: the node's agent collects its hardware facts now (instead
 * of at its next --facts-interval or hardware change) and the command returns once they are
 * stored, printing the node as `node describe` does.
 */
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { formatJson, formatYaml } from '../output';
import { describeNode, nodeObject, parseFactsJson } from '../node-view';

export const nodeRefreshFacts = defineCommand<CliContext, Record<string, never>>({
  name: 'refresh-facts',
  summary: 'Have a node\'s agent collect its hardware facts now; returns when they are stored',
  usage: 'node refresh-facts ID [-o json|yaml]',
  example: 'clusterctl node refresh-facts node-1\nclusterctl node refresh-facts node-1 -o json | jq .facts.disks',
  options: {},
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'which node? give its ID (list nodes with: clusterctl nodes)' },
  async run({ positionals, context }) {
    const id = positionals[0];
    const { detail, changed } = await context.client.refreshNodeFacts(id);
    if (!detail?.node) throw new Error(`the coordinator answered without a node record for ${id}`);
    const doc = { changed, node: nodeObject(detail.node), facts: parseFactsJson(detail.factsJson) };
    switch (context.format) {
      case 'json': context.out.write(formatJson(doc)); break;
      case 'yaml': context.out.write(formatYaml(doc)); break;
      case 'table':
      case 'wide':
        context.out.write(`node ${id}: facts ${changed ? 'changed (see: clusterctl events --node ' + id + ')' : 'unchanged'}\n\n`);
        context.out.write(describeNode(detail.node, detail.factsJson, context.clock.now()));
        break;
    }
    return EXIT.ok;
  },
});
