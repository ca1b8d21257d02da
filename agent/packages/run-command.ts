/**
 * Runs a package-manager program (dnf, rpm, apt-get, dpkg-query) as a child process: argv only,
 * never a shell (package names come from bundles), with a timeout and an AbortSignal that kill
 * the whole process group (dnf forks rpm scriptlets), and output captured bounded — head and
 * tail kept, because the interesting lines of a failed transaction are usually at the end.
 */
import { spawn } from 'node:child_process';
import { CancelledError, DeadlineExceededError, InternalError } from '../../shared';
import type { PackageOutput } from './backend';

/** A package-manager command (install, remove) may take this long. @default 600000 (10 min) */
export const DEFAULT_PACKAGE_COMMAND_TIMEOUT_MS = 600_000;
/** A query (rpm -q, dpkg-query) may take this long. @default 60000 */
export const DEFAULT_PACKAGE_QUERY_TIMEOUT_MS = 60_000;
/** Output kept of one command (head and tail). @default 65536 bytes */
export const DEFAULT_COMMAND_OUTPUT_BYTES = 65_536;

export interface RunCommandOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Default 10 minutes: a dnf transaction on a slow mirror is slow, but never endless. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Bytes of output kept (half head, half tail). Default 64 KiB. */
  maxOutput?: number;
  onOutput?(chunk: string): void;
}

export interface CommandResult {
  code: number;
  /** stdout alone (parsed by queries), bounded like `output`. */
  stdout: string;
  /** stdout and stderr interleaved as they arrived, bounded. */
  output: PackageOutput;
}

/** Keeps the first and the last `max / 2` characters of a stream. */
export class BoundedText {
  private head = '';
  private tail = '';
  private dropped = false;

  constructor(private readonly max: number) {}

  push(chunk: string): void {
    const half = Math.floor(this.max / 2);
    if (this.head.length < half) {
      const room = half - this.head.length;
      this.head += chunk.slice(0, room);
      chunk = chunk.slice(room);
    }
    if (chunk.length === 0) return;
    this.tail += chunk;
    if (this.tail.length > half) {
      this.dropped = true;
      this.tail = this.tail.slice(this.tail.length - half);
    }
  }

  result(): PackageOutput {
    return this.dropped
      ? { text: `${this.head}\n[... output truncated ...]\n${this.tail}`, truncated: true }
      : { text: this.head + this.tail, truncated: false };
  }
}

/** Resolves with the exit code and output; rejects only when the program cannot run, times out or is aborted. */
export function runCommand(command: string, args: readonly string[], options: RunCommandOptions = {}): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_PACKAGE_COMMAND_TIMEOUT_MS;
  const max = options.maxOutput ?? DEFAULT_COMMAND_OUTPUT_BYTES;
  const what = `${command} ${args.join(' ')}`;
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new CancelledError(`cancelled before running ${what}`));
      return;
    }
    // detached: its own process group, so a kill reaches the children it forked too.
    const child = spawn(command, [...args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const out = new BoundedText(max);
    const stdout = new BoundedText(max);
    let stopped: Error | undefined;

    const killGroup = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    };
    const onAbort = (): void => {
      stopped ??= new CancelledError(`cancelled: ${what}`);
      killGroup();
    };
    const timer = setTimeout(() => {
      stopped ??= new DeadlineExceededError(`timed out after ${timeoutMs} ms: ${what}`);
      killGroup();
    }, timeoutMs);
    options.signal?.addEventListener('abort', onAbort, { once: true });

    const onData = (isStdout: boolean) => (buf: Buffer): void => {
      const s = buf.toString();
      out.push(s);
      if (isStdout) stdout.push(s);
      options.onOutput?.(s);
    };
    child.stdout.on('data', onData(true));
    child.stderr.on('data', onData(false));

    const finish = (): void => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    };
    child.once('error', (err: NodeJS.ErrnoException) => {
      finish();
      reject(err.code === 'ENOENT' ? new InternalError(`cannot run ${command}: not installed (ENOENT)`) : err);
    });
    child.once('close', (code, sig) => {
      finish();
      if (stopped) reject(stopped);
      else resolve({ code: code ?? (sig ? 128 : 1), stdout: stdout.result().text, output: out.result() });
    });
  });
}

/** The last non-empty lines of an output, for one-line error messages. */
export function lastLines(text: string, n = 3): string {
  return text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0).slice(-n).join(' | ');
}
