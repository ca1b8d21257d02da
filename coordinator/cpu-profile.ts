/**
 * A CPU profile of one phase of a coordinator's life (`--cpu-profile WHEN:SECONDS:FILE`), for
 * the benchmarks: `node --cpu-prof` profiles the whole process from its start and writes only
 * at a clean exit, which mixes start-up, attach and discovery into the phase one wants to see
 * (a failover's re-attach storm, a job's fan-out) and loses the profile of a replica that is
 * SIGKILLed in the next round. Here the profile starts at the first moment named by WHEN
 * (`leader`: this replica became leader; `start-job`: the first StartJob call) and is written
 * SECONDS later, as a `.cpuprofile` that DevTools and bench/cpu-profile.ts read.
 *
 * One profile per process: later moments are ignored. A process-wide hook rather than a
 * component option because the moments are deep in two components (the election and the job
 * service) and nothing else may depend on it.
 */
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { InvalidArgumentError } from '../shared/errors';
import type { Logger } from '../shared';

export const CPU_PROFILE_MOMENTS = ['leader', 'start-job'] as const;
export type CpuProfileMoment = (typeof CPU_PROFILE_MOMENTS)[number];

export interface CpuProfileSpec {
  from: CpuProfileMoment;
  durationMs: number;
  file: string;
}

/** `leader:20:/tmp/reattach.cpuprofile` → its parts; throws InvalidArgumentError naming the form. */
export function parseCpuProfileSpec(text: string): CpuProfileSpec {
  const m = /^([a-z-]+):(\d+):(.+)$/.exec(text);
  const from = m?.[1];
  const seconds = Number(m?.[2]);
  if (!m || !CPU_PROFILE_MOMENTS.some((x) => x === from) || !Number.isSafeInteger(seconds) || seconds < 1 || seconds > 3600) {
    throw new InvalidArgumentError(`--cpu-profile ${JSON.stringify(text)}: use WHEN:SECONDS:FILE with WHEN ${CPU_PROFILE_MOMENTS.join(' or ')} and 1-3600 seconds, e.g. leader:20:/tmp/leader.cpuprofile`);
  }
  return { from: from as CpuProfileMoment, durationMs: seconds * 1000, file: m[3] };
}

let armed: { spec: CpuProfileSpec; logger: Logger } | undefined;

/** Arms the profile (main.ts, from --cpu-profile); without it markCpuProfile does nothing. */
export function armCpuProfile(spec: CpuProfileSpec, logger: Logger): void {
  armed = { spec, logger: logger.child({ component: 'cpu-profile' }) };
}

/** Called at each moment a profile may start from; starts the armed profile at its moment, once. */
export function markCpuProfile(moment: CpuProfileMoment): void {
  if (!armed || armed.spec.from !== moment) return;
  const { spec, logger } = armed;
  armed = undefined;
  const session = new Session();
  session.connect();
  const fail = (err: Error): void => {
    logger.warn('cpu profile failed', { file: spec.file, err: err.message });
    session.disconnect();
  };
  session.post('Profiler.enable', (enableErr) => {
    if (enableErr) return fail(enableErr);
    session.post('Profiler.start', (startErr) => {
      if (startErr) return fail(startErr);
      logger.info('cpu profile started', { from: moment, seconds: spec.durationMs / 1000, file: spec.file });
      setTimeout(() => {
        session.post('Profiler.stop', (stopErr, result) => {
          if (stopErr) return fail(stopErr);
          try {
            writeFileSync(spec.file, JSON.stringify(result.profile));
            logger.info('cpu profile written', { file: spec.file });
          } catch (err) {
            fail(err instanceof Error ? err : new Error(String(err)));
            return;
          }
          session.disconnect();
        });
      }, spec.durationMs).unref();
    });
  });
}
