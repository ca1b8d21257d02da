/**
 * `clusterctl job logs ID [--node ID]`: each node's kept output of the job (bounded by the
 * coordinator: head and tail), with a header per node unless one node is named.
 */
import { InvalidArgumentError, NotFoundError } from '../../shared/errors';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { printResult } from './print';

export const JOB_LOGS_OPTIONS = {
  node: {
    kind: 'string',
    description: 'only this node\'s output',
    placeholder: 'ID',
  },
} as const;

export const jobLogs = defineCommand<CliContext, typeof JOB_LOGS_OPTIONS>({
  name: 'logs',
  aliases: ['log', 'output'],
  summary: 'Print the output each node produced in a job',
  usage: 'job logs ID|active|last [--node ID] [-o json|yaml]',
  example: 'clusterctl job logs last\nclusterctl job logs j-20240101-abc123 --node node-1',
  options: JOB_LOGS_OPTIONS,
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'which job? give its ID, "active" or "last" (list jobs with: clusterctl jobs)' },
  async run({ values, positionals, context }) {
    const detail = await context.client.getJob(positionals[0]);
    const jobId = detail.job?.id ?? positionals[0];
    let nodes = detail.nodes;
    if (values.node !== undefined) {
      if (!values.node.trim()) throw new InvalidArgumentError('--node needs a node id');
      nodes = nodes.filter((n) => n.nodeId === values.node);
      if (nodes.length === 0) {
        throw new NotFoundError(`node ${values.node} is not in job ${jobId} (its nodes: ${detail.nodes.map((n) => n.nodeId).join(', ') || 'none'})`);
      }
    }
    const data = nodes.map((n) => ({ nodeId: n.nodeId, state: n.state, error: n.error, output: n.output }));
    printResult(context, data, () => {
      const single = values.node !== undefined;
      return nodes.map((n) => {
        const body = n.output ? (n.output.endsWith('\n') ? n.output : `${n.output}\n`) : '';
        const err = n.error ? `error: ${n.error}\n` : '';
        if (single) return body + err;
        return `==> ${n.nodeId} (${n.state}) <==\n${body || (err ? '' : '(no output)\n')}${err}`;
      }).join(single ? '' : '\n');
    });
    return EXIT.ok;
  },
});
