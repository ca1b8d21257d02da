/**
 * Pre-registered nodes (`clusterctl discover <ip|serial|mac>...`, the design's "New: known to
 * the inventory, pre-registered by serial/MAC"): a node record in state New that names what
 * identifies the expected machine (`expected`) and carries the labels it should get, but has
 * no agent. When an agent joins whose facts match (system serial, a MAC or an IP address of
 * one of its interfaces), the inventory reconciler makes that agent's record the node: the
 * labels carry over (the agent's own win), the record says which pre-registration it was, and
 * the pre-registered record is deleted, in one transaction. Pure functions, tested by table.
 */
import { isIP } from 'node:net';
import { InvalidArgumentError, isValidSegment, type Facts, type NodeRecord } from '../shared';

export type ExpectedKind = 'ip' | 'serial' | 'mac';

export interface Expected {
  kind: ExpectedKind;
  value: string;
}

/** Node ids a pre-registration record can have (`serial-SN123`, `mac-…`, `ip-…`). */
export const PRE_REGISTERED_ID = /^(?:ip|serial|mac)-/;

const MAC = /^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(?:\1[0-9a-fA-F]{2}){4}$/;
const SERIAL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$/;

/** What one `discover` argument names, and the node id of its record (`serial-SN123`). */
export function parseIdentifier(text: string): Expected & { id: string } {
  const t = text.trim();
  let e: Expected;
  if (isIP(t)) e = { kind: 'ip', value: t.toLowerCase() };
  else if (MAC.test(t)) e = { kind: 'mac', value: t.toLowerCase().replace(/-/g, ':') };
  else if (SERIAL.test(t)) e = { kind: 'serial', value: t };
  else {
    throw new InvalidArgumentError(
      `${JSON.stringify(t.slice(0, 64))} is not an IP address, a MAC address (aa:bb:cc:dd:ee:ff) or a serial number (letters, digits, . _ -)`,
    );
  }
  const id = `${e.kind}-${e.value}`;
  if (!isValidSegment(id)) throw new InvalidArgumentError(`${JSON.stringify(t.slice(0, 64))} cannot name a node record`);
  return { ...e, id };
}

/** `serial SN123` */
export function describeExpected(e: Expected): string {
  return `${e.kind} ${e.value}`;
}

/** Whether a machine's facts are the expected one's. */
export function factsMatch(e: Expected, facts: Partial<Facts> | undefined): boolean {
  if (!facts) return false;
  const nics = Array.isArray(facts.network) ? facts.network : [];
  switch (e.kind) {
    case 'serial': return !!facts.system?.serial && facts.system.serial === e.value;
    case 'mac': return nics.some((n) => typeof n.mac === 'string' && n.mac.toLowerCase() === e.value);
    case 'ip': return nics.some((n) => [...(n.ipv4 ?? []), ...(n.ipv6 ?? [])].some((a) => a.toLowerCase() === e.value));
  }
}

export interface PreRegistrationMatch {
  nodeId: string;
  /** The pre-registered records it consumes, by id. */
  expectedIds: string[];
}

/**
 * Which agents' records take which pre-registrations. A pre-registration that matches more than
 * one node is ambiguous and left alone (listed in `ambiguous`) rather than guessed.
 */
export function planPreRegistrationMatches(
  nodes: readonly NodeRecord[], facts: ReadonlyMap<string, Partial<Facts>>,
): { matches: PreRegistrationMatch[]; ambiguous: { expectedId: string; nodeIds: string[] }[] } {
  const expected = nodes.filter((n) => n.expected).sort((a, b) => (a.id < b.id ? -1 : 1));
  const agents = nodes.filter((n) => !n.expected);
  const byNode = new Map<string, string[]>();
  const ambiguous: { expectedId: string; nodeIds: string[] }[] = [];
  for (const e of expected) {
    const hits = agents.filter((n) => factsMatch(e.expected as Expected, facts.get(n.id))).map((n) => n.id).sort();
    if (hits.length === 1) byNode.set(hits[0], [...(byNode.get(hits[0]) ?? []), e.id]);
    else if (hits.length > 1) ambiguous.push({ expectedId: e.id, nodeIds: hits });
  }
  const matches = [...byNode].map(([nodeId, expectedIds]) => ({ nodeId, expectedIds })).sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
  return { matches, ambiguous };
}

/** The agent's record once it took the pre-registrations: their labels under its own, and which they were. */
export function adoptPreRegistrations(node: NodeRecord, expected: readonly NodeRecord[]): NodeRecord {
  const labels: Record<string, string> = {};
  for (const e of expected) Object.assign(labels, e.labels);
  const ids = [...new Set([...(node.preRegistrations ?? []), ...expected.map((e) => describeExpected(e.expected as Expected))])];
  return { ...node, labels: { ...labels, ...node.labels }, preRegistrations: ids };
}
