/**
 * `clusterctl events [--node ID] [--job ID] [--watch]`: the audit trail, oldest first (every
 * transition and operator action); --watch then prints each new event until Ctrl-C.
 */
import type { Event__Output } from '../../generated/cluster/v1/Event';
import { InvalidArgumentError } from '../../shared/errors';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { ageSince, formatJsonLine, formatTable, formatYaml, orDash, type Row } from '../output';
import { printResult } from './print';

export const EVENTS_OPTIONS = {
  node: { kind: 'string', description: 'only events of this node', placeholder: 'ID' },
  job: { kind: 'string', description: 'only events of this job', placeholder: 'ID' },
  limit: { kind: 'int', min: 1, default: 100, description: 'the newest N matching events', placeholder: 'N' },
  after: { kind: 'int', min: 0, default: 0, description: 'only events after this sequence number', placeholder: 'SEQ' },
  watch: { kind: 'boolean', short: 'w', description: 'after the list, print every new event until Ctrl-C (JSON: one per line)' },
} as const;

export const EVENT_COLUMNS = ['SEQ', 'AGE', 'TYPE', 'NODE', 'JOB', 'CHANGE', 'MESSAGE'] as const;
export const EVENT_WIDE_COLUMNS = ['SEQ', 'AT', 'TYPE', 'NODE', 'JOB', 'CHANGE', 'ACTOR', 'MESSAGE'] as const;

export function eventObject(e: Event__Output): Record<string, unknown> {
  return { seq: Number(e.seq), at: e.at, type: e.type, nodeId: e.nodeId, jobId: e.jobId, from: e.from, to: e.to, message: e.message, actor: e.actor };
}

function change(e: Event__Output): string {
  return e.from || e.to ? `${orDash(e.from)}->${orDash(e.to)}` : '-';
}

export function eventRow(e: Event__Output, nowMs: number, wide: boolean): Row {
  return wide
    ? [e.seq, e.at, e.type, orDash(e.nodeId), orDash(e.jobId), change(e), orDash(e.actor), orDash(e.message)]
    : [e.seq, ageSince(e.at, nowMs), e.type, orDash(e.nodeId), orDash(e.jobId), change(e), orDash(e.message)];
}

export const events = defineCommand<CliContext, typeof EVENTS_OPTIONS>({
  name: 'events',
  aliases: ['event'],
  summary: 'The audit trail: every state change and operator action, oldest first',
  usage: 'events [--node ID] [--job ID] [--limit N] [--after SEQ] [--watch] [-o table|wide|json|yaml]',
  example: 'clusterctl events\nclusterctl events --node node-1 -o wide\nclusterctl events --job j-20240101-abc123 --watch',
  options: EVENTS_OPTIONS,
  async run({ values, context }) {
    for (const [flag, v] of [['--node', values.node], ['--job', values.job]] as const) {
      if (v !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$/.test(v)) throw new InvalidArgumentError(`${flag} ${JSON.stringify(v)} is not an id (letters, digits and . _ : -)`);
    }
    const filter = { nodeId: values.node ?? '', jobId: values.job ?? '' };
    const client = context.client;
    const list = await client.listEvents({ ...filter, limit: values.limit, afterSeq: String(values.after) });
    const now = context.clock.now();
    const wide = context.format === 'wide';
    if (!values.watch) {
      if (list.length === 0 && (context.format === 'table' || wide)) {
        context.note('no events match');
        return EXIT.ok;
      }
      printResult(context, list.map(eventObject), (w) => formatTable(w ? EVENT_WIDE_COLUMNS : EVENT_COLUMNS, list.map((e) => eventRow(e, now, w))));
      return EXIT.ok;
    }
    // Watch: the list as aligned lines, then each new event in the same columns (widths may grow).
    const header = wide ? EVENT_WIDE_COLUMNS : EVENT_COLUMNS;
    const print = (batch: readonly Event__Output[], withHeader: boolean): void => {
      if (batch.length === 0 && !withHeader) return;
      switch (context.format) {
        case 'json': for (const e of batch) context.out.write(formatJsonLine(eventObject(e))); break;
        case 'yaml': for (const e of batch) context.out.write(`---\n${formatYaml(eventObject(e))}`); break;
        default: {
          const text = formatTable(header, batch.map((e) => eventRow(e, context.clock.now(), wide)));
          context.out.write(withHeader ? text : text.split('\n').slice(1).join('\n'));
        }
      }
    };
    print(list, true);
    const last = list.length ? Number(list[list.length - 1].seq) : values.after;
    const watch = await client.watchEvents({ ...filter, afterSeq: String(last) }, (e) => print([e], false));
    void context.interrupted.then(() => watch.cancel());
    await watch.done;
    return EXIT.ok;
  },
});
