/**
 * gRPC message size limit used on every channel and server of the system. grpc's default of
 * 4 MiB is too small for a large fleet: ListNodes of 10,000 nodes is ~4.3 MB and reading 5,000
 * node records from etcd is ~8 MB (bench/fanout.ts hit both). 64 MiB leaves room for ~100,000
 * nodes; requests stay small (files are limited to 1 MiB by their service).
 */
export const MAX_GRPC_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * The largest request the coordinator reads: the largest legitimate one is a 1 MiB file upload
 * or a 1 MiB cluster file (shared/input-limits.ts), and an agent's report is far smaller.
 * Anything larger is refused by grpc-js before a byte of it is decoded, as INVALID_ARGUMENT
 * (coordinator/call-guard.ts rewrites grpc-js's RESOURCE_EXHAUSTED).
 */
export const MAX_GRPC_REQUEST_BYTES = 8 * 1024 * 1024;

/**
 * The options every channel and server of the system starts from: the message limits above,
 * and channelz off. grpc-js keeps channelz on by default: per call, per message and per
 * connection bookkeeping (call trackers, a Date.now() per message, a registry entry per
 * socket) for an introspection service nothing here serves; the leader pays it for every
 * message of every agent stream and every etcd call.
 */
export const GRPC_OPTIONS = {
  'grpc.max_receive_message_length': MAX_GRPC_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_GRPC_MESSAGE_BYTES,
  'grpc.enable_channelz': 0,
} as const;
