/**
 * Reading the cluster's records straight from etcd in e2e tests (keys through the Keyspace,
 * values through the shared decoders), to check what clusterctl shows against what is stored.
 */
import type { Etcd3 } from 'etcd3';
import { Keyspace } from '../../shared/keyspace';
import { decodeEvent, decodeNode, type EventRecord, type NodeRecord } from '../../shared/records';

export const KEYSPACE = new Keyspace();

export async function readNodes(client: Etcd3): Promise<Map<string, NodeRecord>> {
  const all = await client.getAll().prefix(KEYSPACE.nodesPrefix()).strings();
  const out = new Map<string, NodeRecord>();
  for (const [key, value] of Object.entries(all)) {
    const id = KEYSPACE.parseNode(key);
    if (id !== undefined) out.set(id, decodeNode(key, value));
  }
  return out;
}

/** Every event, in sequence order. */
export async function readEvents(client: Etcd3): Promise<EventRecord[]> {
  const all = await client.getAll().prefix(KEYSPACE.eventsPrefix()).strings();
  const out: { seq: number; ev: EventRecord }[] = [];
  for (const [key, value] of Object.entries(all)) {
    const seq = KEYSPACE.parseEvent(key);
    if (seq !== undefined) out.push({ seq, ev: decodeEvent(key, value) });
  }
  return out.sort((a, b) => a.seq - b.seq).map((e) => e.ev);
}

/** The lifecycle state of every node, by id, sorted. */
export function statesOf(nodes: Map<string, NodeRecord>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const id of [...nodes.keys()].sort()) out[id] = (nodes.get(id) as NodeRecord).state;
  return out;
}

/** An event that changed (or created) a node's lifecycle state. */
export function isStateEvent(e: EventRecord): boolean {
  return e.from !== undefined || e.to !== undefined || e.type === 'node.state' || e.type === 'node.created' || e.type === 'node.discovered';
}
