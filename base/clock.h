/* Wall-clock and monotonic time in milliseconds, and RFC 3339 formatting. */
#ifndef CG_CLOCK_H
#define CG_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t cg_now_ms(void);
/* Milliseconds on CLOCK_MONOTONIC, for schedules and timeouts. */
int64_t cg_mono_ms(void);
/* Formats epoch milliseconds as "YYYY-MM-DDTHH:MM:SS.mmmZ" (needs 25 bytes). */
void cg_rfc3339(int64_t ms, char *buf, size_t size);
/* Sleeps for ms milliseconds (restarting on EINTR is not done: signals wake it). */
void cg_sleep_ms(int64_t ms);

#endif
