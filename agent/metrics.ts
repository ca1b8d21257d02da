/**
 * The agent's Prometheus metrics (prom-client, its own Registry; served by
 * shared/metrics-server.ts on --metrics-listen, loopback by default). Per-unit durations are
 * labelled by unit KIND, never by unit id (ids are the operators' free text: unbounded series).
 * docs/operations.md ("Metrics") lists every name; a test checks that it does.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RunObserver } from './units/unit';
import type { RunMode, RunReport, UnitResult } from './units/executor';
import { VERSION } from '../shared/version';

/**
 * How often the event-loop lag (nodejs_eventloop_lag_*) is sampled: every sample is a timer that
 * wakes the process. prom-client's default, Node's monitorEventLoopDelay default of 10 ms, woke
 * the idle agent 100 times a second (most of its idle CPU, 0.4–0.75 % of a core); at 200 ms the
 * sampler was still 5 of the idle agent's ~7 wake-ups a second (the others: the coordinator's
 * 1 s HTTP/2 keepalive ping, stream pings, lease renewals). An agent's own timeouts are seconds,
 * so a sample a second (15 in a 15 s scrape; a stall that spans a sample is recorded whole) is enough.
 */
const EVENT_LOOP_SAMPLE_MS = 1000;

/** One unit: a file write takes milliseconds, a package install minutes. */
const UNIT_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export interface AgentMetricsOptions {
  nodeId: string;
  /** Whether the agent's stream to the leader is open now. */
  connected: () => boolean;
}

export class AgentMetrics implements RunObserver {
  readonly registry = new Registry();
  private readonly applyDuration: Histogram<'kind' | 'result'>;
  private readonly verifyDuration: Histogram<'kind' | 'result'>;
  private readonly driftFound: Counter<'kind'>;
  private readonly drifted: Gauge;

  constructor(o: AgentMetricsOptions) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    new Gauge({ name: 'cluster_agent_info', help: 'Always 1; labels name this agent\'s node and version.', labelNames: ['node_id', 'version'], registers })
      .set({ node_id: o.nodeId, version: VERSION }, 1);
    new Gauge({
      name: 'cluster_agent_connected', help: '1 while this agent\'s command stream to the coordinator leader is open, else 0.', registers,
      collect() { this.set(o.connected() ? 1 : 0); },
    });
    this.applyDuration = new Histogram({
      name: 'cluster_agent_unit_apply_duration_seconds', help: 'Time one config unit took to apply, by unit kind and result (changed, unchanged, failed).',
      labelNames: ['kind', 'result'], buckets: UNIT_BUCKETS, registers,
    });
    this.verifyDuration = new Histogram({
      name: 'cluster_agent_unit_verify_duration_seconds', help: 'Time one config unit took to verify, by unit kind and result (ok, drift, failed).',
      labelNames: ['kind', 'result'], buckets: UNIT_BUCKETS, registers,
    });
    this.driftFound = new Counter({ name: 'cluster_agent_drift_found_total', help: 'Units a verification found drifted (not as applied), by unit kind.', labelNames: ['kind'], registers });
    this.drifted = new Gauge({
      name: 'cluster_agent_drifted_units', help: 'Units found drifted by the last verification; 0 again after an apply (repair) succeeds.', registers,
    });
  }

  /** Every metric name this agent serves (docs/operations.md lists them; a test checks). */
  metricNames(): string[] {
    return this.registry.getMetricsAsArray().map((m) => m.name);
  }

  unitFinished(mode: RunMode, r: UnitResult): void {
    const seconds = r.durationMs / 1000;
    if (mode === 'apply') {
      this.applyDuration.observe({ kind: r.kind, result: r.state === 'failed' ? 'failed' : r.state === 'changed' ? 'changed' : 'unchanged' }, seconds);
    } else if (mode === 'verify') {
      const result = r.state === 'failed' ? 'failed' : r.state === 'changed' ? 'drift' : 'ok';
      this.verifyDuration.observe({ kind: r.kind, result }, seconds);
      if (result === 'drift') this.driftFound.inc({ kind: r.kind });
    }
  }

  runFinished(report: RunReport): void {
    if (report.mode === 'verify' && !report.cancelled) this.drifted.set(report.changed.length);
    else if (report.mode === 'apply' && report.ok) this.drifted.set(0);
  }
}
