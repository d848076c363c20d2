/* Logging to stderr with syslog priority prefixes, and the only writer of stdout. */
#ifndef CG_LOG_H
#define CG_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum {
	CG_LOG_ERR = 3,
	CG_LOG_WARNING = 4,
	CG_LOG_NOTICE = 5,
	CG_LOG_INFO = 6,
	CG_LOG_DEBUG = 7,
};

/* Writes one line "<prio>message" to stderr, atomically with respect to other
 * threads. Lines with a priority above the level set by cg_log_set_level() are
 * dropped. Never log a secret. */
void cg_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A cause of log lines that may repeat (a refused reading, a failing statement): at
 * most one line a second is written for it, and the next line says how many were held
 * back. Zero-initialised; one per cause, owned by one thread or guarded by its lock. */
typedef struct cg_log_limit {
	int64_t next_ms;    /* monotonic ms before which lines are held back */
	unsigned long held; /* lines held back since the last one written */
} cg_log_limit_t;

/* Returns true when a line of this cause may be written at now_mono_ms, and then sets
 * *held to how many were held back before it (and starts counting again); otherwise
 * counts the line as held back and returns false. */
bool cg_log_allow(cg_log_limit_t *l, int64_t now_mono_ms, unsigned long *held);

/* Sets the highest priority that is written (default CG_LOG_INFO). */
void cg_log_set_level(int max_prio);

/* Writes one line of program output (NDJSON from --once, --check problems) to
 * stdout and flushes it. line must not contain a newline; one is added. */
void cg_out(const char *line);

/* The same as cg_out() but to stderr without a priority prefix, for the
 * human-facing messages of command-line modes. */
void cg_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
