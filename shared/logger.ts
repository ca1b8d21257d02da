/**
 * Structured JSON logger: one JSON object per line on stderr (systemd's journal keeps it;
 * `journalctl -o cat | jq` reads it). An instance, never module state, so many agents can
 * live in one process with their own fields.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export type LogFields = Record<string, unknown>;
export type LogSink = (line: string) => void;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export function isLogLevel(s: string): s is LogLevel {
  return s in RANK;
}

/** Lines logged in this turn of the event loop, written together at its end (one write, not one per line). */
let pendingLines: string[] = [];
let flushScheduled = false;

function flushLines(): void {
  flushScheduled = false;
  if (pendingLines.length === 0) return;
  const text = pendingLines.join('');
  pendingLines = [];
  process.stderr.write(text);
}

// Whatever is pending when the process exits (process.exit, an uncaught error) is written first.
process.on('exit', flushLines);

/**
 * stderr, a turn of the event loop at a time: a leader finishing 10,000 nodes logs 10,000
 * lines, and a write(2) each was a measurable part of its CPU. Lines keep their order; a
 * SIGKILL loses at most the current turn's lines.
 */
const stderrSink: LogSink = (line) => {
  pendingLines.push(line + '\n');
  if (flushScheduled) return;
  flushScheduled = true;
  setImmediate(flushLines).unref();
};

function serialise(value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

export function createLogger(options: { level?: LogLevel; fields?: LogFields; sink?: LogSink; clock?: () => Date } = {}): Logger {
  const min = RANK[options.level ?? 'info'];
  const base = options.fields ?? {};
  const sink = options.sink ?? stderrSink;
  const clock = options.clock ?? (() => new Date());

  const write = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (RANK[level] < min) return;
    const record: LogFields = { ts: clock().toISOString(), level, msg, ...base };
    if (fields) for (const [k, v] of Object.entries(fields)) record[k] = serialise(v);
    sink(JSON.stringify(record));
  };

  return {
    debug: (msg, fields) => write('debug', msg, fields),
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
    child: (fields) => createLogger({ ...options, fields: { ...base, ...fields } }),
  };
}
