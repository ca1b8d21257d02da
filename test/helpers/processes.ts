/**
 * Real child processes for agents, coordinators and clusterctl. Output goes to a log file per
 * process (read back on failure) and is kept in memory for `waitForLog`. Where the programs
 * are and how a child is stopped is shared with scripts/dev-cluster (scripts/lib/process-support.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { BIN, isRunning, REPO_ROOT, stopChild } from '../../scripts/lib/process-support';
import { trackChild } from './children';
import { waitFor } from './wait';

export { BIN, DIST, REPO_ROOT } from '../../scripts/lib/process-support';

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** File that receives stdout and stderr. */
  logFile?: string;
}

export class ManagedProcess {
  private output = '';
  private log?: WriteStream;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly proc: ChildProcess;

  constructor(readonly name: string, command: string, args: readonly string[], options: SpawnOptions = {}) {
    this.proc = spawn(command, [...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    trackChild(this.proc);
    if (options.logFile) this.log = createWriteStream(options.logFile, { flags: 'a' });
    const onData = (chunk: Buffer): void => {
      const s = chunk.toString();
      this.output += s;
      if (this.output.length > 4_000_000) this.output = this.output.slice(-2_000_000);
      this.log?.write(s);
    };
    this.proc.stdout?.on('data', onData);
    this.proc.stderr?.on('data', onData);
    this.exited = new Promise((res) => {
      this.proc.once('exit', (code, signal) => {
        this.log?.end();
        res({ code, signal });
      });
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get alive(): boolean {
    return isRunning(this.proc);
  }

  get logs(): string {
    return this.output;
  }

  /** Waits until the output matches `pattern` (e.g. a JSON log message). */
  async waitForLog(pattern: RegExp | string, timeoutMs = 15_000): Promise<void> {
    await waitFor(`${this.name} to log ${String(pattern)}`, () => {
      if (typeof pattern === 'string' ? this.output.includes(pattern) : pattern.test(this.output)) return true;
      if (!this.alive) throw new Error(`${this.name} exited: ${this.output.slice(-2000)}`);
      return false;
    }, { timeoutMs });
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.alive) this.proc.kill(signal);
    await this.exited;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    await stopChild(this.proc, graceMs);
    await this.exited;
  }
}

/** `nodeArgs` go to node itself, before the script (e.g. --cpu-prof, which NODE_OPTIONS refuses). */
export function spawnNode(name: string, script: string, args: readonly string[], options: SpawnOptions & { nodeArgs?: readonly string[] } = {}): ManagedProcess {
  const { nodeArgs = [], ...rest } = options;
  return new ManagedProcess(name, process.execPath, [...nodeArgs, script, ...args], rest);
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (e.g. clusterctl) and returns its exit code and output. */
export function run(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((res, rej) => {
    const proc = spawn(command, [...args], { cwd: options.cwd ?? REPO_ROOT, env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    proc.on('error', rej);
    proc.on('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
    // A command that exits before reading its input fails the write with EPIPE; its exit
    // code and output are the answer, so that error is not thrown.
    proc.stdin.on('error', () => { /* EPIPE */ });
    if (options.input !== undefined) proc.stdin.end(options.input);
    else proc.stdin.end();
  });
}

/** Runs clusterctl (the built CLI) as a process. */
export function clusterctl(args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(process.execPath, [BIN.clusterctl, ...args], options);
}
