/**
 * ClusterService/RefreshNodeFacts (`clusterctl node refresh-facts ID`): the leader sends the
 * node's agent a RefreshFacts over its stream and answers once the agent's FactsRefreshed says
 * the new facts are stored (agent/lease-membership.ts refreshFacts writes facts/<id> before it
 * answers). Only the replica holding the agent's stream can ask: on another one the node is "not
 * connected to this coordinator", as for commands.
 */
import { randomBytes } from 'node:crypto';
import {
  DeadlineExceededError, InvalidArgumentError, isValidSegment, UnavailableError, type Clock, type Logger,
} from '../shared';
import type { ClusterServiceHandlers } from '../generated/cluster/v1/ClusterService';
import type { FactsRefreshed__Output } from '../generated/cluster/v1/FactsRefreshed';
import type { AgentStreams } from './agent-streams';
import { currentBinding } from './request-binding';
import { unary } from './unary-handler';
import type { NodeDetail } from '../generated/cluster/v1/NodeDetail';

export interface FactsRefreshOptions {
  streams: Pick<AgentStreams, 'send' | 'on' | 'off'>;
  /** The node as GetNode shows it, read after the facts are stored. */
  readNode: (id: string) => Promise<NodeDetail>;
  clock: Clock;
  logger: Logger;
  /**
   * Longest wait for the agent's answer when the call has no shorter deadline (collecting
   * every hardware fact takes seconds on a large server). @default 120_000
   */
  maxWaitMs?: number;
}

export const DEFAULT_FACTS_REFRESH_WAIT_MS = 120_000;

export function createFactsRefreshHandlers(options: FactsRefreshOptions): Pick<ClusterServiceHandlers, 'RefreshNodeFacts'> {
  const { streams, clock } = options;
  const log = options.logger.child({ component: 'facts-refresh' });
  const maxWaitMs = options.maxWaitMs ?? DEFAULT_FACTS_REFRESH_WAIT_MS;

  /** Sends the request and waits for the answer of that node's agent to it. */
  function ask(nodeId: string): Promise<FactsRefreshed__Output> {
    const requestId = randomBytes(8).toString('hex');
    const deadline = currentBinding()?.deadlineMs ?? Infinity;
    const waitMs = Math.max(0, Math.min(maxWaitMs, deadline - clock.now()));
    return new Promise((resolve, reject) => {
      const done = (): void => {
        streams.off('factsRefreshed', onReply);
        streams.off('disconnected', onGone);
        timer.cancel();
      };
      const onReply = (id: string, reply: FactsRefreshed__Output): void => {
        if (id !== nodeId || reply.requestId !== requestId) return;
        done();
        resolve(reply);
      };
      const onGone = (stream: { nodeId: string }): void => {
        if (stream.nodeId !== nodeId) return;
        done();
        reject(new UnavailableError(`node ${nodeId}'s agent stream closed before it answered; retry when it is back (clusterctl nodes)`));
      };
      const timer = clock.setTimeout(() => {
        done();
        reject(new DeadlineExceededError(`node ${nodeId}'s agent did not answer within ${waitMs} ms (collecting facts can take long on a large server; retry with a longer --timeout)`));
      }, waitMs);
      streams.on('factsRefreshed', onReply);
      streams.on('disconnected', onGone);
      try {
        streams.send(nodeId, { refreshFacts: { requestId } });
      } catch (err) {
        done();
        reject(err instanceof Error ? err : new UnavailableError(String(err)));
      }
    });
  }

  const refreshNodeFacts = unary(async (request: { id: string }) => {
    const id = request.id.trim();
    if (!id) throw new InvalidArgumentError('RefreshNodeFacts needs a node id (list nodes with `clusterctl nodes`)');
    if (!isValidSegment(id)) throw new InvalidArgumentError(`invalid node id ${JSON.stringify(id)}: use 1-253 characters from A-Z a-z 0-9 . _ : -`);
    const reply = await ask(id);
    if (reply.error) throw new UnavailableError(`node ${id} could not refresh its facts: ${reply.error}`);
    log.info('facts refreshed on request', { nodeId: id, changed: reply.changed });
    return { detail: await options.readNode(id), changed: reply.changed };
  });

  return { RefreshNodeFacts: refreshNodeFacts };
}
