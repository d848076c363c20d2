/* Unit tests of base/notify: the systemd notification protocol without libsystemd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/notify.h"

/* A datagram socket bound at name (a path, or "@name" abstract). */
static int listen_at(const char *name)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	assert_int_equal(bind(fd, (struct sockaddr *)&sa,
	                      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
	                                  (name[0] == '/'))),
	                 0);
	return fd;
}

static void expect_message(int fd, const char *want)
{
	char buf[512];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void test_path_and_abstract_sockets(void **state)
{
	char path[64], abstract[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/cg-notify-%d.sock", (int)getpid());
	unlink(path);
	fd = listen_at(path);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(cg_notify("READY=1\nSTATUS=%s", "running"), CG_OK);
	expect_message(fd, "READY=1\nSTATUS=running");
	close(fd);
	unlink(path);

	snprintf(abstract, sizeof(abstract), "@cg-notify-%d", (int)getpid());
	fd = listen_at(abstract);
	setenv("NOTIFY_SOCKET", abstract, 1);
	assert_int_equal(cg_notify("WATCHDOG=1"), CG_OK);
	expect_message(fd, "WATCHDOG=1");
	close(fd);

	/* Not started by systemd: nothing to do, no error. */
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(cg_notify("READY=1"), CG_OK);
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(cg_notify("READY=1"), CG_EIO);
	unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog_for_this_process_only(void **state)
{
	char pid[16];
	uint64_t usec;

	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	assert_false(cg_watchdog_enabled(&usec));
	setenv("WATCHDOG_USEC", "2000000", 1);
	assert_true(cg_watchdog_enabled(&usec));
	assert_int_equal(usec, 2000000);
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	assert_false(cg_watchdog_enabled(&usec));
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	assert_true(cg_watchdog_enabled(&usec));
	setenv("WATCHDOG_USEC", "soon", 1);
	assert_false(cg_watchdog_enabled(&usec));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_path_and_abstract_sockets),
	    cmocka_unit_test(test_watchdog_for_this_process_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
