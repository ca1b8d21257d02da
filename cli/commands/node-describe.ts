/**
 * `clusterctl node describe ID` (also `node get ID`, Contiv's spelling, where `-j` means
 * JSON): the node record and its full hardware facts. With `--at TIME`: the record, the applied
 * config and the facts as the node's history says they were then.
 */
import { parseAtTime } from '../../shared/node-history';
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
  at: {
    kind: 'string',
    placeholder: 'TIME',
    description: 'the node as it was at TIME, from its history: RFC 3339 (2026-12-01T10:00:00Z) or before now (-30m, -2h, -7d)',
  },
} as const;

export const nodeDescribe = defineCommand<CliContext, typeof NODE_DESCRIBE_OPTIONS>({
  name: 'describe',
  aliases: ['get', 'show'],
  summary: 'Show one node: its record and full hardware facts',
  usage: 'node describe ID [--at TIME] [-o json|yaml] [-j]',
  example: 'clusterctl node describe node-1\nclusterctl node get node-1 -j | jq .facts.cpu\nclusterctl node describe node-1 --at -2h\nclusterctl node describe node-1 --at 2026-12-01T10:00:00Z -o json',
  options: NODE_DESCRIBE_OPTIONS,
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'which node? give its ID (list nodes with: clusterctl nodes)' },
  async run({ values, positionals, context }) {
    const id = positionals[0];
    const at = values.at ?? '';
    if (at) parseAtTime(at, context.clock.now()); // refused here, with what is accepted, before any call
    const detail = await context.client.getNode(id, at);
    if (!detail.node) throw new Error(`the coordinator answered without a node record for ${id}`);
    const format = values.json ? 'json' : context.format;
    const history = at
      ? { history: { at: detail.historyAt, seq: Number(detail.historySeq), type: detail.historyType, factsRecordedAt: detail.factsRecordedAt } }
      : {};
    const doc = { node: nodeObject(detail.node), facts: parseFactsJson(detail.factsJson), ...history };
    switch (format) {
      case 'json': context.out.write(formatJson(doc)); break;
      case 'yaml': context.out.write(formatYaml(doc)); break;
      case 'table':
      case 'wide':
        if (at) {
          context.out.write(`As of ${at}: the record written at ${detail.historyAt} (${detail.historyType}, event ${String(detail.historySeq)}); ` +
            `${detail.factsRecordedAt ? `facts recorded at ${detail.factsRecordedAt}` : 'no facts recorded by then'}\n`);
        }
        context.out.write(describeNode(detail.node, detail.factsJson, context.clock.now()));
        break;
    }
    return EXIT.ok;
  },
});
