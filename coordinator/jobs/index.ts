/**
 * Lifecycle jobs: what coordinator.ts wires. `createJobs` builds the pieces of one replica:
 * the JobService handlers (any replica) and the leader's JobRunner (start on `gained`, stop on
 * `lost`).
 */
import type { Etcd3 } from 'etcd3';
import type { Clock, Keyspace, Logger } from '../../shared';
import type { AgentStreams } from '../agent-streams';
import type { EventLog } from '../event-log';
import type { TxnLimits } from '../txn-batch';
import type { Fence, NodeStore } from '../node-store';
import { ConfigReader } from './config-records';
import { JobRunner, type JobRunnerTimings } from './job-runner';
import { createJobServiceHandlers } from './job-service';
import { JobStarter } from './job-starter';
import { JobStore } from './job-store';
import type { JobObserver } from './job-observer';
import { JobRetention, type RetentionPolicy } from './job-retention';
import { DEFAULT_SETTINGS as D } from '../options';
import type { JobServiceHandlers } from '../../generated/cluster/v1/JobService';
import type { SecretKeyring } from '../secrets/secret-keyring';

export interface JobsOptions {
  client: Etcd3;
  keyspace: Keyspace;
  events: EventLog;
  /** Opens secret variables and files when the leader builds a command; seals secret extra vars. */
  keyring?: SecretKeyring;
  /** The coordinator's node store (fenced by the election). */
  nodes: NodeStore;
  streams: AgentStreams;
  fence: Fence;
  isLeader: () => boolean;
  clock: Clock;
  logger: Logger;
  runner?: JobRunnerTimings;
  /** Told of finished jobs and nodes and of commands in flight (metrics). */
  observer?: JobObserver;
  /** What one transaction may hold (settings' txnMaxOps, txnMaxBytes: etcd's limits); default: the built-in defaults. */
  limits?: TxnLimits;
  /** Default: settings' jobRetention, jobRetentionAgeMs, jobTrimIntervalMs, and `limits.maxOps`. */
  retention?: { policy: RetentionPolicy; policyNow?: () => Promise<RetentionPolicy>; intervalMs: number; maxOps: number };
}

export interface Jobs {
  store: JobStore;
  /** Starts a job the way JobService.StartJob does (claims, rules, maintenance): the reconcilers use it. */
  starter: JobStarter;
  runner: JobRunner;
  /** The leader's trim of old finished jobs (start on `gained`, stop on `lost`). */
  retention: JobRetention;
  handlers: JobServiceHandlers;
}

export function createJobs(o: JobsOptions): Jobs {
  const logger = o.logger.child({ component: 'jobs' });
  const store = new JobStore({ client: o.client, keyspace: o.keyspace, events: o.events, logger, ...(o.limits ? { limits: o.limits } : {}) });
  const config = new ConfigReader(o.client, o.keyspace, o.keyring);
  const starter = new JobStarter({ client: o.client, keyspace: o.keyspace, store, config, clock: o.clock });
  const runner = new JobRunner({
    client: o.client, keyspace: o.keyspace, store: store.fenced(o.fence), nodes: o.nodes, streams: o.streams, config,
    isLeader: o.isLeader, clock: o.clock, logger, ...o.runner, ...(o.observer ? { observer: o.observer } : {}),
  });
  const retention = new JobRetention({
    client: o.client, keyspace: o.keyspace, store, events: o.events, fence: o.fence, isLeader: o.isLeader, clock: o.clock, logger,
    ...(o.retention ?? { policy: { keep: D.jobRetention, maxAgeMs: D.jobRetentionAgeMs }, intervalMs: D.jobTrimIntervalMs, maxOps: store.limits.maxOps }),
  });
  return { store, starter, runner, retention, handlers: createJobServiceHandlers({ store, starter, keyspace: o.keyspace, logger }) };
}

export { JobRunner, JOB_RUNNER_DEFAULTS, type JobRunnerOptions, type JobRunnerTimings } from './job-runner';
export { CANCELLED_BY_OPERATOR, WORKING_STATE, DONE_STATE, commandKindFor } from './job-outcome';
export { JobStore, type VersionedJob } from './job-store';
export { JobRetention, jobsToTrim, type RetentionPolicy } from './job-retention';
export { JobStarter, parseFactSelector, matchesFacts, checkCanary, MAX_CANARY_SOAK_MS } from './job-starter';
export { pauseChange, resumeChange, resumeHint } from './job-pause';
export { soakFailure, soakUntil } from './canary-soak';
export { ConfigReader, parseBundleRef, groupRules } from './config-records';
export { createJobServiceHandlers, toJobView, toJobDetail } from './job-service';
export * from './job-record';
export { secondsBetween, type JobObserver } from './job-observer';
export { chunkToLimits, claimConflicts, CLAIM_CONCURRENCY } from './claim-plan';
export { planBatches, planCanaryBatches, parseBatchSize, thresholdExceeded, type Strategy, type BatchSize } from './batch-plan';
export { checkGroupRules, checkDependents, type GroupRules } from './group-rules';
