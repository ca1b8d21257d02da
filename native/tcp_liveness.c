/*
 * The kernel's own liveness check on a TCP connection: keepalive probes after a short idle
 * time, and a bound on how long sent data may stay unacknowledged (TCP_USER_TIMEOUT). Node
 * sets SO_KEEPALIVE and TCP_KEEPIDLE only (libuv 1.46 fixes 10 probes 1 s apart, and offers no
 * TCP_USER_TIMEOUT), so a dead peer takes 11 s or more to find, and never while data waits for
 * an ACK. Probes and their answers are handled by the two kernels: no process wakes up for
 * them, unlike an HTTP/2 PING, which both programs must read, decrypt and answer.
 *
 * set(fd, idleS, intervalS, count, userTimeoutMs) sets the five options on a connected TCP
 * socket, or throws an Error naming the option and errno (and leaves none of them set). get(fd)
 * reads them back (tests), in the order [SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL,
 * TCP_KEEPCNT, TCP_USER_TIMEOUT].
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

struct option_spec { int level; int name; const char *what; };

/* TCP_USER_TIMEOUT first: if a later option fails, set() undoes what it set (see there). */
static const struct option_spec OPTIONS[] = {
  { IPPROTO_TCP, TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT" },
  { IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE" },
  { IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL" },
  { IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT" },
  { SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE" },
};
#define OPTION_COUNT (sizeof(OPTIONS) / sizeof(OPTIONS[0]))

static napi_value throw_errno(napi_env env, const char *call, const char *what, int err) {
  char message[160];
  snprintf(message, sizeof(message), "%s(%s): %s", call, what, strerror(err));
  napi_throw_error(env, NULL, message);
  return NULL;
}

/*
 * Reads `want` arguments that must be whole numbers from 0 to INT32_MAX; throws a TypeError
 * (nothing is truncated or wrapped: 2.5, -1, NaN and 2^31 are refused) and returns 0 otherwise.
 */
static int int_args(napi_env env, napi_callback_info info, size_t want, int32_t *out, const char *usage) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != want) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  for (size_t i = 0; i < want; i++) {
    napi_valuetype type;
    double value;
    if (napi_typeof(env, argv[i], &type) != napi_ok || type != napi_number || napi_get_value_double(env, argv[i], &value) != napi_ok ||
        !(value >= 0 && value <= 2147483647.0) || value != (double)(int32_t)value) {
      napi_throw_type_error(env, NULL, usage);
      return 0;
    }
    out[i] = (int32_t)value;
  }
  return 1;
}

static napi_value set_liveness(napi_env env, napi_callback_info info) {
  int32_t a[5];
  if (!int_args(env, info, 5, a, "set(fd, idleS, intervalS, count, userTimeoutMs): five whole numbers from 0 to 2^31-1")) return NULL;
  /* In OPTIONS' order: user timeout, idle, interval, count, keepalive on. */
  int values[OPTION_COUNT] = { a[4], a[1], a[2], a[3], 1 };
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    if (setsockopt(a[0], OPTIONS[i].level, OPTIONS[i].name, &values[i], sizeof(values[i])) != 0) {
      int err = errno;
      /* Leave no half-set window behind: keepalive off (set last, so it is not on yet) and no user timeout. */
      if (i > 0) {
        int zero = 0;
        (void)setsockopt(a[0], IPPROTO_TCP, TCP_USER_TIMEOUT, &zero, sizeof(zero));
      }
      return throw_errno(env, "setsockopt", OPTIONS[i].what, err);
    }
  }
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

static napi_value get_liveness(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!int_args(env, info, 1, &fd, "get(fd): one whole number")) return NULL;
  /* OPTIONS' indexes in the order get() reports them. */
  static const size_t ORDER[OPTION_COUNT] = { 4, 1, 2, 3, 0 };
  napi_value result;
  if (napi_create_array_with_length(env, OPTION_COUNT, &result) != napi_ok) return NULL;
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    const struct option_spec *o = &OPTIONS[ORDER[i]];
    int value = 0;
    socklen_t length = sizeof(value);
    if (getsockopt(fd, o->level, o->name, &value, &length) != 0) {
      return throw_errno(env, "getsockopt", o->what, errno);
    }
    napi_value v;
    if (napi_create_int32(env, value, &v) != napi_ok || napi_set_element(env, result, (uint32_t)i, v) != napi_ok) return NULL;
  }
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "set", NAPI_AUTO_LENGTH, set_liveness, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "set", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "get", NAPI_AUTO_LENGTH, get_liveness, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "get", fn) != napi_ok) return NULL;
  return exports;
}
