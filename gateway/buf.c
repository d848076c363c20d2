/* A growable byte buffer with JSON writing helpers, for encoders. */
#include "buf.h"

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

void cg_buf_puts(cg_buf_t *b, const char *s)
{
	cg_buf_append(b, s, strlen(s));
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

void cg_buf_json_string(cg_buf_t *b, const char *s)
{
	cg_buf_append(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			char esc[2] = {'\\', (char)*p};
			cg_buf_append(b, esc, 2);
		} else if (*p < 0x20) {
			cg_buf_printf(b, "\\u%04x", *p);
		} else {
			cg_buf_append(b, (const char *)p, 1);
		}
	}
	cg_buf_append(b, "\"", 1);
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
