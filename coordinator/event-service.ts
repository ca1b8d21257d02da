/**
 * ClusterService's audit trail, served by EVERY replica from etcd: list events/<seq> and
 * watch new ones (a snapshot, then a watch from the next revision, deduplicated by seq).
 */
import type * as grpc from '@grpc/grpc-js';
import type { Etcd3, IKeyValue } from 'etcd3';
import { decodeEvent, errorMessage, InvalidArgumentError, isValidSegment, UnavailableError, type EventRecord, type Keyspace, type Logger } from '../shared';
import type { ClusterServiceHandlers } from '../generated/cluster/v1/ClusterService';
import type { Event } from '../generated/cluster/v1/Event';
import type { WatchEventsRequest__Output } from '../generated/cluster/v1/WatchEventsRequest';
import { readPrefixes } from './etcd-txn';
import type { EventLog } from './event-log';
import type { CoordinatorSettings } from './options';
import { unary } from './unary-handler';
import { watchStream } from './watch-stream';

export type EventServiceHandlers = Pick<ClusterServiceHandlers, 'ListEvents' | 'WatchEvents'>;

export interface EventServiceOptions {
  client: Etcd3;
  keyspace: Keyspace;
  events: EventLog;
  logger: Logger;
  settings: Pick<CoordinatorSettings, 'eventListDefaultLimit' | 'eventListMaxLimit'>;
}

export function toEventView(e: EventRecord): Event {
  return {
    seq: String(e.seq), at: e.at, type: e.type, nodeId: e.nodeId ?? '', jobId: e.jobId ?? '', from: e.from ?? '', to: e.to ?? '',
    message: e.message, actor: e.actor,
  };
}

export interface EventFilter {
  nodeId: string;
  jobId: string;
  afterSeq: number;
}

export function matchesEvent(f: EventFilter, e: EventRecord): boolean {
  return e.seq > f.afterSeq && (!f.nodeId || e.nodeId === f.nodeId) && (!f.jobId || e.jobId === f.jobId);
}

function parseSeq(text: string | number | undefined, what: string): number {
  const n = Number(text ?? 0);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`${what} must be a non-negative integer, not ${JSON.stringify(text)}`);
  return n;
}

function eventFilter(req: { nodeId: string; jobId: string; afterSeq: string }): EventFilter {
  const f = { nodeId: req.nodeId.trim(), jobId: req.jobId.trim(), afterSeq: parseSeq(req.afterSeq, 'after_seq') };
  if (f.nodeId && !isValidSegment(f.nodeId)) throw new InvalidArgumentError(`invalid node id ${JSON.stringify(f.nodeId)}`);
  if (f.jobId && !isValidSegment(f.jobId)) throw new InvalidArgumentError(`invalid job id ${JSON.stringify(f.jobId)}`);
  return f;
}

export function createEventServiceHandlers(options: EventServiceOptions): EventServiceHandlers {
  const { client, keyspace, events, settings } = options;
  const log = options.logger.child({ component: 'event-service' });

  const listEvents = unary(async (req: { nodeId: string; jobId: string; limit: number; afterSeq: string }) => {
    const f = eventFilter(req);
    const limit = Math.min(req.limit || settings.eventListDefaultLimit, settings.eventListMaxLimit);
    const all = await events.list({ afterSeq: f.afterSeq });
    return { events: all.filter((e) => matchesEvent(f, e)).slice(-limit).map(toEventView) };
  });

  function decodeEventKv(kv: IKeyValue): EventRecord | undefined {
    const key = kv.key.toString();
    if (keyspace.parseEvent(key) === undefined) return undefined;
    try {
      return decodeEvent(key, kv.value.toString());
    } catch (err) {
      log.warn('skipping unreadable event', { key, err: errorMessage(err) });
      return undefined;
    }
  }

  function watchEvents(call: grpc.ServerWritableStream<WatchEventsRequest__Output, Event>): void {
    const stream = watchStream(call);
    const run = async (): Promise<void> => {
      const f = eventFilter(call.request);
      const { revision, kvs } = await readPrefixes(client, [{ prefix: keyspace.eventsPrefix() }]);
      // Sequence order (the keys are zero-padded, but sort by number to be independent of that).
      const existing = kvs[0].map(decodeEventKv).filter((e): e is EventRecord => e !== undefined).sort((a, b) => a.seq - b.seq);
      let last = f.afterSeq;
      const send = (e: EventRecord): void => {
        // Deduplicated by seq: a watch restart may repeat what the snapshot sent.
        if (stream.done || e.seq <= last || !matchesEvent(f, e)) return;
        last = e.seq;
        call.write(toEventView(e));
      };
      for (const e of existing) send(e);
      if (stream.done) return;
      const watcher = stream.add(client.watch().prefix(keyspace.eventsPrefix()).startRevision(String(BigInt(revision) + 1n)).watcher());
      watcher.on('put', (kv) => {
        const e = decodeEventKv(kv);
        if (e) send(e);
      });
      watcher.on('error', (err) => stream.fail(new UnavailableError(`event watch interrupted: ${errorMessage(err)}; watch again with --after to resume`)));
    };
    run().catch((err: unknown) => stream.fail(err));
  }

  return { ListEvents: listEvents, WatchEvents: watchEvents };
}
