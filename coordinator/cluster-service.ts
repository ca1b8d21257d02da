/**
 * ClusterService: the operator's read API, served by EVERY replica straight from etcd (a
 * follower answers as well as the leader; nothing here is leader-only). Errors are thrown as
 * shared/errors classes and mapped to a gRPC status once, in `unary` / `failStream` below.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Etcd3, IKeyValue } from 'etcd3';
import {
  errorMessage, InvalidArgumentError, isValidSegment, matchesSelector, NotFoundError, parseSelector,
  UnavailableError, type Facts, type Keyspace, type Logger, type NodeRecord, type Selector,
} from '../shared';
import type { ClusterServiceHandlers } from '../generated/cluster/v1/ClusterService';
import type { NodeDetail } from '../generated/cluster/v1/NodeDetail';
import type { NodeEvent } from '../generated/cluster/v1/NodeEvent';
import type { WatchNodesRequest__Output } from '../generated/cluster/v1/WatchNodesRequest';
import { readKeys } from './etcd-txn';
import { decodeNodeKv as decodeNodeKvOf, readSnapshot, type Versioned } from './snapshot';
import { parseFacts, toNodeView } from './node-view';
import { configStatus, readDesiredContext, type DesiredContext } from './desired-state';
import type { NodeHistoryReader } from './node-history';
import { unary } from './unary-handler';
import { watchStream } from './watch-stream';

export interface ClusterServiceOptions {
  client: Etcd3;
  keyspace: Keyspace;
  logger: Logger;
  /** Answers GetNode with `at` (the node as it was then, node-history.ts). */
  history: NodeHistoryReader;
}

function selectorOf(text: string): Selector {
  return parseSelector(text); // throws InvalidArgumentError with the parser's message
}

interface Snapshot {
  revision: string;
  nodes: { record: NodeRecord; modRevision: string }[];
  facts: Map<string, Partial<Facts>>;
}

/** The read RPCs; node-admin.ts, event-service.ts and status-service.ts add the others (coordinator.ts composes them). */
export function createClusterServiceHandlers(options: ClusterServiceOptions): Pick<ClusterServiceHandlers, 'ListNodes' | 'GetNode' | 'WatchNodes'> & { readNodeDetail: (id: string) => Promise<NodeDetail> } {
  const { client, keyspace } = options;
  const log = options.logger.child({ component: 'cluster-service' });

  function decodeNodeKv(kv: IKeyValue): Versioned<NodeRecord> | undefined {
    return decodeNodeKvOf(keyspace, kv, log);
  }

  async function snapshot(): Promise<Snapshot> {
    const snap = await readSnapshot(client, keyspace, ['nodes', 'facts'], log);
    return { revision: snap.revision, nodes: [...snap.nodes.values()], facts: snap.facts };
  }

  /** The node as the operator sees it: desired vs applied judged against `ctx`. */
  function view(n: Versioned<NodeRecord>, facts: Partial<Facts> | undefined, ctx: DesiredContext): ReturnType<typeof toNodeView> {
    return toNodeView(n.record, n.modRevision, facts, configStatus(n.record, facts, ctx));
  }

  const listNodes = unary(async (request: { labelSelector: string }) => {
    const selector = selectorOf(request.labelSelector);
    const [snap, ctx] = await Promise.all([snapshot(), readDesiredContext(client, keyspace)]);
    const nodes = snap.nodes
      .filter((n) => matchesSelector(selector, n.record.labels))
      .sort((a, b) => a.record.id.localeCompare(b.record.id))
      .map((n) => view(n, snap.facts.get(n.record.id), ctx));
    return { nodes, revision: snap.revision };
  });

  const getNode = unary(async (request: { id: string; at: string }) => {
    const id = request.id.trim();
    if (!id) throw new InvalidArgumentError('GetNode needs a node id (list nodes with `clusterctl nodes`)');
    if (!isValidSegment(id)) throw new InvalidArgumentError(`invalid node id ${JSON.stringify(id)}: use 1-253 characters from A-Z a-z 0-9 . _ : -`);
    if (request.at.trim()) return options.history.detailAt(id, request.at);
    return readNodeDetail(id);
  });

  /** A node with its facts, as GetNode answers (NotFoundError when there is no such node). */
  async function readNodeDetail(id: string): Promise<NodeDetail> {
    const { kvs } = await readKeys(client, [keyspace.node(id), keyspace.facts(id)]);
    const node = kvs[0] ? decodeNodeKv(kvs[0]) : undefined;
    if (!node) throw new NotFoundError(`node ${id} not found (list nodes with \`clusterctl nodes\`)`);
    const factsJson = kvs[1]?.value.toString() ?? '';
    return { node: view(node, parseFacts(factsJson), await readDesiredContext(client, keyspace)), factsJson };
  }

  function watchNodes(call: grpc.ServerWritableStream<WatchNodesRequest__Output, NodeEvent>): void {
    const stream = watchStream(call);
    const run = async (): Promise<void> => {
      const selector = selectorOf(call.request.labelSelector);
      const [snap, firstCtx] = await Promise.all([snapshot(), readDesiredContext(client, keyspace)]);
      let ctx = firstCtx;
      const records = new Map(snap.nodes.map((n) => [n.record.id, n]));
      const facts = snap.facts;
      const sent = new Set<string>();
      const send = (type: 'ADDED' | 'MODIFIED' | 'DELETED', id: string): void => {
        const n = records.get(id);
        if (!n || stream.done) return;
        call.write({ type, node: view(n, facts.get(id), ctx) });
      };
      for (const n of [...records.values()].sort((a, b) => a.record.id.localeCompare(b.record.id))) {
        if (!matchesSelector(selector, n.record.labels)) continue;
        sent.add(n.record.id);
        send('ADDED', n.record.id);
      }
      if (stream.done) return;
      const from = String(BigInt(snap.revision) + 1n);

      const nodesWatch = stream.add(client.watch().prefix(keyspace.nodesPrefix()).startRevision(from).watcher());
      const factsWatch = stream.add(client.watch().prefix(keyspace.factsPrefix()).startRevision(from).watcher());
      nodesWatch.on('put', (kv) => {
        const n = decodeNodeKv(kv);
        if (!n) return;
        const id = n.record.id;
        records.set(id, n);
        if (matchesSelector(selector, n.record.labels)) {
          send(sent.has(id) ? 'MODIFIED' : 'ADDED', id);
          sent.add(id);
        } else if (sent.delete(id)) {
          // Left the selection: to this watcher it is gone (kubectl's semantics).
          send('DELETED', id);
        }
      });
      nodesWatch.on('delete', (kv) => {
        const id = keyspace.parseNode(kv.key.toString());
        if (id === undefined) return;
        if (sent.delete(id)) send('DELETED', id);
        records.delete(id);
      });
      factsWatch.on('put', (kv) => {
        const id = keyspace.parseFacts(kv.key.toString());
        const f = id === undefined ? undefined : parseFacts(kv.value.toString());
        if (id === undefined || !f) return;
        facts.set(id, f);
        if (sent.has(id)) send('MODIFIED', id);
      });
      factsWatch.on('delete', (kv) => {
        const id = keyspace.parseFacts(kv.key.toString());
        if (id === undefined) return;
        facts.delete(id);
        if (sent.has(id)) send('MODIFIED', id);
      });
      // A group, the globals or a bundle changing can make nodes out of date without touching
      // their records: read the context again and send the nodes whose status changed.
      const configWatch = stream.add(client.watch().prefix(keyspace.groupsPrefix()).startRevision(from).watcher());
      const globalsWatch = stream.add(client.watch().key(keyspace.globals()).startRevision(from).watcher());
      let refreshing = Promise.resolve();
      const refresh = (): void => {
        refreshing = refreshing.then(async () => {
          const next = await readDesiredContext(client, keyspace);
          const before = new Map([...sent].map((id) => [id, JSON.stringify(records.has(id) ? view(records.get(id) as Versioned<NodeRecord>, facts.get(id), ctx) : null)]));
          ctx = next;
          for (const id of sent) {
            const n = records.get(id);
            if (n && JSON.stringify(view(n, facts.get(id), ctx)) !== before.get(id)) send('MODIFIED', id);
          }
        }).catch((err: unknown) => log.debug('node watch: desired state not re-read', { err: errorMessage(err) }));
      };
      for (const w of [configWatch, globalsWatch]) {
        w.on('put', refresh);
        w.on('delete', refresh);
      }
      for (const w of [nodesWatch, factsWatch, configWatch, globalsWatch]) {
        w.on('error', (err) => stream.fail(new UnavailableError(`node watch interrupted: ${errorMessage(err)}; watch again to resume`)));
      }
    };
    run().catch((err: unknown) => stream.fail(err));
  }

  return { ListNodes: listNodes, GetNode: getNode, WatchNodes: watchNodes, readNodeDetail };
}
