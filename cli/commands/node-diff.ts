/**
 * `clusterctl node diff A B` (two nodes now), `node diff A --at T` (A then vs A now) and
 * `node diff A B --at T` (both then): what differs in facts, labels, applied units (each unit's
 * digest as rendered with the inputs the node's last apply recorded) and the main record fields.
 * The question asked when one node of a group misbehaves.
 */
import type { Difference__Output } from '../../generated/cluster/v1/Difference';
import type { NodeDiffSide__Output } from '../../generated/cluster/v1/NodeDiffSide';
import { InvalidArgumentError } from '../../shared/errors';
import { parseAtTime } from '../../shared/node-history';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { formatTable, type Row } from '../output';
import { printResult } from './print';

export const NODE_DIFF_OPTIONS = {
  at: {
    kind: 'string', placeholder: 'TIME',
    description: 'compare with the moment TIME (RFC 3339, or before now: -30m, -2h, -7d): A then vs A now; with B, both then',
  },
} as const;

const KINDS = [['fact', 'facts'], ['label', 'labels'], ['unit', 'units'], ['record', 'record']] as const;

function sideName(s: NodeDiffSide__Output | null): string {
  if (!s) return '?';
  return `${s.nodeId} ${s.at ? `at ${s.at}` : 'now'}`;
}

function value(present: boolean, v: string): string {
  return present ? v : '(absent)';
}

function differenceObject(d: Difference__Output): Record<string, unknown> {
  return { key: d.key, ...(d.presentA ? { a: d.a } : {}), ...(d.presentB ? { b: d.b } : {}) };
}

export const nodeDiff = defineCommand<CliContext, typeof NODE_DIFF_OPTIONS>({
  name: 'diff',
  summary: 'What differs between two nodes, or one node now and at a past moment: facts, labels, applied units',
  usage: 'node diff A [B] [--at TIME] [-o table|json|yaml]',
  example: 'clusterctl node diff node-1 node-2\nclusterctl node diff node-1 --at -2h\nclusterctl node diff node-1 node-2 --at 2026-12-01T10:00:00Z',
  description: 'A moment is read from the node\'s history (`node history ID`); a time before the node existed or before the ' +
    'history kept is refused and says so. Units are compared by the digest of each unit as rendered for that node.',
  options: NODE_DIFF_OPTIONS,
  maxPositionals: 2,
  minPositionals: { count: 1, message: 'which nodes? give A B (two nodes) or A --at TIME (one node, then and now)' },
  async run({ values, positionals, context }) {
    const [a, b = ''] = positionals;
    const at = values.at ?? '';
    if (!b && !at) throw new InvalidArgumentError('node diff needs a second node (node diff A B) or a moment (node diff A --at TIME)');
    if (at) parseAtTime(at, context.clock.now()); // refused here, with what is accepted, before any call
    const diff = await context.client.diffNodes(b ? { a, aAt: at, b, bAt: at } : { a, aAt: at, b: a, bAt: '' });
    const sections = KINDS.map(([word, field]) => ({ word, list: diff[field] }));
    const data = {
      a: diff.a, b: diff.b,
      ...Object.fromEntries(KINDS.map(([, field]) => [field, diff[field].map(differenceObject)])),
    };
    printResult(context, data, () => {
      const title = `A: ${sideName(diff.a)}${diff.a?.recordedAt ? ` (recorded ${diff.a.recordedAt})` : ''}\n` +
        `B: ${sideName(diff.b)}${diff.b?.recordedAt ? ` (recorded ${diff.b.recordedAt})` : ''}\n`;
      const rows: Row[] = sections.flatMap(({ word, list }) => list.map((d): Row => [word, d.key, value(d.presentA, d.a), value(d.presentB, d.b)]));
      return rows.length === 0 ? `${title}no differences in facts, labels, applied units or record\n` : `${title}${formatTable(['WHAT', 'KEY', 'A', 'B'], rows)}`;
    });
    return EXIT.ok;
  },
});
