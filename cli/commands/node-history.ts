/**
 * `clusterctl node history ID`: every kept change of a node's record, oldest first, with its
 * time, actor, job and what changed (coordinator/node-history.ts). The history lives in its own
 * keys, so it outlives etcd compaction; the coordinator trims it by --history-retention[-age].
 */
import type { NodeHistoryEntry__Output } from '../../generated/cluster/v1/NodeHistoryEntry';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { formatTable, orDash, type Row } from '../output';
import { printResult } from './print';

export const NODE_HISTORY_OPTIONS = {
  limit: { kind: 'int', min: 0, default: 0, description: 'only the newest N entries (0: every kept entry)', placeholder: 'N' },
} as const;

const COLUMNS = ['SEQ', 'AT', 'TYPE', 'STATE', 'ACTOR', 'JOB', 'CHANGES'] as const;
const WIDE_COLUMNS = ['SEQ', 'AT', 'TYPE', 'STATE', 'ACTOR', 'JOB', 'CHANGES', 'MESSAGE'] as const;

export function historyEntryObject(e: NodeHistoryEntry__Output): Record<string, unknown> {
  return {
    seq: Number(e.seq), at: e.at, type: e.type, state: e.state, actor: e.actor, jobId: e.jobId, changes: e.changes, message: e.message,
    factsRecorded: e.factsRecorded,
  };
}

function row(e: NodeHistoryEntry__Output, wide: boolean): Row {
  const changes = [...e.changes, ...(e.factsRecorded && !e.changes.includes('facts changed') ? ['facts recorded'] : [])].join('; ');
  const base: Row = [e.seq, e.at, e.type, e.state, orDash(e.actor), orDash(e.jobId), orDash(changes)];
  return wide ? [...base, orDash(e.message)] : base;
}

export const nodeHistory = defineCommand<CliContext, typeof NODE_HISTORY_OPTIONS>({
  name: 'history',
  summary: 'Every change of a node\'s record (state, group, config, reachability, labels) with time, actor and job',
  usage: 'node history ID [--limit N] [-o table|wide|json|yaml]',
  example: 'clusterctl node history node-1\nclusterctl node history node-1 --limit 20 -o wide\nclusterctl node describe node-1 --at -2h',
  description: 'Entries are kept apart from etcd\'s revisions (compaction does not remove them) for the coordinator\'s ' +
    '--history-retention-age, at most --history-retention per node. See a moment with `node describe ID --at TIME`.',
  options: NODE_HISTORY_OPTIONS,
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'which node? give its ID (list nodes with: clusterctl nodes)' },
  async run({ values, positionals, context }) {
    const id = positionals[0];
    const history = await context.client.getNodeHistory(id, values.limit);
    if (history.entries.length === 0 && (context.format === 'table' || context.format === 'wide')) {
      context.note(`no history is kept for node ${id}`);
      return EXIT.ok;
    }
    printResult(context, { nodeId: history.nodeId, total: history.total, entries: history.entries.map(historyEntryObject) },
      (wide) => formatTable(wide ? WIDE_COLUMNS : COLUMNS, history.entries.map((e) => row(e, wide))));
    return EXIT.ok;
  },
});
