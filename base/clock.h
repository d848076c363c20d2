/* Wall-clock and monotonic time in milliseconds, and RFC 3339 formatting. */
#ifndef CG_CLOCK_H
#define CG_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t cg_now_ms(void);
/* Milliseconds on CLOCK_MONOTONIC, for schedules and timeouts. */
int64_t cg_mono_ms(void);
/* The CLOCK_MONOTONIC time ms milliseconds from now, as the absolute
 * deadline that pthread_cond_timedwait (on a monotonic condition),
 * pthread_clockjoin_np and clock_nanosleep take. */
struct timespec cg_mono_deadline(int64_t ms);
/* Formats epoch milliseconds as "YYYY-MM-DDTHH:MM:SS.mmmZ" (needs 25 bytes). */
void cg_rfc3339(int64_t ms, char *buf, size_t size);
/* Sleeps for ms milliseconds on the monotonic clock. A signal does not cut
 * it short: the sleep resumes until the whole time has passed. */
void cg_sleep_ms(int64_t ms);

#endif
