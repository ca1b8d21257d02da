/**
 * `clusterctl exec -l SELECTOR|--nodes a,b [--command-timeout 30s] [--concurrency N] -- COMMAND...`:
 * one command on many nodes (Clusterlite's cluster-wide operation, Ansible's ad-hoc `-a`).
 *
 * It is a job of kind "exec" through JobService, not a side channel: the job is recorded, each
 * node's output and exit code are kept in etcd like any job's (Contiv #103/#113), it survives a
 * leader failover, can be cancelled (Ctrl-C here cancels it), and a node is never in two jobs
 * at once. --concurrency N runs the nodes in rolling batches of N. Output is printed as it
 * arrives (WatchJob streams the per-node output the leader records), each line prefixed with
 * `[node-id] `, then a per-node summary; the exit code is 1 when any node failed.
 */
import { InvalidArgumentError } from '../../shared/errors';
import { parseSelector } from '../../shared/selector';
import type { JobDetail__Output } from '../../generated/cluster/v1/JobDetail';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { formatTable, useColour } from '../output';
import { UNLIMITED_FAILURES } from './job-view';

const FINISHED = ['Succeeded', 'Failed', 'Cancelled'];

/**
 * The deadline of exec's requests: the global --timeout, but never shorter than the command's
 * own timeout plus a margin, so a request never gives up on a command that is allowed to run.
 */
export function execRequestTimeoutMs(globalTimeoutMs: number, commandTimeoutMs: number): number {
  return Math.max(globalTimeoutMs, commandTimeoutMs + 15_000);
}

export const EXEC_OPTIONS = {
  selector: { kind: 'string', short: 'l', description: 'nodes whose labels match (kubectl syntax: role=worker,rack!=r1)', placeholder: 'SELECTOR' },
  nodes: { kind: 'list', description: 'node ids, comma separated', placeholder: 'ID,ID' },
  // Not --timeout: that is the global request deadline, and one flag with two meanings is how
  // a 2 s request deadline once killed the command.
  commandTimeout: { kind: 'duration', description: 'per-node command timeout: the agent kills the command after it', default: '10m', placeholder: 'DURATION', min: 1 },
  concurrency: { kind: 'int', description: 'at most N nodes at a time (rolling batches of N; default: all at once)', placeholder: 'N' },
} as const;

/** Splits new output into complete lines per node; the partial tail waits for more. Pure state. */
export class PrefixedOutput {
  private readonly printed = new Map<string, number>();
  private readonly partial = new Map<string, string>();

  /** Lines to print for `nodeId` now that its whole output so far is `output`. */
  push(nodeId: string, output: string): string[] {
    const seen = this.printed.get(nodeId) ?? 0;
    let fresh: string;
    if (output.length < seen) {
      // The kept output is bounded (head + tail): when the middle was dropped, say so once.
      fresh = '[... output truncated ...]\n';
      this.partial.set(nodeId, '');
    } else fresh = output.slice(seen);
    this.printed.set(nodeId, output.length);
    const text = (this.partial.get(nodeId) ?? '') + fresh;
    const parts = text.split('\n');
    this.partial.set(nodeId, parts.pop() ?? '');
    return parts.map((l) => `[${nodeId}] ${l}`);
  }

  /** The unterminated last line of a finished node. */
  flush(nodeId: string): string[] {
    const rest = this.partial.get(nodeId) ?? '';
    this.partial.set(nodeId, '');
    return rest ? [`[${nodeId}] ${rest}`] : [];
  }
}

export const execCommand = defineCommand<CliContext, typeof EXEC_OPTIONS>({
  name: 'exec',
  summary: 'Run a command on many nodes in parallel; output prefixed per node, exit codes summarised',
  usage: 'exec -l SELECTOR|--nodes a,b [--command-timeout 30s] [--concurrency N] -- COMMAND [ARGS...]',
  description: 'Runs as a job of kind exec (recorded, output kept per node, see clusterctl job describe). Exit code 1 when the command failed or timed out on any node; Ctrl-C cancels the job and the agents kill the command.',
  example: 'clusterctl exec -l role=worker -- uptime\nclusterctl exec --nodes n1,n2 --command-timeout 30s --concurrency 1 -- systemctl restart chronyd',
  options: EXEC_OPTIONS,
  async run({ values, rest, context }) {
    const argv = rest;
    if (argv.length === 0) throw new InvalidArgumentError('exec needs a command after --: clusterctl exec -l role=worker -- uptime');
    const nodes = (values.nodes ?? []).map((s) => s.trim()).filter(Boolean);
    const selector = values.selector?.trim() ?? '';
    if ((nodes.length > 0) === (selector !== '')) throw new InvalidArgumentError('name the nodes with exactly one of -l SELECTOR or --nodes a,b');
    if (selector) parseSelector(selector);
    const concurrency = values.concurrency;
    if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) {
      throw new InvalidArgumentError(`--concurrency ${String(concurrency)} must be a whole number ≥ 1`);
    }
    const client = context.client.withTimeout(execRequestTimeoutMs(context.globals.timeout, values.commandTimeout));
    const job = await client.startJob({
      kind: 'exec', nodeIds: nodes, labelSelector: selector, argv, timeoutMs: values.commandTimeout,
      strategy: concurrency ? 'rolling' : 'all-at-once', batch: concurrency ? String(concurrency) : '',
      // Every node runs: a failing node is a result to report, not a reason to stop the others.
      maxFailures: UNLIMITED_FAILURES,
    });
    context.note(`job ${job.id}: exec on ${job.nodeIds.length} node(s): ${argv.join(' ')}`);
    const printer = new PrefixedOutput();
    const finished = new Set<string>();
    let last: JobDetail__Output | undefined;
    const watch = await client.watchJob(job.id, (d) => {
      last = d;
      for (const n of d.nodes) {
        if (finished.has(n.nodeId)) continue;
        const lines = printer.push(n.nodeId, n.output);
        if (!['pending', 'running'].includes(n.state)) {
          finished.add(n.nodeId);
          lines.push(...printer.flush(n.nodeId));
        }
        if (lines.length) context.out.write(lines.join('\n') + '\n');
      }
      if (d.job && FINISHED.includes(d.job.state)) watch.cancel();
    });
    let interrupted = false;
    void context.interrupted.then(async () => {
      interrupted = true;
      context.note(`cancelling job ${job.id} (the agents kill the command)`);
      await client.cancelJob(job.id, 'clusterctl exec interrupted').catch(() => undefined);
    });
    await watch.done;
    const detail = last ?? (await client.getJob(job.id));
    const rows = detail.nodes.map((n) => [n.nodeId, n.state, n.hasExitCode ? String(n.exitCode) : '-', n.error || '']);
    context.note('');
    context.note(formatTable(['NODE', 'STATE', 'EXIT', 'ERROR'], rows, { colour: useColour(context.out, context.env) }).trimEnd());
    const failed = detail.nodes.filter((n) => n.state !== 'succeeded');
    if (failed.length > 0 || interrupted) {
      context.note(`exec failed on ${failed.length} of ${detail.nodes.length} node(s): ${failed.map((n) => n.nodeId).join(', ')} (job ${job.id})`);
      return EXIT.error;
    }
    return EXIT.ok;
  },
});
