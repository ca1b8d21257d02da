/**
 * What `clusterctl dashboard`'s local server sends the page (server-sent events on /api/stream)
 * and answers on /api/*. Types only: the server (cli/dashboard/dashboard-server.ts, CommonJS) and
 * the page (cli/dashboard/web, compiled for the browser) both import them, so the two sides
 * cannot drift apart.
 */

/** A node as a tile needs it: a slim copy of the proto Node (10,000 of these make the first message). */
export interface Tile {
  id: string;
  state: string;
  reachable: boolean;
  connected: boolean;
  maintenance: boolean;
  /** The record's drift summary; '' = no drift known. */
  drift: string;
  group: string;
  labels: Record<string, string>;
  hostname: string;
  ip: string;
  /** The job acting on the node ('' = none). */
  job: string;
  lastError: string;
}

/** One audit event (proto Event, seq as a number). */
export interface EventItem {
  seq: number;
  at: string;
  type: string;
  nodeId: string;
  jobId: string;
  from: string;
  to: string;
  message: string;
  actor: string;
}

/** Nodes of one batch of a job by where they are. */
export interface BatchProgress {
  batch: number;
  total: number;
  /** Finished: succeeded, failed, cancelled or skipped. */
  done: number;
  failed: number;
  running: number;
}

/** The rollback of a job that rolls back: its nodes by where their rollback is. */
export interface RollbackProgress {
  /** Nodes with a rollback started. */
  total: number;
  /** Rolled back (succeeded) or not (failed). */
  done: number;
  failed: number;
  running: number;
}

/** A job with its progress, without per-node output (the job page asks /api/job/ID for that). */
export interface JobSummary {
  id: string;
  kind: string;
  state: string;
  /**
   * Unfinished (it holds its nodes): decided by the feed from the one job-state definition
   * (shared/job-states.ts), so the page keeps no list of states of its own.
   */
  active: boolean;
  group: string;
  bundle: string;
  message: string;
  requestedBy: string;
  createdAt: string;
  finishedAt: string;
  batches: number;
  currentBatch: number;
  total: number;
  done: number;
  failed: number;
  running: number;
  perBatch: BatchProgress[];
  /** From the job's nodes; null when no node's rollback started (or the job came from a list, without nodes). */
  rollback: RollbackProgress | null;
}

/** Whether the server's watch streams to the coordinator are up. */
export interface FeedStatus {
  live: boolean;
  /** Why not (the coordinator's error), or the coordinator replicas when live. */
  message: string;
}

/** The first message on every stream: everything the server knows now. */
export interface Snapshot {
  nodes: Tile[];
  events: EventItem[];
  jobs: JobSummary[];
  status: FeedStatus;
}

/** Node changes since the last message (coalesced by the server). */
export interface NodeDelta {
  upsert: Tile[];
  remove: string[];
}

/** Server-sent event names and their data. */
export interface StreamMessages {
  snapshot: Snapshot;
  nodes: NodeDelta;
  events: EventItem[];
  job: JobSummary;
  status: FeedStatus;
}

export type StreamMessageName = keyof StreamMessages;

/** GET /api/node/ID. `node` is the proto Node as JSON (camelCase), factsJson the full facts. */
export interface NodePage {
  node: NodeRecordView;
  factsJson: string;
  events: EventItem[];
}

/** The proto Node fields the node page shows (a structural subset of Node__Output). */
export interface NodeRecordView {
  id: string;
  state: string;
  reachable: boolean;
  unreachableSince: string;
  labels: Record<string, string>;
  group: string;
  maintenance: boolean;
  maintenanceReason: string;
  agentVersion: string;
  bootId: string;
  address: string;
  createdAt: string;
  updatedAt: string;
  lastSeenAt: string;
  lastError: string;
  desiredConfig: string;
  appliedConfig: string;
  appliedDigest: string;
  currentJob: string;
  connected: boolean;
  connectedAt: string;
  stateChangedAt: string;
  driftSummary: string;
}

/** One node of a job, with its output (GET /api/job/ID). */
export interface JobNodeView {
  nodeId: string;
  batch: number;
  state: string;
  startedAt: string;
  finishedAt: string;
  error: string;
  output: string;
  exitCode: number | null;
  units: { unitId: string; status: string; message: string }[];
  /** The node's rollback: '' (none), running, succeeded or failed; to previousBundle. */
  rollbackState: string;
  rollbackError: string;
  previousBundle: string;
}

export interface JobPage {
  job: JobSummary;
  nodes: JobNodeView[];
}

/** Any /api/* failure. */
export interface ApiError {
  error: string;
}
