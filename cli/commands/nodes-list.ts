/**
 * `clusterctl nodes` (= `nodes list`, Contiv's `nodes get`): the inventory as a table, wide
 * table, JSON array or YAML list; `--watch` follows changes until Ctrl-C.
 */
import { InvalidArgumentError } from '../../shared/errors';
import { parseSelector } from '../../shared/selector';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { formatJson, formatTable, formatYaml, useColour } from '../output';
import { NODE_COLUMNS, NODE_WIDE_COLUMNS, nodeObject, nodeRow, nodeWideRow } from '../node-view';
import { NodeWatchPrinter } from '../node-watch-printer';

export const NODES_LIST_OPTIONS = {
  selector: {
    kind: 'string',
    short: 'l',
    description: 'only nodes whose labels match (kubectl syntax: role=worker,rack!=r1,gpu)',
    placeholder: 'SELECTOR',
  },
  watch: {
    kind: 'boolean',
    short: 'w',
    description: 'after the list, print every change until Ctrl-C (JSON: one object per line)',
  },
  // Contiv's `nodes get -j`.
  json: {
    kind: 'boolean',
    short: 'j',
    description: 'print JSON (same as -o json)',
  },
} as const;

/** Rows arriving within this window are printed as one aligned batch (the initial list). */
const WATCH_BATCH_MS = 150;

export const nodesList = defineCommand<CliContext, typeof NODES_LIST_OPTIONS>({
  name: 'list',
  aliases: ['get', 'ls'],
  summary: 'List nodes: lifecycle state, reachability, group and hardware summary',
  usage: 'nodes [list] [-l SELECTOR] [-o table|wide|json|yaml] [-j] [--watch]',
  example: 'clusterctl nodes\nclusterctl nodes -l role=worker -o wide\nclusterctl nodes -o json | jq -r \'.[] | select(.reachable) | .id\'\nclusterctl nodes --watch',
  options: NODES_LIST_OPTIONS,
  // One word is accepted only to explain itself: `nodes get node-1` is a natural mistake.
  maxPositionals: 1,
  async run({ values, positionals, context }) {
    if (positionals.length > 0) {
      throw new InvalidArgumentError(`"nodes" lists every node; to show one: clusterctl node describe ${positionals[0]}`);
    }
    const format = values.json ? 'json' : context.format;
    const selector = values.selector ?? '';
    // Checked here too (the server checks again) so a typo fails at once, without a round trip.
    parseSelector(selector);
    const client = context.client;
    const colour = useColour(context.out, context.env);
    const now = (): number => context.clock.now();

    if (!values.watch) {
      const nodes = await client.listNodes(selector);
      if (nodes.length === 0 && (format === 'table' || format === 'wide')) {
        // As kubectl: an empty table alone looks like a failure; JSON/YAML stay pure data ([]).
        context.note(selector ? `no nodes match -l ${selector}` : 'no nodes yet (agents register when they start)');
        return EXIT.ok;
      }
      switch (format) {
        case 'json': context.out.write(formatJson(nodes.map(nodeObject))); break;
        case 'yaml': context.out.write(formatYaml(nodes.map(nodeObject))); break;
        case 'wide': context.out.write(formatTable(NODE_WIDE_COLUMNS, nodes.map((n) => nodeWideRow(n, now())), { colour })); break;
        case 'table': context.out.write(formatTable(NODE_COLUMNS, nodes.map((n) => nodeRow(n, now())), { colour })); break;
      }
      return EXIT.ok;
    }

    const printer = new NodeWatchPrinter(context.out, format, now, colour);
    let timer: NodeJS.Timeout | undefined;
    const watch = await client.watchNodes(selector, (e) => {
      printer.push(e);
      timer ??= setTimeout(() => {
        timer = undefined;
        printer.flush();
      }, WATCH_BATCH_MS);
    });
    void context.interrupted.then(() => watch.cancel());
    try {
      await watch.done;
    } finally {
      if (timer) clearTimeout(timer);
      printer.flush();
    }
    return EXIT.ok;
  },
});
