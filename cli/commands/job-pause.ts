/**
 * `clusterctl job pause ID [--reason TEXT]` and `clusterctl job resume ID`: hold a rolling job
 * after its current batch (Running → Pausing → Paused) and let it go on (→ Running). Both are
 * idempotent: pausing a paused job or resuming a running one answers with the job as it is.
 */
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { jobObject } from './job-view';
import { printResult } from './print';

export const JOB_PAUSE_OPTIONS = {
  reason: {
    kind: 'string',
    description: 'why (recorded in the job\'s events)',
    default: '',
    placeholder: 'TEXT',
  },
} as const;

export const jobPause = defineCommand<CliContext, typeof JOB_PAUSE_OPTIONS>({
  name: 'pause',
  summary: 'Hold a rolling job after its current batch (Pausing, then Paused); its nodes stay claimed',
  usage: 'job pause ID|active [--reason TEXT]',
  example: 'clusterctl job pause active --reason "error rate up"\nclusterctl job pause j-20240101-abc123 && clusterctl job resume j-20240101-abc123',
  options: JOB_PAUSE_OPTIONS,
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'which job? give its ID or "active" (list jobs with: clusterctl jobs --state running)' },
  async run({ values, positionals, context }) {
    const job = await context.client.pauseJob(positionals[0], values.reason);
    printResult(context, jobObject(job), () => `job ${job.id} ${job.state}${job.message ? `: ${job.message}` : ''}\n`);
    return EXIT.ok;
  },
});

export const jobResume = defineCommand<CliContext, Record<string, never>>({
  name: 'resume',
  summary: 'Continue a Paused job (after job pause or its --canary batch) with its next batch',
  usage: 'job resume ID|active',
  example: 'clusterctl job resume active\nclusterctl job resume j-20240101-abc123 && clusterctl job watch j-20240101-abc123',
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'which job? give its ID or "active" (list paused jobs with: clusterctl jobs --state paused)' },
  async run({ positionals, context }) {
    const job = await context.client.resumeJob(positionals[0]);
    printResult(context, jobObject(job), () => `job ${job.id} ${job.state}${job.message ? `: ${job.message}` : ''}\n`);
    return EXIT.ok;
  },
});
