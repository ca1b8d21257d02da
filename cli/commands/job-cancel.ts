/** `clusterctl job cancel ID [--reason TEXT]`: asks the leader to stop the job (reaches running units). */
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { jobObject } from './job-view';
import { printResult } from './print';

export const JOB_CANCEL_OPTIONS = {
  reason: {
    kind: 'string',
    description: 'why (recorded in the job\'s events)',
    default: 'cancelled by operator',
    placeholder: 'TEXT',
  },
} as const;

export const jobCancel = defineCommand<CliContext, typeof JOB_CANCEL_OPTIONS>({
  name: 'cancel',
  aliases: ['stop'],
  summary: 'Cancel a job: pending nodes are skipped, running commands are stopped',
  usage: 'job cancel ID|active [--reason TEXT]',
  example: 'clusterctl job cancel active --reason "wrong bundle"\nclusterctl job cancel j-20240101-abc123 && clusterctl job watch j-20240101-abc123',
  options: JOB_CANCEL_OPTIONS,
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'which job? give its ID or "active" (list jobs with: clusterctl jobs --state running)' },
  async run({ values, positionals, context }) {
    const job = await context.client.cancelJob(positionals[0], values.reason);
    printResult(context, jobObject(job), () => `job ${job.id} ${job.state}${job.message ? `: ${job.message}` : ''}\n`);
    return EXIT.ok;
  },
});
