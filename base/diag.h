/* Collected validation problems, each "FILE: /json/pointer: what is wrong". */
#ifndef CG_DIAG_H
#define CG_DIAG_H

#include <stddef.h>

/* A growing list of problem lines. Zero-initialise it; free with cg_diag_free(). */
typedef struct cg_diag {
	char **lines;
	size_t n;
	size_t cap;
} cg_diag_t;

/* Appends "file: pointer: message". pointer is a JSON pointer ("" for the
 * whole document). Memory failure is silently ignored: the caller also gets an
 * error code from the validator, so the file is still refused. */
void cg_diag_add(cg_diag_t *d, const char *file, const char *pointer, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Frees the lines; d may be NULL; d is left empty and reusable. */
void cg_diag_free(cg_diag_t *d);

/* Writes pointer + "/" + escaped token into buf (RFC 6901: "~" -> "~0", "/" -> "~1"). */
void cg_pointer_key(char *buf, size_t size, const char *pointer, const char *key);
/* Writes pointer + "/" + index into buf. */
void cg_pointer_index(char *buf, size_t size, const char *pointer, size_t index);

#endif
