/* Reading vendor frames from a UART: resync on noise, check length and checksum, count drops. */
#include "drivers/serial/serial_frame.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"

/*
 * Counts what is dropped in buf[from, to): every byte, and every position
 * where a complete frame with a bad checksum starts, unless that frame
 * overlaps one counted before (*bad_until is the end of the last counted bad
 * frame, an offset into buf). The parser is pure, so asking it again about
 * a position gives the answer the scan had.
 */
static void count_dropped(const uint8_t *buf, size_t len, cg_frame_parse_fn parse, void *frame,
                          size_t from, size_t to, cg_frame_counts_t *counts, size_t *bad_until)
{
	size_t n;

	counts->dropped_bytes += to - from;
	for (size_t i = from; i < to; i++) {
		n = 0;
		if (parse(buf + i, len - i, &n, frame) != CG_ECRC)
			continue;
		if (i >= *bad_until)
			counts->bad_checksums++;
		if (i + n > *bad_until)
			*bad_until = i + n;
	}
}

/*
 * The scan behind cg_frame_scan(), keeping *bad_until across the calls of
 * one read so that a bad frame cut by the buffer's compaction is counted
 * once. Scanning goes on past an incomplete candidate: a noise byte that
 * looks like a frame start claiming a long frame must not hide a complete
 * good frame behind it.
 */
static int scan(const uint8_t *buf, size_t len, cg_frame_parse_fn parse, void *frame, size_t *start,
                size_t *frame_len, cg_frame_counts_t *counts, size_t *bad_until)
{
	size_t first_incomplete = len, n;
	int rc;

	for (size_t i = 0; i < len; i++) {
		n = 0;
		rc = parse(buf + i, len - i, &n, frame);
		if (rc == 0 && n > 0 && n <= len - i) {
			count_dropped(buf, len, parse, frame, 0, i, counts, bad_until);
			*start = i;
			*frame_len = n;
			return 0;
		}
		if (rc == CG_EAGAIN && first_incomplete == len)
			first_incomplete = i;
	}
	count_dropped(buf, len, parse, frame, 0, first_incomplete, counts, bad_until);
	*start = first_incomplete;
	*frame_len = 0;
	return CG_EAGAIN;
}

int cg_frame_scan(const uint8_t *buf, size_t len, cg_frame_parse_fn parse, void *frame,
                  size_t *start, size_t *frame_len, cg_frame_counts_t *counts)
{
	cg_frame_counts_t ignored = {0};
	size_t bad_until = 0;

	return scan(buf, len, parse, frame, start, frame_len, counts ? counts : &ignored,
	            &bad_until);
}

/*
 * Waits until fd is readable or the monotonic deadline passes. Returns 1
 * when there is something to read (data, or a hang-up that read() will
 * report), 0 at the deadline, CG_EIO when the fd is invalid or in error
 * with nothing to read.
 */
static int wait_readable(int fd, int64_t deadline_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int64_t left;
	int n;

	for (;;) {
		left = deadline_ms - cg_mono_ms();
		if (left < 0)
			left = 0;
		n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (p.revents & POLLNVAL))
			return CG_EIO;
		if (n == 0)
			return 0;
		/* POLLHUP with data still queued also sets POLLIN: read the
		 * data first, the hang-up shows as read() == 0 afterwards. */
		return (p.revents & POLLIN) ? 1 : CG_EIO;
	}
}

/* Reads what is available into buf[0, size). Returns the byte count (> 0),
 * 0 when a signal interrupted the read, or CG_EIO when the device is gone:
 * a read error, or end of file (a hung-up tty or pty). */
static ssize_t read_some(int fd, uint8_t *buf, size_t size)
{
	ssize_t n = read(fd, buf, size);

	if (n > 0)
		return n;
	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return CG_EIO;
}

/* The loop behind cg_serial_read_frame(), counting into *c. */
static int read_frame(int fd, int64_t deadline, cg_frame_parse_fn parse, void *frame,
                      cg_frame_counts_t *c)
{
	uint8_t buf[CG_SERIAL_FRAME_MAX];
	size_t len = 0, start, frame_len, bad_until = 0, received = 0;
	ssize_t n;
	int rc;

	for (;;) {
		if (len > 0) {
			if (scan(buf, len, parse, frame, &start, &frame_len, c, &bad_until) == 0)
				return 0;
			/* A full buffer that is one incomplete candidate would
			 * never complete: the parser claims more than the reader
			 * holds, so that start byte is noise. */
			if (start == 0 && len == sizeof(buf)) {
				start = 1;
				c->dropped_bytes++;
			}
			memmove(buf, buf + start, len - start);
			len -= start;
			bad_until = bad_until > start ? bad_until - start : 0;
		}
		rc = wait_readable(fd, deadline);
		if (rc < 0)
			return rc;
		if (rc == 0)
			break;
		n = read_some(fd, buf + len, sizeof(buf) - len);
		if (n < 0)
			return (int)n;
		len += (size_t)n;
		received += (size_t)n;
	}
	/* Deadline: whatever is left was a frame cut short, or noise. */
	count_dropped(buf, len, parse, frame, 0, len, c, &bad_until);
	if (c->bad_checksums > 0)
		return CG_ECRC;
	return received > 0 ? CG_EFRAME : CG_ETIMEDOUT;
}

int cg_serial_read_frame(int fd, int timeout_ms, cg_frame_parse_fn parse, void *frame,
                         cg_frame_counts_t *counts)
{
	cg_frame_counts_t c = {0};
	int64_t deadline = cg_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	int rc = read_frame(fd, deadline, parse, frame, &c);

	if (counts)
		*counts = c;
	return rc;
}

int cg_serial_flush(int fd)
{
	if (tcflush(fd, TCIFLUSH) == 0)
		return 0;
	/* A pipe or socket standing in for a UART has no input queue to flush. */
	if (errno == ENOTTY || errno == EINVAL)
		return 0;
	return CG_EIO;
}

int cg_serial_write(int fd, const uint8_t *buf, size_t len, int timeout_ms)
{
	int64_t deadline = cg_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	size_t off = 0;
	ssize_t n;
	int64_t left;

	while (off < len) {
		n = write(fd, buf + off, len - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			return CG_EIO;
		/* A non-blocking fd with a full output queue: wait for room. */
		left = deadline - cg_mono_ms();
		if (left <= 0)
			return CG_ETIMEDOUT;
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			return CG_EIO;
	}
	return 0;
}

int cg_serial_pending_frames(int fd, cg_frame_parse_fn parse, void *frame, size_t *frames)
{
	uint8_t buf[CG_SERIAL_FRAME_MAX];
	size_t len = 0, total = 0, start, frame_len;
	ssize_t n;
	int rc;

	*frames = 0;
	/* Bounded, so that a sensor streaming faster than we read cannot keep
	 * this loop going. */
	while (total < 8 * sizeof(buf)) {
		rc = wait_readable(fd, cg_mono_ms());
		if (rc <= 0)
			return rc;
		n = read_some(fd, buf + len, sizeof(buf) - len);
		if (n < 0)
			return (int)n;
		len += (size_t)n;
		total += (size_t)n;
		while (cg_frame_scan(buf, len, parse, frame, &start, &frame_len, NULL) == 0) {
			(*frames)++;
			start += frame_len;
			memmove(buf, buf + start, len - start);
			len -= start;
		}
		if (start == 0 && len == sizeof(buf))
			start = 1;
		memmove(buf, buf + start, len - start);
		len -= start;
	}
	return 0;
}
