/* A growable byte buffer with JSON writing helpers, for encoders. */
#include "base/buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for n more bytes plus a NUL; marks the buffer failed on ENOMEM. */
static bool reserve(cg_buf_t *b, size_t n)
{
	size_t cap;
	char *data;

	if (b->failed)
		return false;
	if (b->len + n + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + n + 1)
		cap *= 2;
	data = realloc(b->data, cap);
	if (!data) {
		b->failed = true;
		return false;
	}
	b->data = data;
	b->cap = cap;
	return true;
}

void cg_buf_append(cg_buf_t *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void cg_buf_printf(cg_buf_t *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* The width of each byte inside a JSON string literal: controls as \u00XX, '"'
 * and '\\' backslashed, everything else as it is (UTF-8 included). */
static const unsigned char json_width[256] = {
    [0 ... 0x1f] = 6,    [0x20 ... 0x21] = 1, ['"'] = 2,
    [0x23 ... 0x5b] = 1, ['\\'] = 2,          [0x5d ... 0xff] = 1,
};

/* Two passes: the first sizes the literal, so the second writes it straight into
 * the buffer after one reserve, instead of appending run by run. Every reading's
 * payload holds about ten strings, so this is a good part of encoding it. */
void cg_buf_json_string(cg_buf_t *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p;
	size_t len = 2;
	char *o;

	for (p = (const unsigned char *)s; *p; p++)
		len += json_width[*p];
	if (!reserve(b, len))
		return;
	o = b->data + b->len;
	*o++ = '"';
	if (len == (size_t)(p - (const unsigned char *)s) + 2) {
		/* Nothing to escape, as in nearly every id, name and unit: s as it is. */
		memcpy(o, s, len - 2);
		o += len - 2;
	} else {
		for (p = (const unsigned char *)s; *p; p++) {
			switch (json_width[*p]) {
			case 1: *o++ = (char)*p; break;
			case 2:
				*o++ = '\\';
				*o++ = (char)*p;
				break;
			default:
				memcpy(o, "\\u00", 4);
				o[4] = hex[*p >> 4];
				o[5] = hex[*p & 15];
				o += 6;
			}
		}
	}
	*o = '"';
	b->len += len;
	b->data[b->len] = '\0';
}

void cg_buf_json_number(cg_buf_t *b, double v)
{
	if (!isfinite(v))
		cg_buf_puts(b, "null");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0)
		cg_buf_printf(b, "%.0f", v);
	else
		cg_buf_printf(b, "%.15g", v);
}

bool cg_buf_failed(const cg_buf_t *b)
{
	return b->failed;
}

char *cg_buf_take(cg_buf_t *b, size_t *len)
{
	char *data = b->data;

	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return data;
}

void cg_buf_free(cg_buf_t *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = false;
}
