/* Wall-clock, monotonic and boot time in milliseconds, RFC 3339 formatting, and whether
 * the wall clock can be trusted. */
#ifndef CG_CLOCK_H
#define CG_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). It may jump either way. */
int64_t cg_now_ms(void);
/* Milliseconds on CLOCK_MONOTONIC, for schedules and timeouts. */
int64_t cg_mono_ms(void);
/* The CLOCK_MONOTONIC time ms milliseconds from now, as the absolute
 * deadline that pthread_cond_timedwait (on a monotonic condition),
 * pthread_clockjoin_np and clock_nanosleep take. */
struct timespec cg_mono_deadline(int64_t ms);
/* Milliseconds on CLOCK_BOOTTIME: since the kernel started, never jumping, suspend
 * included; what a wall time is tied to so that it can be corrected after a step. */
int64_t cg_boot_ms(void);
/* Formats epoch milliseconds as "YYYY-MM-DDTHH:MM:SS.mmmZ" (needs 25 bytes); times
 * before 1970 too (floored, so -1 ms is 1969-12-31T23:59:59.999Z). */
void cg_rfc3339(int64_t ms, char *buf, size_t size);
/* Parses exactly that form (24 characters at s, no time zone but Z) into *ms; false
 * when s is not such a time. */
bool cg_rfc3339_parse(const char *s, int64_t *ms);
/* Sleeps for ms milliseconds on the monotonic clock. A signal does not cut
 * it short: the sleep resumes until the whole time has passed. */
void cg_sleep_ms(int64_t ms);

/* What decides whether the wall clock is trusted (config gateway.clock). */
typedef enum cg_clock_policy {
	CG_CLOCK_POLICY_TRUST, /* trusted unless a floor below says otherwise */
	CG_CLOCK_POLICY_NTP,   /* also needs the kernel's word that it is synchronized */
} cg_clock_policy_t;

/* The wall clock's state, first match wins. Only SYNCED and ASSUMED are trusted. */
typedef enum cg_clock_state {
	CG_CLOCK_SYNCED,       /* the kernel says an NTP client synchronized it */
	CG_CLOCK_ASSUMED,      /* policy trust: no such word, trusted all the same */
	CG_CLOCK_UNSYNCED,     /* policy ntp: the kernel says unsynchronized */
	CG_CLOCK_BEFORE_BUILD, /* earlier than this build's date (CG_BUILD_EPOCH_S) */
	CG_CLOCK_BEHIND_STORE, /* earlier than the newest trusted ts already stored */
} cg_clock_state_t;

/* Judges the wall clock reading wall_ms under policy: before the build's date or
 * behind newest_ms (the newest ts made with a trusted clock, 0: none) it is wrong in
 * every policy; otherwise the kernel's NTP status (adjtimex: STA_UNSYNC) decides under
 * CG_CLOCK_POLICY_NTP. */
cg_clock_state_t cg_clock_judge(cg_clock_policy_t policy, int64_t wall_ms, int64_t newest_ms);
bool cg_clock_trusted(cg_clock_state_t s);
/* "synced", "assumed", "unsynced", "before-build", "behind-store". */
const char *cg_clock_state_name(cg_clock_state_t s);
/* "trust", "ntp". */
const char *cg_clock_policy_name(cg_clock_policy_t p);

#endif
