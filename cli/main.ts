#!/usr/bin/env node
/**
 * clusterctl's composition root: parses argv against the command tree, builds the context
 * (output, clock, the one coordinator client), runs the command and turns any failure into ONE
 * line on stderr (`error: ...`) and exit code 1. CLUSTERCTL_DEBUG=1 adds the stack trace.
 */
import { ClusterError } from '../shared/errors';
import { systemClock, type Clock } from '../shared/clock';
import type { CoordinatorClient } from './coordinator-client';
import { EXIT, helpText, parseInvocation, runInvocation, type ExitCode } from './command';
import { commandTree } from './command-tree';
import type { CliContext, GlobalValues } from './context';
import { compileClientOptions, CONFIG_ENV, defaultConfigPath, GLOBAL_OPTIONS } from './global-options';
import { isOutputFormat, terminalSafe, type OutputSink } from './output';

export interface MainIo {
  out: OutputSink;
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
  clock?: Clock;
  /** Resolves when the operator asks to stop (Ctrl-C); never resolves when not given. */
  interrupted?: Promise<void>;
}

/** The one-line message for an error; programming errors say how to get the stack. */
export function errorLine(err: unknown, debug: boolean): string {
  if (debug && err instanceof Error && err.stack) return `error: ${err.message}\n${err.stack}`;
  if (err instanceof ClusterError) return `error: ${oneLine(err.message)}`;
  const message = err instanceof Error ? err.message : String(err);
  return `error: ${oneLine(message)} (unexpected; set CLUSTERCTL_DEBUG=1 for a stack trace)`;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, '; ');
}

/** Runs clusterctl with `argv` (without node and script) and returns the exit code. */
export async function main(argv: readonly string[], io: MainIo): Promise<ExitCode> {
  const debug = io.env.CLUSTERCTL_DEBUG === '1' || io.env.CLUSTERCTL_DEBUG === 'true';
  let client: CoordinatorClient | undefined;
  try {
    const root = commandTree();
    // `clusterctl --version` (as most tools spell it) is `clusterctl version`.
    if (argv.length === 1 && argv[0] === '--version') argv = ['version'];
    const inv = parseInvocation(root, argv, { env: io.env, configEnv: CONFIG_ENV, defaultConfigPath: defaultConfigPath(io.env) });
    if (inv.help) {
      io.out.write(helpText(inv.path, GLOBAL_OPTIONS));
      return EXIT.ok;
    }
    const globals = inv.values as unknown as GlobalValues;
    // Loaded only when a command runs: gRPC is not needed for --help (bench/cli-startup.ts).
    const { CoordinatorClient } = await import('./coordinator-client');
    const format = isOutputFormat(globals.output) ? globals.output : 'table';
    const context: CliContext = {
      out: io.out,
      note: (text) => io.err(`${text}\n`),
      env: io.env,
      clock: io.clock ?? systemClock,
      globals,
      format,
      // Made when a command first needs it (reading the credentials file then), so commands
      // that never call the coordinator (version, completion) need no credentials. Making it
      // opens nothing: channels and stubs are made by the first call.
      get client(): CoordinatorClient {
        client ??= new CoordinatorClient(compileClientOptions(globals));
        return client;
      },
      interrupted: io.interrupted ?? new Promise<void>(() => undefined),
    };
    return await runInvocation(inv, context);
  } catch (err) {
    io.err(errorLine(err, debug) + '\n');
    return EXIT.error;
  } finally {
    client?.close();
  }
}

if (require.main === module) {
  const interrupted = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  // `clusterctl nodes | head -1` closes the pipe early: that is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.ok);
    throw err;
  });
  main(process.argv.slice(2), {
    // Everything printed passes the one sanitizer (output.ts terminalSafe); a file's bytes do not.
    out: { write: (t: string | Buffer) => process.stdout.write(typeof t === 'string' ? terminalSafe(t) : t), isTTY: process.stdout.isTTY === true },
    err: (t) => process.stderr.write(terminalSafe(t)),
    env: process.env,
    interrupted,
  }).then(
    (code) => {
      process.exitCode = code;
      // A lingering handle (a gRPC channel in shutdown) must not keep a finished command alive.
      setTimeout(() => process.exit(code), 2000).unref();
    },
    (err: unknown) => {
      process.stderr.write(terminalSafe(errorLine(err, process.env.CLUSTERCTL_DEBUG === '1')) + '\n');
      process.exit(EXIT.error);
    },
  );
}
