/* Reading vendor frames from a UART: resync on noise, check length and checksum, count drops. */
#ifndef CG_SERIAL_FRAME_H
#define CG_SERIAL_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest frame the reader can hold; a parser must never ask for more. */
#define CG_SERIAL_FRAME_MAX 512

/*
 * A frame parser: a pure function that looks at whether buf[0..len) starts
 * with one frame of its protocol. It never reads outside the buffer, keeps no
 * state and has no side effects besides its out-parameters. It returns:
 *
 *   0             buf starts with a good frame of *frame_len bytes; *frame
 *                 holds the decoded fields.
 *   CG_EAGAIN     buf is the beginning of a frame that is not complete yet
 *                 (*frame_len is the total length if already known, else 0).
 *   CG_EFRAME     no frame starts at buf[0]: a wrong start byte, length field
 *                 or trailer. The reader skips one byte and tries again.
 *   CG_ECRC       buf starts with a complete frame of *frame_len bytes whose
 *                 checksum is wrong.
 *
 * *frame is written only when the parser returns 0.
 */
typedef int (*cg_frame_parse_fn)(const uint8_t *buf, size_t len, size_t *frame_len, void *frame);

/* What one scan or read found besides the frame itself. */
typedef struct cg_frame_counts {
	size_t dropped_bytes; /* bytes skipped before the frame: noise, partial or corrupt frames */
	size_t bad_checksums; /* complete frames that failed their checksum */
} cg_frame_counts_t;

/*
 * Looks for the first good frame in buf[0..len), a pure function over the
 * bytes. Returns 0 with *start and *frame_len set and *frame decoded; or
 * CG_EAGAIN when no good frame is in the buffer yet, with *start the offset
 * of the first byte worth keeping (a possible frame that is still
 * incomplete, or len when nothing is); every byte before *start is dropped.
 * counts (may be NULL) is increased by what was skipped, never reset. A bad
 * frame overlapping one already counted is not counted again, so a frame
 * whose corrupt start byte repeats inside it counts once.
 */
int cg_frame_scan(const uint8_t *buf, size_t len, cg_frame_parse_fn parse, void *frame,
                  size_t *start, size_t *frame_len, cg_frame_counts_t *counts);

/*
 * Reads from fd (a UART in raw mode, or any pollable fd) until the first good
 * frame arrives or timeout_ms pass, whichever is first; decodes it into
 * *frame. Bytes that arrive after the good frame within the same read are
 * discarded with it (drivers flush before every command anyway). counts (may
 * be NULL) is set to what was skipped in this call. Returns 0, or:
 *
 *   CG_ETIMEDOUT  nothing at all arrived in time: the device is silent;
 *   CG_ECRC       only frames with bad checksums (and maybe noise) arrived;
 *   CG_EFRAME     bytes arrived but not one frame (noise, a wrong baud rate,
 *                 a frame cut short);
 *   CG_EIO        the device is gone: a read error (EIO, ENXIO, EBADF ...)
 *                 or a hang-up (read() gives 0 once a pty's master closes).
 */
int cg_serial_read_frame(int fd, int timeout_ms, cg_frame_parse_fn parse, void *frame,
                         cg_frame_counts_t *counts);

/* Discards the input waiting on fd (tcflush TCIFLUSH), so that a stale
 * answer is not taken for the next one. Returns 0, or CG_EIO when the device
 * is gone; a fd that is not a tty (a pipe in a test) is left as it is. */
int cg_serial_flush(int fd);

/* Writes all len bytes of buf to fd within timeout_ms. Returns 0, CG_EIO
 * when the device is gone, or CG_ETIMEDOUT when it does not take them. */
int cg_serial_write(int fd, const uint8_t *buf, size_t len, int timeout_ms);

/*
 * Reads whatever input is already waiting on fd, without waiting for more,
 * and sets *frames to the number of good frames in it (counting stops at
 * a bound, and the bytes read are consumed). A driver of a sensor it keeps
 * in a polled mode calls this before flushing: frames it did not ask for
 * mean the sensor streams, so it restarted in its default mode. One frame
 * is not proof: an answer that arrived after its poll gave up, or a frame
 * that was on the line while the mode changed, is left over that way.
 * Returns 0 or CG_EIO.
 */
int cg_serial_pending_frames(int fd, cg_frame_parse_fn parse, void *frame, size_t *frames);

#endif
