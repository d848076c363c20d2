/* The systemd notification protocol (sd_notify(3)), without libsystemd.
 *
 * The protocol is a datagram of newline-separated assignments sent to an
 * AF_UNIX socket whose name systemd passes in $NOTIFY_SOCKET; systemd
 * documents it as stable for other implementations. Doing it here keeps
 * libsystemd, and the compression libraries it loads, out of the daemon:
 * about 0.9 MB of resident memory on a box that has little. */
#include "base/notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/error.h"

int cg_notify(const char *fmt, ...)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char msg[512];
	size_t len;
	socklen_t salen;
	va_list ap;
	int fd, n;

	if (!name || !*name)
		return CG_OK;
	len = strlen(name);
	if ((name[0] != '/' && name[0] != '@') || len >= sizeof(sa.sun_path))
		return CG_EIO;
	memcpy(sa.sun_path, name, len);
	/* "@name" is the abstract namespace: a leading NUL, no terminator. */
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (name[0] == '/'));
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return CG_EIO;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return CG_EIO;
	n = (int)sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	close(fd);
	return n < 0 ? CG_EIO : CG_OK;
}

bool cg_watchdog_enabled(uint64_t *usec)
{
	const char *s = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	char *end;
	unsigned long long v;

	*usec = 0;
	if (!s || !*s)
		return false;
	if (pid && *pid && strtol(pid, NULL, 10) != (long)getpid())
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v == 0)
		return false;
	*usec = v;
	return true;
}
