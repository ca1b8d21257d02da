/**
 * Metadata headers of the contract that are not fields of a message, because they belong to the
 * call rather than to what it asks (like the gRPC deadline, which travels as grpc-timeout).
 */

/**
 * The idempotency key of a write: one per logical request (clusterctl makes one per call of an
 * invocation), sent again unchanged on that request's own retries and replica failover, so the
 * coordinator can answer a retry with the first result (coordinator/request-binding.ts).
 */
export const IDEMPOTENCY_HEADER = 'x-idempotency-key';

/**
 * The request's deadline as wall-clock time (epoch milliseconds, decimal), sent with every write
 * beside gRPC's own deadline. gRPC sends a deadline as a duration (grpc-timeout) that the server
 * starts counting when it reads the headers, so a replica frozen with the request in its socket
 * buffer (SIGSTOP, a paused VM) starts counting only when it wakes, long after the client gave
 * up. The server takes the earlier of the two; this assumes the clocks agree to well within a
 * request's timeout (NTP).
 */
export const DEADLINE_HEADER = 'x-request-deadline';
