/**
 * What every clusterctl command receives from main.ts (the composition root): where to write,
 * the global options, the coordinator client and the clock. Commands construct nothing
 * themselves, so a test can hand them a buffer, a fixed clock or a client of a test server.
 */
import type { Clock } from '../shared/clock';
import type { OptionValues } from '../shared/options';
import type { CoordinatorClient } from './coordinator-client';
import type { GLOBAL_OPTIONS } from './global-options';
import type { OutputFormat, OutputSink } from './output';

export type GlobalValues = OptionValues<typeof GLOBAL_OPTIONS>;

export interface CliContext {
  out: OutputSink;
  /** Notes for a person (stderr), kept out of the data on stdout. */
  note(text: string): void;
  env: NodeJS.ProcessEnv;
  clock: Clock;
  globals: GlobalValues;
  /** The output format chosen with -o (or a command's own shortcut such as -j). */
  format: OutputFormat;
  /** The client of the coordinator replicas (--coordinator, --timeout); main.ts closes it after the command. */
  client: CoordinatorClient;
  /** Resolves when the operator asks a long-running command to stop (Ctrl-C, SIGTERM). */
  interrupted: Promise<void>;
}
