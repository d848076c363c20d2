/* A growable byte buffer with JSON writing helpers, for encoders. */
#ifndef CG_BUF_H
#define CG_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Zero-initialise; data is NUL-terminated while len > 0. After a failed
 * allocation the buffer is marked failed and further appends do nothing, so
 * callers check cg_buf_failed() once at the end. */
typedef struct cg_buf {
	char *data;
	size_t len;
	size_t cap;
	bool failed;
} cg_buf_t;

void cg_buf_append(cg_buf_t *b, const char *s, size_t n);
/* Inline, so that the length of a literal, which encoders append a dozen times
 * per reading, is worked out by the compiler. */
static inline void cg_buf_puts(cg_buf_t *b, const char *s)
{
	cg_buf_append(b, s, strlen(s));
}
void cg_buf_printf(cg_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included, escaping as RFC 8259 says. */
void cg_buf_json_string(cg_buf_t *b, const char *s);
/* Appends a JSON number: integers exactly, others with 15 significant digits
 * (so 0.1 * 123 prints as 12.3); NaN and infinities, which JSON cannot hold,
 * as null. */
void cg_buf_json_number(cg_buf_t *b, double v);
bool cg_buf_failed(const cg_buf_t *b);
/* Hands the data to the caller (who frees it) and resets b. */
char *cg_buf_take(cg_buf_t *b, size_t *len);
void cg_buf_free(cg_buf_t *b);

#endif
