/* Unit tests for base/clock: sleeping through signals, RFC 3339 formatting. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/time.h>

#include <cmocka.h>

#include "base/clock.h"

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	alarms++;
}

/* A signal every 10 ms (no SA_RESTART, as the daemon's handlers): the sleep
 * still lasts its whole time. Before it resumed, it ended at the first one. */
static void test_sleep_resumes_after_signals(void **state)
{
	struct sigaction sa = {.sa_handler = on_alarm};
	struct itimerval every = {.it_interval = {0, 10000}, .it_value = {0, 10000}};
	struct itimerval off = {0};
	int64_t start, slept;

	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
	assert_int_equal(setitimer(ITIMER_REAL, &every, NULL), 0);
	start = cg_mono_ms();
	cg_sleep_ms(200);
	slept = cg_mono_ms() - start;
	setitimer(ITIMER_REAL, &off, NULL);
	signal(SIGALRM, SIG_DFL);
	assert_true(alarms >= 2);
	assert_in_range(slept, 200, 100000);
}

static void test_rfc3339(void **state)
{
	char buf[32];

	cg_rfc3339(1764071200123, buf, sizeof(buf));
	assert_string_equal(buf, "2025-11-25T11:46:40.123Z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sleep_resumes_after_signals),
	    cmocka_unit_test(test_rfc3339),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
