/* Logging to stderr with syslog priority prefixes, and the only writer of stdout. */
#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_level = CG_LOG_INFO;

void cg_log_set_level(int max_prio)
{
	log_level = max_prio;
}

void cg_log(int prio, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (prio > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* One fprintf per line under a lock so lines from bus workers never interleave. */
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "<%d>%s\n", prio, buf);
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
}

void cg_out(const char *line)
{
	pthread_mutex_lock(&log_lock);
	fputs(line, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	pthread_mutex_unlock(&log_lock);
}

void cg_err(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&log_lock);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
}

bool cg_log_allow(cg_log_limit_t *l, int64_t now_mono_ms, unsigned long *held)
{
	if (now_mono_ms < l->next_ms) {
		l->held++;
		return false;
	}
	*held = l->held;
	l->held = 0;
	l->next_ms = now_mono_ms + 1000;
	return true;
}
