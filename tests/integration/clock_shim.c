/* Test-only LD_PRELOAD library: a wall clock the test steps, and the kernel's NTP word. */
/*
 * CG_CLOCK_SHIM names a 16-byte file the test writes: the offset in milliseconds added
 * to the wall clock (int64, little-endian) and whether the clock counts as NTP
 * synchronized (int64, 0 or 1). It is mapped shared, so a step is one pwrite() by the
 * test and costs the daemon no system call. The offset applies only to calls made from
 * the main program (citygate's own code): libraries such as Paho and glibc compute
 * absolute CLOCK_REALTIME deadlines for futex and sem_timedwait, which the kernel
 * compares with its own, unshifted clock; shifting those made libfaketime's daemon
 * spin. adjtimex(), ntp_adjtime() and clock_adjtime(CLOCK_REALTIME) answer
 * "unsynchronized" (TIME_ERROR, STA_UNSYNC) or "synchronized" (TIME_OK) as the file
 * says, for every caller.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <time.h>
#include <unistd.h>

struct shim_file {
	volatile int64_t offset_ms;
	volatile int64_t synced;
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const struct shim_file *shim;
static uintptr_t main_lo, main_hi;
static int (*real_clock_gettime)(clockid_t, struct timespec *);
static int (*real_gettimeofday)(struct timeval *, void *);
static int (*real_clock_adjtime)(clockid_t, struct timex *);

/* The main program's loaded segments: the first object dl_iterate_phdr() reports. */
static int find_main(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	(void)data;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;

		if (ph->p_type != PT_LOAD)
			continue;
		if (!main_lo || lo < main_lo)
			main_lo = lo;
		if (hi > main_hi)
			main_hi = hi;
	}
	return 1;
}

static void init(void)
{
	const char *path = getenv("CG_CLOCK_SHIM");
	int fd;

	real_clock_gettime = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
	real_gettimeofday = (int (*)(struct timeval *, void *))dlsym(RTLD_NEXT, "gettimeofday");
	real_clock_adjtime = (int (*)(clockid_t, struct timex *))dlsym(RTLD_NEXT, "clock_adjtime");
	dl_iterate_phdr(find_main, NULL);
	if (!path)
		return;
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	shim = mmap(NULL, sizeof(*shim), PROT_READ, MAP_SHARED, fd, 0);
	if (shim == MAP_FAILED)
		shim = NULL;
	close(fd);
}

/* The offset for a call made from caller: the file's, for the main program only. */
static int64_t offset_for(const void *caller)
{
	uintptr_t at = (uintptr_t)caller;

	pthread_once(&once, init);
	if (!shim || at < main_lo || at >= main_hi)
		return 0;
	return shim->offset_ms;
}

static void shift(struct timespec *ts, int64_t ms)
{
	int64_t ns = (int64_t)ts->tv_nsec + (ms % 1000) * 1000000;

	ts->tv_sec += ms / 1000 + (ns >= 1000000000) - (ns < 0);
	ts->tv_nsec = (long)(ns >= 1000000000 ? ns - 1000000000 : ns < 0 ? ns + 1000000000 : ns);
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
	int64_t off = id == CLOCK_REALTIME ? offset_for(__builtin_return_address(0)) : 0;
	int rc;

	pthread_once(&once, init);
	rc = real_clock_gettime(id, ts);
	if (rc == 0 && off)
		shift(ts, off);
	return rc;
}

int gettimeofday(struct timeval *tv, void *tz)
{
	int64_t off = offset_for(__builtin_return_address(0));
	struct timespec ts;
	int rc;

	pthread_once(&once, init);
	rc = real_gettimeofday(tv, tz);
	if (rc == 0 && off) {
		ts.tv_sec = tv->tv_sec;
		ts.tv_nsec = tv->tv_usec * 1000;
		shift(&ts, off);
		tv->tv_sec = ts.tv_sec;
		tv->tv_usec = ts.tv_nsec / 1000;
	}
	return rc;
}

time_t time(time_t *out)
{
	int64_t off = offset_for(__builtin_return_address(0));
	struct timespec ts;
	time_t t;

	real_clock_gettime(CLOCK_REALTIME, &ts);
	shift(&ts, off);
	t = ts.tv_sec;
	if (out)
		*out = t;
	return t;
}

int clock_adjtime(clockid_t id, struct timex *tx)
{
	int rc;

	pthread_once(&once, init);
	rc = real_clock_adjtime(id, tx);
	if (rc < 0 || id != CLOCK_REALTIME || !shim || tx->modes)
		return rc;
	if (shim->synced) {
		tx->status &= ~STA_UNSYNC;
		return TIME_OK;
	}
	tx->status |= STA_UNSYNC;
	return TIME_ERROR;
}

int adjtimex(struct timex *tx)
{
	return clock_adjtime(CLOCK_REALTIME, tx);
}

int ntp_adjtime(struct timex *tx)
{
	return clock_adjtime(CLOCK_REALTIME, tx);
}
