/* Collected validation problems, each "FILE: /json/pointer: what is wrong". */
#include "base/diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cg_diag_add(cg_diag_t *d, const char *file, const char *pointer, const char *fmt, ...)
{
	char msg[512];
	char *line;
	size_t len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	len = strlen(file) + strlen(pointer) + strlen(msg) + 5;
	line = malloc(len);
	if (!line)
		return;
	snprintf(line, len, "%s: %s: %s", file, pointer, msg);
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		char **lines = realloc(d->lines, cap * sizeof(*lines));
		if (!lines) {
			free(line);
			return;
		}
		d->lines = lines;
		d->cap = cap;
	}
	d->lines[d->n++] = line;
}

void cg_diag_free(cg_diag_t *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->lines[i]);
	free(d->lines);
	d->lines = NULL;
	d->n = d->cap = 0;
}

void cg_pointer_key(char *buf, size_t size, const char *pointer, const char *key)
{
	size_t o = (size_t)snprintf(buf, size, "%s/", pointer);

	for (const char *k = key; *k && o + 3 < size; k++) {
		if (*k == '~') {
			buf[o++] = '~';
			buf[o++] = '0';
		} else if (*k == '/') {
			buf[o++] = '~';
			buf[o++] = '1';
		} else {
			buf[o++] = *k;
		}
	}
	if (o < size)
		buf[o] = '\0';
}

void cg_pointer_index(char *buf, size_t size, const char *pointer, size_t index)
{
	snprintf(buf, size, "%s/%zu", pointer, index);
}
