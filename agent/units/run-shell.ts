/**
 * Runs a command through `/bin/sh -c` in its own process group, so a timeout or a cancel
 * stops the command *and* everything it started (SIGTERM to the group, then SIGKILL after a
 * grace). Output (stdout and stderr interleaved, as a person would see it) is captured
 * bounded and streamed to `onOutput` as it arrives.
 */
import { spawn } from 'node:child_process';
import { BoundedOutput, DEFAULT_OUTPUT_LIMIT } from './bounded-output';
import type { UnitOutput } from './unit';

/** Time between SIGTERM and SIGKILL of a unit's process group. @default 2000 */
export const DEFAULT_KILL_GRACE_MS = 2000;

export interface ShellOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Aborting it kills the process group. */
  signal?: AbortSignal;
  onOutput?(chunk: string): void;
  /** Time between SIGTERM and SIGKILL (default 2 s). */
  killGraceMs?: number;
  outputLimit?: number;
}

export interface ShellResult {
  /** null when killed by a signal. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  output: UnitOutput;
  /** The command was stopped because `signal` was aborted. */
  aborted: boolean;
  pid: number;
}

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // ESRCH: the group is already gone.
  }
}

export function runShell(command: string, options: ShellOptions): Promise<ShellResult> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      resolve({ exitCode: null, signal: null, output: { text: '', truncated: false }, aborted: true, pid: -1 });
      return;
    }
    const out = new BoundedOutput(options.outputLimit ?? DEFAULT_OUTPUT_LIMIT);
    const child = spawn('/bin/sh', ['-c', command], {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Own process group: kill(-pid) reaches the command's children too.
      detached: true,
    });
    let aborted = false;
    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      aborted = true;
      killGroup(child.pid, 'SIGTERM');
      killTimer = setTimeout(() => killGroup(child.pid as number, 'SIGKILL'), options.killGraceMs ?? DEFAULT_KILL_GRACE_MS);
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const onData = (chunk: Buffer): void => {
      const s = chunk.toString('utf8');
      out.push(s);
      options.onOutput?.(s);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (err) => {
      options.signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    child.once('exit', (code, sig) => {
      options.signal?.removeEventListener('abort', onAbort);
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        // When aborted, the pending SIGKILL stays armed: children that ignore SIGTERM still die
        // after the grace, even though the shell itself has already exited.
        if (!aborted && killTimer) clearTimeout(killTimer);
        resolve({ exitCode: code, signal: sig, output: out.result(), aborted, pid: child.pid ?? -1 });
      };
      // Pipes may still hold the last output; a background process that keeps them open must
      // not hold the unit up, so wait for them only briefly.
      if (child.stdout.readableEnded && child.stderr.readableEnded) { finish(); return; }
      const t = setTimeout(() => { child.stdout.destroy(); child.stderr.destroy(); finish(); }, 200);
      child.once('close', () => { clearTimeout(t); finish(); });
    });
  });
}
