/* Wall-clock, monotonic and boot time in milliseconds, RFC 3339 formatting, and whether
 * the wall clock can be trusted. */
#include "base/clock.h"

#include <errno.h>
#include <stdio.h>
#include <sys/timex.h>
#include <time.h>

#include "base/build_config.h"

/* A reading a little behind the newest trusted ts is NTP's small step back (it steps
 * rather than slews beyond 128 ms), not a wrong clock. */
#define BEHIND_TOLERANCE_MS 1000

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cg_now_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

int64_t cg_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

int64_t cg_boot_ms(void)
{
	return clock_ms(CLOCK_BOOTTIME);
}

/* Floored division and remainder, so that times before 1970 format like the others. */
void cg_rfc3339(int64_t ms, char *buf, size_t size)
{
	int64_t secs = ms / 1000, frac = ms % 1000;
	time_t t;
	struct tm tm;

	if (frac < 0) {
		frac += 1000;
		secs -= 1;
	}
	t = (time_t)secs;
	if (!gmtime_r(&t, &tm))
		tm = (struct tm){.tm_mday = 1, .tm_year = -1900};
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

/* Reads n digits at s into *v; false at anything else. */
static bool read_digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's
 * days_from_civil), so that parsing needs no time zone and no timegm(). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

bool cg_rfc3339_parse(const char *s, int64_t *ms)
{
	int y, mo, d, h, mi, sec, frac;

	if (!read_digits(s, 4, &y) || s[4] != '-' || !read_digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !read_digits(s + 8, 2, &d) || s[10] != 'T' || !read_digits(s + 11, 2, &h) ||
	    s[13] != ':' || !read_digits(s + 14, 2, &mi) || s[16] != ':' ||
	    !read_digits(s + 17, 2, &sec) || s[19] != '.' || !read_digits(s + 20, 3, &frac) ||
	    s[23] != 'Z')
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return false;
	*ms = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) * 1000) + frac;
	return true;
}

struct timespec cg_mono_deadline(int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

/* An absolute deadline, so that resuming after EINTR neither sleeps twice
 * nor drifts. */
void cg_sleep_ms(int64_t ms)
{
	struct timespec until;

	if (ms <= 0)
		return;
	until = cg_mono_deadline(ms);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
		;
}

/* The kernel's word: adjtimex() with no modes only reads. TIME_ERROR or STA_UNSYNC is
 * what chrony and systemd-timesyncd leave while they have not synchronized the clock
 * (and what a kernel starts with). */
static bool kernel_synced(void)
{
	struct timex tx = {0};
	int rc = adjtimex(&tx);

	return rc >= 0 && rc != TIME_ERROR && !(tx.status & STA_UNSYNC);
}

cg_clock_state_t cg_clock_judge(cg_clock_policy_t policy, int64_t wall_ms, int64_t newest_ms)
{
	bool synced;

	if (wall_ms < CG_BUILD_EPOCH_S * 1000)
		return CG_CLOCK_BEFORE_BUILD;
	if (newest_ms > 0 && wall_ms < newest_ms - BEHIND_TOLERANCE_MS)
		return CG_CLOCK_BEHIND_STORE;
	synced = kernel_synced();
	if (synced)
		return CG_CLOCK_SYNCED;
	return policy == CG_CLOCK_POLICY_NTP ? CG_CLOCK_UNSYNCED : CG_CLOCK_ASSUMED;
}

bool cg_clock_trusted(cg_clock_state_t s)
{
	return s == CG_CLOCK_SYNCED || s == CG_CLOCK_ASSUMED;
}

const char *cg_clock_state_name(cg_clock_state_t s)
{
	static const char *const names[] = {
		[CG_CLOCK_SYNCED] = "synced",
		[CG_CLOCK_ASSUMED] = "assumed",
		[CG_CLOCK_UNSYNCED] = "unsynced",
		[CG_CLOCK_BEFORE_BUILD] = "before-build",
		[CG_CLOCK_BEHIND_STORE] = "behind-store",
	};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

const char *cg_clock_policy_name(cg_clock_policy_t p)
{
	return p == CG_CLOCK_POLICY_NTP ? "ntp" : "trust";
}
